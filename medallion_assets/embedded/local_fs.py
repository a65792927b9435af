"""The local file system local Spark writes the lakehouse through: Hadoop's, without a process per file.

Without Hadoop's native library (PySpark ships none), Hadoop's local file system sets a new file's permissions by
running `chmod` in a child process, and it does so for every file it creates: each Parquet file, its checksum
file, each Delta commit. A 30-day build of the flights graph started 3,334 processes from the driver's JVM, and a
year's build more than ten times as many, each a fork and exec of a multi-gigabyte JVM's helper. `java/medallion/
NioLocalFileSystem.java` is Hadoop's checksummed local file system with `setPermission` done in-process through
java.nio, setting the same bits.

It is compiled once per machine with the JDK's `javac` into the cache folder and put on the driver's class path
(`spark.driver.extraClassPath`: Spark's launcher resolves `file:` paths before it loads `spark.jars`). Where there
is no `javac` (a JRE alone), Spark keeps Hadoop's own file system: slower, never wrong.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import zipfile
from pathlib import Path

from medallion_assets.embedded.cache import cache_dir
from medallion_assets.embedded.jdk import jdk_tool
from medallion_assets.settings import switch

SOURCE = Path(__file__).parent / "java" / "medallion" / "NioLocalFileSystem.java"
FILE_SYSTEM_CLASS = "medallion.NioLocalFileSystem"
# on (default) or off: off keeps Hadoop's own local file system, to compare or to rule this one out.
SETTING = "MEDALLION_LOCAL_FS_IN_PROCESS"


def _hadoop_api_jar() -> Path | None:
    import pyspark

    jars = sorted((Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar"))
    return jars[-1] if jars else None


def _compilation() -> tuple[Path, Path, Path] | None:
    """The compiler, Hadoop's API jar to compile against, and the jar to keep; None where it cannot be compiled."""
    javac, hadoop = jdk_tool("javac"), _hadoop_api_jar()
    if javac is None or hadoop is None or not SOURCE.is_file() or not switch(SETTING, default=True):
        return None
    identity = hashlib.sha256(SOURCE.read_bytes() + hadoop.name.encode()).hexdigest()[:16]
    return javac, hadoop, cache_dir() / f"local-fs-{identity}.jar"


def jar_path() -> Path | None:
    """Where the compiled file system is kept for this source and Hadoop; None where it cannot be compiled here."""
    compilation = _compilation()
    return compilation[2] if compilation is not None else None


def file_system_jar() -> Path | None:
    """The compiled file system, built on first use; None where it cannot be built here."""
    compilation = _compilation()
    if compilation is None:
        return None
    javac, hadoop, jar = compilation
    if jar.is_file():
        return jar
    jar.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="medallion-local-fs-") as scratch:
        classes = Path(scratch)
        compiled = subprocess.run(
            [str(javac), "-nowarn", "--release", "17", "-cp", str(hadoop), "-d", str(classes), str(SOURCE)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if compiled.returncode != 0:
            return None
        partial = jar.with_suffix(f".{os.getpid()}.partial")
        with zipfile.ZipFile(partial, "w") as archive:
            for class_file in sorted(classes.rglob("*.class")):
                archive.write(class_file, class_file.relative_to(classes).as_posix())
        os.replace(partial, jar)  # whole or not at all: another process may be starting Spark from it
    return jar
