"""Local Spark writes the lakehouse through Hadoop's local file system with permissions set in-process."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest

from medallion_assets.embedded import local_fs
from medallion_assets.embedded.jdk import jdk_tool

needs_javac = pytest.mark.skipif(jdk_tool("javac") is None, reason="no javac here: Spark keeps Hadoop's own")


def modes_under(folder: Path) -> tuple[set[int], set[int]]:
    files, folders = set(), set()
    for root, dirs, names in os.walk(folder):
        files |= {stat.S_IMODE(os.stat(Path(root) / name).st_mode) for name in names}
        folders |= {stat.S_IMODE(os.stat(Path(root) / name).st_mode) for name in dirs}
    return files, folders


@needs_javac
def test_the_session_writes_through_the_compiled_file_system_with_hadoops_permissions(spark, tmp_path: Path) -> None:
    jvm = spark.sparkContext._jvm
    configuration = spark.sparkContext._jsc.hadoopConfiguration()
    file_system = jvm.org.apache.hadoop.fs.FileSystem.get(jvm.java.net.URI(tmp_path.as_uri()), configuration)
    assert file_system.getClass().getName() == local_fs.FILE_SYSTEM_CLASS
    spark.range(40).selectExpr("id", "id % 4 AS day").write.format("delta").partitionBy("day").save(str(tmp_path / "t"))
    # What Hadoop's own file system leaves under the process's umask: 0644 files and 0755 folders for umask 022.
    umask = os.umask(0)
    os.umask(umask)
    files, folders = modes_under(tmp_path / "t")
    assert files == {0o666 & ~umask} and folders == {0o777 & ~umask}
    assert any(path.suffix == ".crc" for path in (tmp_path / "t").rglob("*"))  # still Hadoop's checksummed one


@needs_javac
def test_the_file_system_is_compiled_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    jar = local_fs.file_system_jar()
    assert jar is not None and jar.parent == tmp_path / "medallion_assets" and jar == local_fs.jar_path()
    with zipfile.ZipFile(jar) as archive:
        assert "medallion/NioLocalFileSystem$NioRawLocalFileSystem.class" in archive.namelist()
    built = jar.stat().st_mtime_ns
    assert local_fs.file_system_jar() == jar and jar.stat().st_mtime_ns == built
    monkeypatch.setenv(local_fs.SETTING, "off")
    assert local_fs.jar_path() is None and local_fs.file_system_jar() is None
