"""The table declaration: schema, quality rules and transform, declared once per table."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Literal

from medallion_assets.framework import checks
from medallion_assets.framework.landed_files import SUPPORTED_ENCODINGS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from medallion_assets.framework.contract import Contract
    from medallion_assets.framework.partitions import PartitionWindow

Layer = Literal["bronze", "silver", "gold"]
Severity = Literal["warn", "drop", "fail"]
PiiTreatment = Literal["hash", "mask"]
SEVERITIES: tuple[Severity, ...] = ("warn", "drop", "fail")
DEFAULT_PARTITION_COLUMN = "partition_date"
QUARANTINE_SUFFIX = "_quarantine"
# The struct in which a silver row carries its bronze line through the transform, for quarantine.
SOURCE_STRUCT = "_source"


@dataclass(frozen=True)
class TableKey:
    layer: Layer
    name: str

    @property
    def path(self) -> list[str]:
        return [self.layer, self.name]

    def __str__(self) -> str:
        return f"{self.layer}/{self.name}"


@dataclass(frozen=True)
class Rule:
    """A row-level expectation: `condition` is Spark SQL that is true for a good row.

    As with Delta CHECK constraints, a NULL outcome passes, so nullability is a rule of its own.
    """

    name: str
    condition: str
    severity: Severity = "drop"
    description: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"rule {self.name}: severity must be one of {SEVERITIES}, not {self.severity!r}")


@dataclass(frozen=True)
class LandingSource:
    """Files that an upstream system delivers per day: delimited text with a header line.

    `encoding` is what the sender writes when a file carries no byte-order mark; a mark always wins.
    `days_without_rows`: the sender may deliver a day with no rows, as a file with only its header line (an
    observation feed on a day its stations reported nothing). Such a day then passes as landed and is built
    empty downstream; a day folder with no file, or with only empty files, still fails. Without it, a
    header-only day is a broken export and fails loudly.
    `static`: the sender delivers the files once, into `<source>/` itself instead of a day folder, and they stand
    until it delivers them again (a code list such as the nations). Every day of the domain lands them as they
    stand, so each day's bronze partition still holds what was received for that day; a new delivery lands again
    into every landed day.
    """

    name: str
    columns: tuple[str, ...]
    description: str
    encoding: str = "UTF-8"
    days_without_rows: bool = False
    static: bool = False

    def folder(self, day: date) -> str:
        """Where the files that land for `day` are, relative to the landing root."""
        return self.name if self.static else f"{self.name}/{day.isoformat()}"

    def __post_init__(self) -> None:
        if self.encoding not in SUPPORTED_ENCODINGS:
            raise ValueError(f"landing source {self.name}: encoding must be one of {SUPPORTED_ENCODINGS}")


@dataclass(frozen=True)
class Upstream:
    """An input table, read over the same partition window as the table being built."""

    table: TableKey


@dataclass(frozen=True)
class ForeignKey:
    """Every non-null `column` value must exist in `references_column` of `references` for the same days."""

    name: str
    column: str
    references: TableKey
    references_column: str


@dataclass(frozen=True)
class Conservation:
    """Nothing lost across a transform that is not one row in, one row out.

    `output_measure` over the written rows must equal `input_measure` over input `input_alias`; a table
    with no input (a calendar) conserves the days of its window instead.
    """

    input_alias: str | None
    input_measure: str = "count(*)"
    output_measure: str = "count(*)"


@dataclass(frozen=True)
class Scd2:
    """Keep SCD Type 2 history of a daily reference snapshot."""

    key: tuple[str, ...]


@dataclass(frozen=True)
class Freshness:
    """How stale a table may get: no new materialization for `warn_after` warns, for `fail_after` it is late."""

    fail_after: timedelta
    warn_after: timedelta | None = None

    def __post_init__(self) -> None:
        if self.fail_after < timedelta(minutes=1):
            raise ValueError("freshness: fail_after is at least a minute")
        if self.warn_after is not None and not timedelta(minutes=1) <= self.warn_after < self.fail_after:
            raise ValueError("freshness: warn_after is at least a minute and shorter than fail_after")


@dataclass(frozen=True)
class Maintenance:
    """How a table stays fast as days pile up: OPTIMIZE, Z-ordered on `zorder_by`, then VACUUM keeping `retain`.

    `zorder_by` names the columns readers filter on within a day (a carrier, a customer); the partition column
    cannot be one, as Delta Z-orders files within each partition. `retain` is how far back time travel and
    readers of older versions still find their files. Delta refuses to vacuum with less than its own default of
    seven days (`delta.deletedFileRetentionDuration`) unless its safety check is switched off, which would delete
    files that a long query or a concurrent writer still reads, so a declaration cannot ask for less.
    """

    zorder_by: tuple[str, ...] = ()
    retain: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        if self.retain < MIN_RETENTION:
            raise ValueError(
                f"maintenance: retain at least {MIN_RETENTION.days} days (Delta's deletedFileRetentionDuration); "
                f"{self.retain} would delete files that readers of recent versions still use"
            )

    @property
    def retain_hours(self) -> int:
        return int(self.retain.total_seconds() // 3600)


MIN_RETENTION = timedelta(days=7)
DEFAULT_MAINTENANCE = Maintenance()


# Daily data: a table rebuilt once a day warns an hour past a day without a build, and is late four hours later.
DAILY_FRESHNESS = Freshness(fail_after=timedelta(hours=29), warn_after=timedelta(hours=25))


@dataclass
class TransformContext:
    """What a transform receives: the session, the window, its inputs (read over the window) and its table."""

    spark: SparkSession
    window: PartitionWindow
    inputs: dict[str, DataFrame]
    table: TableDeclaration

    def input(self, alias: str) -> DataFrame:
        return self.inputs[alias]


TransformFn = Callable[[TransformContext], "DataFrame"]


@dataclass(frozen=True)
class TableDeclaration:
    key: TableKey
    description: str
    owner: str
    inputs: Mapping[str, Upstream] = field(default_factory=dict)
    # Tables this one is built after without reading them, e.g. a calendar day once its data has landed.
    built_after: Sequence[TableKey] = ()
    transform: TransformFn | None = None
    source: LandingSource | None = None
    contract: type[Contract] | None = None
    casts: Mapping[str, str] = field(default_factory=dict)
    rules: Sequence[Rule] = ()
    natural_key: tuple[str, ...] = ()
    # The newest delivery wins, by when its file landed; the file name and the line only break ties.
    dedup_order: tuple[str, ...] = ("_source._landed_at DESC", "_source._source_file DESC", "_source._record_hash")
    # The share of a day's rows that silver may quarantine before the day is judged suspicious and blocked.
    max_quarantine_rate: float = 0.05
    scd2: Scd2 | None = None
    conservation: Conservation | None = None
    foreign_keys: Sequence[ForeignKey] = ()
    # Personal data: gold never sees these columns in clear ("hash": SHA-256, joinable; "mask": last 2 chars).
    pii_columns: Mapping[str, PiiTreatment] = field(default_factory=dict)
    partition_column: str = DEFAULT_PARTITION_COLUMN
    # When the table must be fresh; gold, which readers wait for, has DAILY_FRESHNESS unless it declares its own.
    freshness: Freshness | None = None
    # OPTIMIZE and VACUUM, run by the table's maintenance asset on a schedule.
    maintenance: Maintenance = DEFAULT_MAINTENANCE

    def __post_init__(self) -> None:
        if self.key.layer == "bronze":
            if self.source is None or self.transform is not None:
                raise ValueError(f"{self.key}: a bronze table lands a LandingSource and has no transform")
        else:
            if self.transform is None or self.contract is None:
                raise ValueError(f"{self.key}: silver and gold tables need a transform and a Pandera contract")
        bad_pii = {c: t for c, t in self.pii_columns.items() if t not in ("hash", "mask")}
        if bad_pii:
            raise ValueError(f"{self.key}: PII treatment must be 'hash' or 'mask': {bad_pii}")
        if not 0 <= self.max_quarantine_rate <= 1:
            raise ValueError(f"{self.key}: max_quarantine_rate is a share of rows, from 0 to 1")
        if self.casts and not self.has_quarantine:
            raise ValueError(f"{self.key}: casts parse bronze strings, so they belong to silver tables")
        self._check_zorder_columns()

    def _check_zorder_columns(self) -> None:
        zorder = self.maintenance.zorder_by
        if self.partition_column in zorder:
            raise ValueError(
                f"{self.key}: maintenance cannot Z-order by the partition column {self.partition_column}; "
                "Delta Z-orders the files within each partition"
            )
        columns = self.source.columns if self.source is not None else self.output_columns
        unknown = [column for column in zorder if column not in columns]
        if unknown:
            raise ValueError(f"{self.key}: maintenance Z-orders by {unknown}, which the table does not have")

    @property
    def expected_freshness(self) -> Freshness | None:
        if self.freshness is not None:
            return self.freshness
        return DAILY_FRESHNESS if self.key.layer == "gold" else None

    @property
    def has_quarantine(self) -> bool:
        """Silver rejects bad rows into a quarantine table; gold's inputs are already clean."""
        return self.key.layer == "silver"

    @property
    def output_columns(self) -> list[str]:
        """The contract's columns in order, then the partition column unless the contract has it."""
        assert self.contract is not None
        columns = self.contract.columns()
        return columns if self.partition_column in columns else [*columns, self.partition_column]

    @property
    def quarantine_key(self) -> TableKey:
        return TableKey(self.key.layer, self.key.name + QUARANTINE_SUFFIX)

    @property
    def upstream_keys(self) -> list[TableKey]:
        """Every table this one waits for: the ones it reads, then the ones it is only built after."""
        return [*(upstream.table for upstream in self.inputs.values()), *self.built_after]

    @property
    def primary_input(self) -> str | None:
        """The input whose rows this table conserves (the first declared one)."""
        return next(iter(self.inputs), None)

    @property
    def check_names(self) -> list[str]:
        if self.key.layer == "bronze":
            return [checks.LANDING_DELIVERED, checks.LANDING_RECONCILIATION]
        names = [checks.CONTRACT]
        if self.has_quarantine:
            names += [checks.SOURCE_SCHEMA, checks.QUARANTINE_RATE]
        if self.has_quarantine or self.conservation is not None:
            names.append(checks.RECONCILIATION)
        names.extend(checks.foreign_key_check(fk.name) for fk in self.foreign_keys)
        return names


def bronze_tables(sources: Sequence[LandingSource], owner: str) -> list[TableDeclaration]:
    """One bronze table per landing source: bronze has no transform, so a source is its whole declaration."""
    return [
        TableDeclaration(
            key=TableKey("bronze", source.name),
            description=f"{source.description} Landed as received: every column a string, each line's bytes in "
            "`_raw_line` and why it could not be read in `_line_error`, with landing and ingestion time, source "
            "file, run id and record hash.",
            owner=owner,
            source=source,
        )
        for source in sources
    ]
