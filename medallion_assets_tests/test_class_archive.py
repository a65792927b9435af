"""The JVM class archive: built once in the background after a process used Spark without one, mapped by later
starts, never able to stop Spark."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medallion_assets.embedded import class_archive
from medallion_assets_tests.support import wait_for

START_SPARK = (
    "from medallion_assets.embedded.spark import local_spark_session; "
    "spark = local_spark_session(); spark.range(3).count(); "
    "print(spark.sparkContext.getConf().get('spark.driver.extraJavaOptions'))"
)


@pytest.fixture(scope="module")
def built_archive() -> Path:
    """The machine's archive. Where there is none yet, a process that starts local Spark sets it building as it exits.

    A test session starts building it as it starts (conftest.py), so this mostly waits for that builder.
    """
    archive = class_archive.archive_file()
    assert archive is not None, "no java found"
    lock = archive.with_suffix(".building")
    if not archive.is_file() and not lock.exists():
        subprocess.run([sys.executable, "-c", START_SPARK], capture_output=True, timeout=300, check=True)
        assert archive.is_file() or lock.exists(), "a process that started Spark without an archive left no builder"
    assert wait_for(lambda: archive.is_file() and not lock.exists(), timeout=300, interval=1), (
        f"no class archive at {archive} five minutes after a process started Spark without one"
    )
    return archive


def use_cache(monkeypatch: pytest.MonkeyPatch, cache: Path) -> dict[str, str]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv(class_archive.SETTING, raising=False)
    return dict(os.environ)


def test_an_archive_built_after_a_start_without_one_is_mapped_by_later_starts(built_archive: Path) -> None:
    assert built_archive.stat().st_size > 1_000_000
    assert not list(built_archive.parent.glob("*.partial"))
    assert f"-XX:SharedArchiveFile={built_archive}" in class_archive.java_options()
    started = subprocess.run(
        [sys.executable, "-c", START_SPARK], capture_output=True, text=True, timeout=300, check=True
    )
    assert f"-XX:SharedArchiveFile={built_archive}" in started.stdout
    # The JVM warns, and starts without it, when an archive does not match its class path.
    assert "Unable to use shared archive" not in started.stdout + started.stderr


def test_a_damaged_archive_is_discarded_and_spark_starts_without_it(
    built_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved_jars = list(class_archive.cache_dir().glob("*.jars"))
    environment = use_cache(monkeypatch, tmp_path)
    archive = class_archive.archive_file()
    assert archive is not None
    archive.parent.mkdir(parents=True)
    for jar_list in resolved_jars:  # so this start need not resolve Delta's jars again
        shutil.copy(jar_list, archive.parent)
    # A truncated archive, as a full disk or a killed copy would leave it, stops a JVM from starting.
    archive.write_bytes(built_archive.read_bytes()[:1_000_000])
    started = subprocess.run(
        [sys.executable, "-c", START_SPARK],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert started.returncode == 0, started.stderr[-3000:]
    assert "SharedArchiveFile" not in started.stdout
    assert not archive.exists()
    assert not list(tmp_path.glob("hs_err_pid*.log"))  # the crash report went to the cache, not the cwd


def test_nothing_builds_beside_the_work_that_needs_spark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_cache(monkeypatch, tmp_path)
    assert class_archive.java_options() == []
    archive = class_archive.archive_file()
    assert archive is not None and not archive.with_suffix(".building").exists()
    assert archive in class_archive.builds_after_exit
    class_archive.builds_after_exit.discard(archive)  # a builder for this temporary cache would outlive the test


def test_the_setting_turns_the_archive_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_cache(monkeypatch, tmp_path)
    monkeypatch.setenv(class_archive.SETTING, "off")
    assert class_archive.java_options() == []
    archive = class_archive.archive_file()
    assert archive is not None and not archive.with_suffix(".building").exists()


def test_a_new_archive_removes_those_of_installations_that_are_gone(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    installed = tmp_path / "venv/pyspark/__init__.py"
    installed.parent.mkdir(parents=True)
    installed.touch()

    def archive(name: str, pyspark: Path | None, java: str | None = None) -> Path:
        made = cache / f"spark-classes-{name}.jsa"
        made.write_bytes(b"archive")
        if pyspark is not None:
            origin = {"pyspark": str(pyspark), **({"java": java} if java else {})}
            made.with_suffix(class_archive.ORIGIN_SUFFIX).write_text(json.dumps(origin))
        return made

    new = archive("new", installed, java="/usr/bin/java")
    # The same installation path and java: the environment was made again there, and the old jars are gone.
    superseded = archive("earlier", installed, java="/usr/bin/java")
    live = archive("live", installed, java="/opt/other-jdk/bin/java")
    gone = archive("gone", tmp_path / "deleted-venv/pyspark/__init__.py")
    unrecorded = archive("unrecorded", None)

    assert class_archive.prune(keep=new) == [superseded, gone]
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [new.name, f"{new.stem}.origin", live.name, f"{live.stem}.origin", unrecorded.name]
    )
