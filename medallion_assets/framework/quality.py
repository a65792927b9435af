"""Quality rules and Pandera contracts, both derived from the table declaration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from medallion_assets.framework.scd2 import SCD2_COLUMNS
from medallion_assets.framework.table import Rule, Severity, TableDeclaration

CheckSeverity = Literal["ERROR", "WARN"]
FAILED_RULES = "_failed_rules"


@dataclass
class CheckOutcome:
    """The result of one asset check, independent of where it ran."""

    name: str
    passed: bool
    description: str
    severity: CheckSeverity = "ERROR"
    metadata: dict[str, Any] = field(default_factory=dict)


def sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, date):
        return f"DATE'{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise TypeError(f"no SQL literal for {value!r}")


def _check_condition(column: str, check_name: str, stats: Mapping[str, Any]) -> str:
    quoted = f"`{column}`"
    if check_name == "isin":
        return f"{quoted} IN ({', '.join(sql_literal(v) for v in stats['allowed_values'])})"
    if check_name == "notin":
        return f"{quoted} NOT IN ({', '.join(sql_literal(v) for v in stats['forbidden_values'])})"
    comparisons = {
        "greater_than_or_equal_to": (">=", "min_value"),
        "greater_than": (">", "min_value"),
        "less_than_or_equal_to": ("<=", "max_value"),
        "less_than": ("<", "max_value"),
        "equal_to": ("=", "value"),
    }
    if check_name in comparisons:
        operator, stat = comparisons[check_name]
        return f"{quoted} {operator} {sql_literal(stats[stat])}"
    if check_name == "in_range":
        low = ">=" if stats.get("include_min", True) else ">"
        high = "<=" if stats.get("include_max", True) else "<"
        return f"{quoted} {low} {sql_literal(stats['min_value'])} AND {quoted} {high} {sql_literal(stats['max_value'])}"
    if check_name == "str_matches":
        return f"{quoted} RLIKE {sql_literal(stats['pattern'])}"
    if check_name == "str_length":
        bounds = []
        if stats.get("min_value") is not None:
            bounds.append(f"length({quoted}) >= {stats['min_value']}")
        if stats.get("max_value") is not None:
            bounds.append(f"length({quoted}) <= {stats['max_value']}")
        return " AND ".join(bounds)
    raise ValueError(f"column {column}: Pandera check {check_name!r} has no row-level rule; add one to the framework")


def default_severity(table: TableDeclaration) -> Severity:
    return "drop" if table.has_quarantine else "fail"


def contract_rules(table: TableDeclaration) -> list[Rule]:
    """Row rules implied by the contract's nullability and value domains.

    A field's `metadata={"severity": ...}` overrides the layer default (drop in silver, fail in gold).
    """
    if table.contract is None:
        return []
    # SCD2 bookkeeping columns are computed by the framework after the rules run.
    generated = set(SCD2_COLUMNS) if table.scd2 is not None else set()
    rules: list[Rule] = []
    for column, spec in table.contract.to_schema().columns.items():
        if column in generated:
            continue
        severity: Severity = (spec.metadata or {}).get("severity", default_severity(table))
        if not spec.nullable:
            rules.append(Rule(f"{column}_not_null", f"`{column}` IS NOT NULL", severity, f"{column} is required"))
        for check in spec.checks:
            condition = _check_condition(column, check.name, check.statistics)
            rules.append(
                Rule(f"{column}_{check.name}", condition, severity, f"{column}: {check.name} {check.statistics}")
            )
    return rules


def all_rules(table: TableDeclaration, parse_rules: Sequence[Rule] = ()) -> list[Rule]:
    rules = [*parse_rules, *contract_rules(table), *table.rules]
    names = [rule.name for rule in rules]
    duplicated = {name for name in names if names.count(name) > 1}
    if duplicated:
        raise ValueError(f"{table.key}: rule names must be unique, repeated: {sorted(duplicated)}")
    return rules


def failed_rules_column(rules: Sequence[Rule]) -> str:
    """A SQL expression giving the array of rule names a row fails (NULL outcomes pass)."""
    if not rules:
        return "CAST(array() AS ARRAY<STRING>)"
    entries = ", ".join(f"IF(coalesce(({rule.condition}), TRUE), NULL, {sql_literal(rule.name)})" for rule in rules)
    return f"filter(array({entries}), name -> name IS NOT NULL)"


def evaluate_contract(table: TableDeclaration, df: Any) -> CheckOutcome:
    """Validate the written rows with the table's Pandera DataFrameModel on Spark."""
    assert table.contract is not None
    validated = table.contract.validate(df)
    errors = validated.pandera.errors
    failures = [
        {
            "section": section,
            "kind": kind,
            "column": str(e.get("column")),
            "check": str(e.get("check")),
            "error": str(e.get("error")),
        }
        for section, kinds in errors.items()
        for kind, entries in kinds.items()
        for e in entries
    ]
    return CheckOutcome(
        name="contract",
        passed=not failures,
        description=f"Pandera contract {table.contract.__name__}: types, nullability and value domains",
        metadata={
            "contract": table.contract.__name__,
            "failure_count": len(failures),
            "failing_columns": sorted({f["column"] for f in failures}),
            "failing_checks": sorted({f["check"] for f in failures}),
            "failures": failures[:50],
        },
    )
