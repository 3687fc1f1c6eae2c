"""Shared helpers of the converters: counts report, line reading, atomic output, atomic files.

Every converter reads raw lines through :func:`iter_lines` (gzip or plain, with the line number for
error messages), counts what it keeps and drops in a :class:`ConversionReport`, and writes its
atomic files into the temporary folder of :func:`atomic_output_dir`, which is moved into place
only when the conversion completed.
"""
from __future__ import annotations

import ast
import contextlib
import csv
import gzip
import io
import json
import logging
import os
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

logger = logging.getLogger(__name__)

REPORT_FILE = "conversion_report.json"


class ConversionError(ValueError):
    """A raw file could not be converted (malformed line: file name and line number given)."""


@dataclass
class ConversionReport:
    """What a conversion read, kept and dropped (and why)."""

    name: str
    rows_read: int = 0
    rows_kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    counts: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def drop(self, reason: str, n: int = 1) -> None:
        if n:
            self.dropped[reason] += n

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "dropped": dict(self.dropped),
            "counts": self.counts,
            "files": self.files,
        }

    def summary(self) -> str:
        lines = [f"[{self.name}] rows read: {self.rows_read:,}, kept: {self.rows_kept:,}"]
        for reason, n in sorted(self.dropped.items(), key=lambda kv: -kv[1]):
            lines.append(f"  dropped {n:,}: {reason}")
        for key, value in self.counts.items():
            lines.append(f"  {key}: {value:,}" if isinstance(value, int) else f"  {key}: {value}")
        for path in self.files:
            lines.append(f"  wrote {path}")
        return "\n".join(lines)


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a plain or gzip-compressed text file (detected by its magic bytes) as UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Input file not found: {path}")
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, "r", encoding="utf-8", newline="")


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline); blank lines are skipped."""
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield number, line


def parse_record(line: str) -> dict:
    """A JSON object, or a Python-literal dict (the loose format of the Amazon 2014 metadata)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as json_error:
        try:
            record = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise json_error from None
    if not isinstance(record, dict):
        raise ValueError(f"expected an object, got {type(record).__name__}")
    return record


def iter_records(path: str | Path, report: ConversionReport, skip_bad: bool = False,
                 count_rows: bool = True) -> Iterator[tuple[int, dict]]:
    """Parsed JSON(-lines) records; a malformed line raises with file and line, or is counted."""
    for number, line in iter_lines(path):
        if count_rows:
            report.rows_read += 1
        try:
            record = parse_record(line)
        except (ValueError, SyntaxError) as err:
            if skip_bad:
                report.drop(f"malformed line in {Path(path).name}")
                continue
            raise ConversionError(f"{path}:{number}: malformed line ({err}); pass --skip-bad to skip such lines") from None
        yield number, record


def clean_text(value: Any) -> str:
    """One line of text: tabs and newlines become spaces, lists are joined, None is ''."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = " ".join(clean_text(v) for v in value)
    text = str(value)
    text = text.replace("\t", " ").replace("\r", " ").replace("\n", " ")
    return " ".join(text.split())


def write_atomic_file(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """A RecBole atomic file: tab-separated, ``field:type`` header.

    Values containing a quote are quoted CSV-style, which is how RecBole's pandas reader
    (``read_csv(..., engine="python")``) reads them back unchanged.
    """
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("\t".join(header) + "\n")
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        for row in rows:
            writer.writerow(["" if v is None else v for v in row])
            count += 1
    return count


@contextlib.contextmanager
def atomic_output_dir(output: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success move its files into ``output``.

    A missing ``output`` is created by one rename of the whole folder. If ``output`` exists
    (another process finished first, or it holds other files) each file is moved with
    ``os.replace``, the ``.inter`` files last, so a reader never sees an ``.inter`` without the
    files written with it. On error the temporary folder is removed and ``output`` is untouched.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.parent / f".{output.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        try:
            os.rename(tmp, output)
            return
        except OSError:
            pass  # output exists and is not empty
        output.mkdir(parents=True, exist_ok=True)
        files = sorted(tmp.iterdir(), key=lambda p: (".inter" in p.name, p.name))
        for path in files:
            os.replace(path, output / path.name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_report(folder: Path, report: ConversionReport) -> None:
    with open(folder / REPORT_FILE, "w", encoding="utf-8") as handle:
        json.dump(report.as_dict(), handle, indent=2)


def kcore_filter(pairs: list[tuple[str, str]], user_k: int, item_k: int) -> set[int]:
    """Indices of ``pairs`` kept by iterative user/item k-core filtering."""
    alive = set(range(len(pairs)))
    if user_k <= 1 and item_k <= 1:
        return alive
    while True:
        user_count: Counter = Counter(pairs[i][0] for i in alive)
        item_count: Counter = Counter(pairs[i][1] for i in alive)
        removed = {i for i in alive if user_count[pairs[i][0]] < user_k or item_count[pairs[i][1]] < item_k}
        if not removed:
            return alive
        alive -= removed


def configure_cli_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")


def run_converter_cli(convert, *args, **kwargs) -> int:
    """Run one conversion for a converter's ``main``: console logging, expected failures -> exit 1."""
    configure_cli_logging()
    try:
        convert(*args, **kwargs)
    except (ConversionError, FileNotFoundError, ValueError) as err:
        logging.getLogger(convert.__module__).error("error: %s", err)
        return 1
    return 0
