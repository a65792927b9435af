"""The local engine's JVM: the collector it runs with, and the person's choice over ours."""

from __future__ import annotations

import pytest

from medallion_assets.embedded import spark as local_engine


def test_the_local_driver_runs_the_throughput_collector(spark) -> None:
    management = spark.sparkContext._jvm.java.lang.management.ManagementFactory
    collectors = {bean.getName() for bean in management.getGarbageCollectorMXBeans()}
    # The parallel collector's two generations; G1 would name "G1 Young Generation" and "G1 Old Generation".
    assert collectors == {"PS Scavenge", "PS MarkSweep"}


def test_a_collector_the_person_chose_replaces_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDALLION_SPARK_JAVA_OPTIONS", raising=False)
    assert local_engine.LOCAL_GARBAGE_COLLECTOR in local_engine.driver_java_options([]).split()
    monkeypatch.setenv("MEDALLION_SPARK_JAVA_OPTIONS", "-XX:+UseSerialGC -Xss4m")
    flags = local_engine.driver_java_options(["-XX:SharedArchiveFile=a.jsa"]).split()
    # Two collectors on one command line stop the JVM before Spark starts.
    assert local_engine.LOCAL_GARBAGE_COLLECTOR not in flags
    assert flags[-3:] == ["-XX:+UseSerialGC", "-Xss4m", "-XX:SharedArchiveFile=a.jsa"]
    monkeypatch.setenv("MEDALLION_SPARK_JAVA_OPTIONS", "-XX:TieredStopAtLevel=1")
    assert local_engine.LOCAL_GARBAGE_COLLECTOR in local_engine.driver_java_options([]).split()
