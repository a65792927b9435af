"""The retail landing feed: TPC-H data, generated once per scale factor, delivered the way a retail system exports.

Orders and their line items land by order date. Customer, part, supplier and partsupp land as a full snapshot
every day; nation and region are static reference files, delivered once into `<landing>/<source>/`. TPC-H's
generator produces one state of the reference tables, so the snapshots evolve on a fixed rule to give SCD2
something to keep: on any day a customer's or supplier's account balance and a part's retail price are in one of
two versions, and each key switches versions on its own day once every `VERSION_PERIOD_DAYS` (about 1% of the
keys a day). The rule depends on the key and the day alone, so any day is staged the same whatever the window.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from medallion_assets.framework.declare import LandingSource, PartitionWindow, StagingTally

GENERATOR = "tpchgen-cli"
DEFAULT_SCALE = 0.01
VERSION_PERIOD_DAYS = 90

ORDERS = LandingSource(
    "orders",
    (
        "o_orderkey",
        "o_custkey",
        "o_orderstatus",
        "o_totalprice",
        "o_orderdate",
        "o_orderpriority",
        "o_clerk",
        "o_shippriority",
        "o_comment",
    ),
    "Every order placed, one file per order date.",
    # A small scale factor has days without orders: the export is then its header alone.
    days_without_rows=True,
)
LINEITEM = LandingSource(
    "lineitem",
    (
        "l_orderkey",
        "l_partkey",
        "l_suppkey",
        "l_linenumber",
        "l_quantity",
        "l_extendedprice",
        "l_discount",
        "l_tax",
        "l_returnflag",
        "l_linestatus",
        "l_shipdate",
        "l_commitdate",
        "l_receiptdate",
        "l_shipinstruct",
        "l_shipmode",
        "l_comment",
    ),
    "The line items of every order, in the file of their order's date.",
    days_without_rows=True,
)
CUSTOMER = LandingSource(
    "customer",
    ("c_custkey", "c_name", "c_address", "c_nationkey", "c_phone", "c_acctbal", "c_mktsegment", "c_comment"),
    "Daily snapshot of every customer account.",
)
PART = LandingSource(
    "part",
    (
        "p_partkey",
        "p_name",
        "p_mfgr",
        "p_brand",
        "p_type",
        "p_size",
        "p_container",
        "p_retailprice",
        "p_comment",
    ),
    "Daily snapshot of the part catalogue.",
)
SUPPLIER = LandingSource(
    "supplier",
    ("s_suppkey", "s_name", "s_address", "s_nationkey", "s_phone", "s_acctbal", "s_comment"),
    "Daily snapshot of every supplier.",
)
PARTSUPP = LandingSource(
    "partsupp",
    ("ps_partkey", "ps_suppkey", "ps_availqty", "ps_supplycost", "ps_comment"),
    "Daily snapshot of which supplier offers which part, at what cost and quantity.",
)
NATION = LandingSource(
    "nation",
    ("n_nationkey", "n_name", "n_regionkey", "n_comment"),
    "The 25 nations: a static reference file, delivered once.",
    static=True,
)
REGION = LandingSource(
    "region",
    ("r_regionkey", "r_name", "r_comment"),
    "The 5 regions: a static reference file, delivered once.",
    static=True,
)
STATIC_SOURCES = (NATION, REGION)
LANDING_SOURCES = (ORDERS, LINEITEM, CUSTOMER, PART, SUPPLIER, PARTSUPP, NATION, REGION)


# The column whose value has two versions, per reference table.
VERSIONED = {
    CUSTOMER.name: CUSTOMER.columns.index("c_acctbal"),
    SUPPLIER.name: SUPPLIER.columns.index("s_acctbal"),
    PART.name: PART.columns.index("p_retailprice"),
}


def _other_version(value: str) -> str:
    """Five less, or one more at five and below: inside TPC-H's ranges for balances and prices either way."""
    amount = Decimal(value)
    return str(amount - 5 if amount > 5 else amount + 1)


