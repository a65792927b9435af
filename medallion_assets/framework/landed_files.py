"""What a landed file is, judged from its first line and a streamed line count, never read whole.

Spark reads the lines themselves (see `bronze_ingest`); this module only learns, per file, what Spark must be
told to read it: its encoding (a byte-order mark wins over the source's declared encoding), its line separator,
its field delimiter and its header. Lines are counted by the rule Spark's text reader splits by (Hadoop's
LineRecordReader: `\\n`, `\\r\\n` or a lone `\\r`), on bytes, so Python and Spark agree on what a line is; a
Unicode separator such as U+2028 is just a character inside a line for both.
"""

from __future__ import annotations

import bz2
import csv
import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import BinaryIO

# Encodings Spark's `decode` supports without legacy settings.
UTF8 = "UTF-8"
LATIN1 = "ISO-8859-1"
UTF16LE = "UTF-16LE"
UTF16BE = "UTF-16BE"
SUPPORTED_ENCODINGS = (UTF8, LATIN1, UTF16LE, UTF16BE)
# Byte-order marks, longest first: a file that starts with one says its own encoding.
BYTE_ORDER_MARKS = ((b"\xef\xbb\xbf", UTF8), (b"\xff\xfe", UTF16LE), (b"\xfe\xff", UTF16BE))
# In a UTF-16 file every line ends with the two-byte newline, and Spark's text reader must be told those bytes.
UTF16_LINE_SEPARATORS = {UTF16LE: b"\n\x00", UTF16BE: b"\x00\n"}
# Delimiters that exporters use, in the order a tie is broken: CSV, European spreadsheets, "Text (Tab
# delimited)", and database unload files.
DELIMITERS = (",", ";", "\t", "|")
# Hadoop decompresses by these suffixes, so a compressed file is read like any other.
OPENERS = {".gz": gzip.open, ".bz2": bz2.open}
LANDED_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz", ".csv.bz2", ".tsv.bz2", ".txt.bz2")
CHUNK_BYTES = 1 << 20
# A header longer than this is not a header: the file is judged to have none.
MAX_HEADER_BYTES = 1 << 20


def is_landed_file(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(LANDED_SUFFIXES)


@dataclass(frozen=True)
class LandedFile:
    """One delivered file: where it is, how Spark must read it, and how many lines it holds."""

    path: str
    relative_path: str
    day: date
    encoding: str
    # None for the default (`\n`, `\r\n`, `\r`); the exact bytes otherwise.
    line_separator: bytes | None
    delimiter: str
    header: tuple[str, ...]
    # The header line as decoded text (without a byte-order mark), to tell header lines from data in Spark.
    header_line: str
    physical_lines: int

    @property
    def has_lines(self) -> bool:
        return self.physical_lines > 0

    @property
    def read_signature(self) -> tuple[str, bytes | None, str, tuple[str, ...], str]:
        """Files with the same signature are read by one Spark scan."""
        return (self.encoding, self.line_separator, self.delimiter, self.header, self.header_line)


def _open(path: Path) -> BinaryIO:
    opener = OPENERS.get(path.suffix.lower())
    return opener(path, "rb") if opener else path.open("rb")  # type: ignore[return-value]


def _chunks(path: Path) -> Iterator[bytes]:
    with _open(path) as stream:
        while chunk := stream.read(CHUNK_BYTES):
            yield chunk


def count_lines(path: Path, separator: bytes | None = None) -> int:
    """The lines Spark's text reader yields for this file, counted in fixed memory.

    A final terminator ends the last line rather than starting an empty one; an empty file has no lines.
    """
    terminators = 0
    last = b""
    carry = b""
    for chunk in _chunks(path):
        if separator is None:
            terminators += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
            if carry == b"\r" and chunk.startswith(b"\n"):
                terminators -= 1  # a \r\n split across two chunks is one terminator
            carry = chunk[-1:]
        else:
            joined = carry + chunk
            terminators += joined.count(separator) - carry.count(separator)
            carry = joined[-(len(separator) - 1) :] if len(separator) > 1 else b""
        last = (last + chunk)[-8:]
    if not last:
        return 0
    ends_with_terminator = last.endswith(separator) if separator is not None else last[-1:] in (b"\n", b"\r")
    return terminators + (0 if ends_with_terminator else 1)


def _head(path: Path) -> bytes:
    with _open(path) as stream:
        return stream.read(MAX_HEADER_BYTES)


def detect_encoding(head: bytes, declared: str) -> tuple[str, int]:
    """The file's encoding and the length of its byte-order mark; without a mark, what the source declares."""
    for mark, encoding in BYTE_ORDER_MARKS:
        if head.startswith(mark):
            return encoding, len(mark)
    return declared, 0


def first_line(head: bytes, encoding: str, separator: bytes | None, bom_length: int) -> str:
    body = head[bom_length:]
    if separator is not None:
        end = body.find(separator)
        line = body if end < 0 else body[:end]
        return line.decode(encoding, errors="replace").rstrip("\r")
    ends = [position for position in (body.find(b"\n"), body.find(b"\r")) if position >= 0]
    return body[: min(ends)].decode(encoding, errors="replace") if ends else body.decode(encoding, errors="replace")


def detect_delimiter(header_line: str, expected: tuple[str, ...]) -> str:
    """The delimiter that splits the header into the most expected column names (then the most fields)."""
    wanted = set(expected)

    def score(delimiter: str) -> tuple[int, int]:
        names = [name.strip() for name in next(csv.reader([header_line], delimiter=delimiter), [])]
        return (sum(name in wanted for name in names), len(names))

    return max(DELIMITERS, key=lambda delimiter: (score(delimiter), -DELIMITERS.index(delimiter)))


def column_names(header_line: str, delimiter: str) -> tuple[str, ...]:
    names = next(csv.reader([header_line], delimiter=delimiter), [])
    cleaned: list[str] = []
    for position, name in enumerate(names):
        name = name.strip()
        # Spark cannot hold blank or repeated column names, and `_` names are ours; a positional name keeps
        # the value.
        cleaned.append(name if name and name not in cleaned and not name.startswith("_") else f"_c{position}")
    return tuple(cleaned)


def inspect_file(
    path: Path, landing_root: Path, day: date, declared_encoding: str, expected: tuple[str, ...]
) -> LandedFile:
    # Relative to the landing root, so the audit trail reads the same locally and on a Volume.
    relative = path.relative_to(landing_root).as_posix()
    head = _head(path)
    encoding, bom_length = detect_encoding(head, declared_encoding)
    separator = UTF16_LINE_SEPARATORS.get(encoding)
    header_line = first_line(head, encoding, separator, bom_length)
    delimiter = detect_delimiter(header_line, expected)
    header = column_names(header_line, delimiter) if header_line.strip() else ()
    return LandedFile(
        path=str(path),
        relative_path=relative,
        day=day,
        encoding=encoding,
        line_separator=separator,
        delimiter=delimiter,
        header=header,
        header_line=header_line,
        physical_lines=count_lines(path, separator),
    )
