"""Column contracts, declared the way a Pandera DataFrameModel is and turned into one only when a build needs it.

A domain writes

    class SilverWeather(Contract):
        origin: T.StringType() = Field(isin=["EWR", "JFK", "LGA"])
        temp: T.DoubleType() = Field(nullable=True, ge=-40.0, le=130.0)

with Pandera's own field arguments. Loading the Dagster definitions (asset docs, column schemas, row rules)
reads the declaration alone; `pandera_model()` builds the equivalent `pandera.pyspark.DataFrameModel` on first
use. Importing Pandera costs about a second (it brings pandas and pyspark.pandas), and only a build validates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pandera.pyspark as pa
    from pandera.api.pyspark.container import DataFrameSchema
    from pyspark.sql.types import DataType

# Pandera's field arguments that are value checks, with the name and statistics Pandera gives each check (its
# `Check.name` and `Check.statistics`), so the row rules and Pandera's own model describe a check alike.
VALUE_CHECKS: dict[str, tuple[str, str | None]] = {
    "eq": ("equal_to", "value"),
    "ne": ("not_equal_to", "value"),
    "gt": ("greater_than", "min_value"),
    "ge": ("greater_than_or_equal_to", "min_value"),
    "lt": ("less_than", "max_value"),
    "le": ("less_than_or_equal_to", "max_value"),
    "in_range": ("in_range", None),
    "isin": ("isin", "allowed_values"),
    "notin": ("notin", "forbidden_values"),
    "str_matches": ("str_matches", "pattern"),
    "str_length": ("str_length", None),
}
# The statistics Pandera fills in for a range check's arguments that were left out.
RANGE_DEFAULTS: dict[str, dict[str, Any]] = {
    "in_range": {"include_min": True, "include_max": True},
    "str_length": {"min_value": None, "max_value": None, "exact_value": None},
}
OTHER_ARGUMENTS = frozenset({"nullable", "description", "metadata"})


@dataclass(frozen=True)
class ValueCheck:
    """One value check of a column, named and parameterised as Pandera names it."""

    name: str
    statistics: dict[str, Any]


@dataclass(frozen=True)
class ContractField:
    """A column of a contract: Pandera's `Field(...)` arguments, kept as declared."""

    arguments: dict[str, Any]
    dtype: DataType | None = None

    @property
    def nullable(self) -> bool:
        return bool(self.arguments.get("nullable", False))

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self.arguments.get("metadata") or {})

    @property
    def checks(self) -> list[ValueCheck]:
        found = []
        for argument, value in self.arguments.items():
            if argument not in VALUE_CHECKS:
                continue
            name, statistic = VALUE_CHECKS[argument]
            if statistic is not None:
                statistics = {statistic: list(value) if argument in ("isin", "notin") else value}
            else:
                defaults = RANGE_DEFAULTS[argument]
                statistics = {**value, **{key: v for key, v in defaults.items() if key not in value}}
            found.append(ValueCheck(name, statistics))
        return found


def Field(**arguments: Any) -> Any:
    """A contract column, with Pandera's field arguments (`nullable`, `ge`, `isin`, `str_matches`, ...)."""
    unknown = set(arguments) - set(VALUE_CHECKS) - OTHER_ARGUMENTS
    if unknown:
        raise TypeError(
            f"Field() got unsupported argument(s) {sorted(unknown)}; supported: "
            f"{sorted({*VALUE_CHECKS, *OTHER_ARGUMENTS})}"
        )
    return ContractField(arguments)


class Contract:
    """A table's columns, their Spark types, nullability and value checks; a subclass inherits its bases' columns."""

    fields: ClassVar[dict[str, ContractField]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        import sys

        from pyspark.sql.types import DataType

        namespace = vars(sys.modules[cls.__module__])
        own: dict[str, ContractField] = {}
        for name, annotation in vars(cls).get("__annotations__", {}).items():
            declared = vars(cls).get(name)
            if not isinstance(declared, ContractField):
                raise TypeError(f"{cls.__name__}.{name}: declare every column as `name: T.SomeType() = Field(...)`")
            # Annotations are source text under `from __future__ import annotations`.
            dtype = eval(annotation, namespace) if isinstance(annotation, str) else annotation
            if not isinstance(dtype, DataType):
                raise TypeError(f"{cls.__name__}.{name}: the annotation must be a Spark type such as T.StringType()")
            own[name] = ContractField(declared.arguments, dtype)
        # As Pandera orders an inherited model's columns: the bases' first, then the subclass's own.
        inherited = {name: f for base in reversed(cls.__mro__[1:]) for name, f in getattr(base, "fields", {}).items()}
        cls.fields = {**{name: f for name, f in inherited.items() if name not in own}, **own}

    @classmethod
    def columns(cls) -> list[str]:
        return list(cls.fields)

    @classmethod
    def pandera_model(cls) -> type[pa.DataFrameModel]:
        return _pandera_model(cls)

    @classmethod
    def pandera_structure(cls) -> DataFrameSchema:
        """The model's Pandera schema with every column nullable: what Pandera judges from a frame's schema alone.

        Pandera's Spark backend tests a non-nullable field with a query per column even when asked to judge the
        schema only. A build counts every nullability and value check of the model in one aggregation instead
        (`quality.contract_failure_counters`), so the contract check asks Pandera for columns and types only.
        """
        return _pandera_structure(cls)


@cache
def _pandera_model(contract: type[Contract]) -> type[pa.DataFrameModel]:
    import pandera.pyspark as pa

    attributes: dict[str, Any] = {
        "__module__": contract.__module__,
        "__qualname__": contract.__qualname__,
        "__annotations__": {name: f.dtype for name, f in contract.fields.items()},
    }
    attributes.update({name: pa.Field(**f.arguments) for name, f in contract.fields.items()})
    return type(contract.__name__, (pa.DataFrameModel,), attributes)


@cache
def _pandera_structure(contract: type[Contract]) -> DataFrameSchema:
    schema = contract.pandera_model().to_schema()
    return schema.update_columns({name: {"nullable": True} for name in schema.columns})