def generator_cache() -> Path:
    root = (
        os.environ.get("MEDALLION_TPCH_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "medallion_assets" / "tpch"
    )
    return Path(root)


def _generator_command() -> str:
    # The wheel puts the binary beside this interpreter; a PATH lookup covers a system install.
    beside = Path(sys.executable).parent / GENERATOR
    found = str(beside) if beside.is_file() else shutil.which(GENERATOR)
    if found is None:
        raise FileNotFoundError(f"{GENERATOR} is not installed: pip install -e '.[dagster]' brings it")
    return found


def generated(scale: float) -> Path:
    """TPC-H's tables as CSV for `scale`, generated on first use and kept in the cache for every later stage."""
    target = generator_cache() / f"sf{scale:g}"
    if (target / "region.csv").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.mkdtemp(dir=target.parent, prefix=".generating-")
    try:
        subprocess.run(
            [_generator_command(), "csv", "--scale-factor", f"{scale:g}", "--output-dir", scratch],
            check=True,
            capture_output=True,
        )
        os.rename(scratch, target)
    except OSError:
        # Another process finished the same scale factor first; its files are the same.
        if not (target / "region.csv").is_file():
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _split_lines(path: Path) -> tuple[bytes, list[bytes]]:
    with path.open("rb") as handle:
        header = handle.readline()
        return header, handle.readlines()


def _order_lines_by_date(folder: Path, days: set[date]) -> tuple[bytes, dict[date, list[bytes]], dict[bytes, date]]:
    """The window's orders by order date. Only keys and dates are parsed: the fields before the date never quote."""
    header, lines = _split_lines(folder / "orders.csv")
    date_field = ORDERS.columns.index("o_orderdate")
    by_day: dict[date, list[bytes]] = defaultdict(list)
    day_of_order: dict[bytes, date] = {}
    for line in lines:
        fields = line.split(b",", date_field + 1)
        day = date.fromisoformat(fields[date_field].decode())
        if day in days:
            by_day[day].append(line)
            day_of_order[fields[0]] = day
    return header, by_day, day_of_order


def _line_items_by_date(folder: Path, day_of_order: dict[bytes, date]) -> tuple[bytes, dict[date, list[bytes]]]:
    by_day: dict[date, list[bytes]] = defaultdict(list)
    with (folder / "lineitem.csv").open("rb") as handle:
        header = handle.readline()
        for line in handle:
            day = day_of_order.get(line.split(b",", 1)[0])
            if day is not None:
                by_day[day].append(line)
    return header, by_day


@dataclass
class EvolvingSnapshot:
    """A reference table's lines with both versions of each, to assemble any day's snapshot without parsing."""

    header: bytes
    keys: list[int]
    generated_lines: list[bytes]
    other_lines: list[bytes]

    @classmethod
    def read(cls, path: Path, column: int) -> EvolvingSnapshot:
        header, lines = _split_lines(path)
        keys, others = [], []
        for line in lines:
            fields = next(csv.reader([line.decode()]))
            fields[column] = _other_version(fields[column])
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerow(fields)
            keys.append(int(fields[0]))
            others.append(out.getvalue().encode())
        return cls(header, keys, lines, others)

    def on(self, day: date) -> bytes:
        ordinal = day.toordinal()
        lines = [
            other if ((ordinal + key) // VERSION_PERIOD_DAYS) % 2 else generated_line
            for key, generated_line, other in zip(self.keys, self.generated_lines, self.other_lines, strict=True)
        ]
        return self.header + b"".join(lines)


def stage(landing_root: Path, window: PartitionWindow, progress: bool = True, scale: float = DEFAULT_SCALE) -> dict:
    """Land TPC-H at `scale` for each day of `window`, as per-day exports."""
    from tqdm import tqdm

    if scale <= 0:
        raise ValueError(f"the TPC-H scale factor must be positive, not {scale}")
    folder = generated(scale)
    days = list(window.days())
    orders_header, orders_by_day, day_of_order = _order_lines_by_date(folder, set(days))
    lineitem_header, lines_by_day = _line_items_by_date(folder, day_of_order)
    evolving = {name: EvolvingSnapshot.read(folder / f"{name}.csv", column) for name, column in VERSIONED.items()}
    tally = StagingTally()
    for source in STATIC_SOURCES:
        tally.land(landing_root / source.name / f"{source.name}.csv", (folder / f"{source.name}.csv").read_bytes())
    partsupp = (folder / f"{PARTSUPP.name}.csv").read_bytes()
    steps: Iterable[date] = tqdm(days, desc=f"staging TPC-H sf{scale:g}", unit="day", disable=not progress)
    for day in steps:

        def land(name: str, content: bytes, day: date = day) -> None:
            tally.land(landing_root / name / day.isoformat() / f"{name}.csv", content)

        land(ORDERS.name, orders_header + b"".join(orders_by_day.get(day, [])))
        land(LINEITEM.name, lineitem_header + b"".join(lines_by_day.get(day, [])))
        for name, snapshot in evolving.items():
            land(name, snapshot.on(day))
        land(PARTSUPP.name, partsupp)
    return tally.summary()
