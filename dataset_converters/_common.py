"""Shared helpers of the converters: counts report, line reading, atomic output, dataset yaml.

Every converter reads raw lines through :func:`iter_lines` (gzip or plain, with the line number for
error messages), cleans every text field through :meth:`ConversionReport.text`, counts what it
keeps and drops in a :class:`ConversionReport`, and writes its atomic files into the temporary
folder of :func:`atomic_output_dir`, which replaces the output folder in one rename only when the
conversion completed. Input errors are :class:`ConversionError`: one line naming the file, the line
(or the byte offset of a truncated compressed stream) and the field.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import gzip
import html
import io
import json
import logging
import os
import re
import shutil
import sys
import uuid
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

REPORT_FILE = "conversion_report.json"
SKIP_HINT = "pass --skip-bad to skip such lines"
# Leave-one-out by time: each user's last interaction is the test target, the one before it the
# validation target; ranking over all items (the protocol of the LLM-recommendation papers).
LEAVE_ONE_OUT_BY_TIME = {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"}
_TAG = re.compile(r"<!--.*?-->|</?[A-Za-z][^<>]*>", re.DOTALL)


class ConversionError(ValueError):
    """A raw file or the output path is unusable; the message is one line naming file, line and field."""


def input_error(
    path: str | Path, line: int | str, problem: str, field_name: str | None = None, hint: str | None = SKIP_HINT
) -> ConversionError:
    """``<file>:<line>: field '<field>': <problem>; <hint>`` as one line."""
    where = f"{path}:{line}: " + (f"field '{field_name}': " if field_name else "")
    return ConversionError(where + problem.replace("\n", " ") + (f"; {hint}" if hint else ""))


@dataclass
class ConversionReport:
    """What a conversion read, kept and dropped (and why), and how its text fields were cleaned."""

    name: str
    rows_read: int = 0
    rows_kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    counts: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    text_fields: dict[str, Counter] = field(default_factory=dict)

    def drop(self, reason: str, n: int = 1) -> None:
        if n:
            self.dropped[reason] += n

    def text(self, field_name: str, value: Any) -> str:
        """``value`` cleaned by :func:`clean_text`, counted per field (HTML removed, empty)."""
        plain = flatten_text(value)
        cleaned = clean_text(plain)
        counter = self.text_fields.setdefault(field_name, Counter(values=0, html_cleaned=0, empty=0))
        counter["values"] += 1
        counter["html_cleaned"] += cleaned != " ".join(plain.split())
        counter["empty"] += not cleaned
        return cleaned

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "dropped": dict(self.dropped),
            "counts": self.counts,
            "text_fields": {name: dict(counter) for name, counter in self.text_fields.items()},
            "files": self.files,
        }

    def summary(self) -> str:
        lines = [f"[{self.name}] rows read: {self.rows_read:,}, kept: {self.rows_kept:,}"]
        for reason, n in sorted(self.dropped.items(), key=lambda kv: -kv[1]):
            lines.append(f"  dropped {n:,}: {reason}")
        for key, value in self.counts.items():
            number = isinstance(value, int) and not isinstance(value, bool)
            lines.append(f"  {key}: {value:,}" if number else f"  {key}: {value}")
        for name, counter in self.text_fields.items():
            lines.append(
                f"  text field {name}: {counter['html_cleaned']:,} HTML-cleaned, "
                f"{counter['empty']:,} empty of {counter['values']:,}"
            )
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
    return open(path, encoding="utf-8", newline="")


def _compressed_offset(handle: io.TextIOBase) -> int | None:
    """Bytes of the compressed file consumed so far (where a truncated gzip stream ended)."""
    raw = getattr(getattr(handle, "buffer", None), "fileobj", None)
    try:
        return raw.tell() if raw is not None else None
    except (OSError, ValueError):
        return None


def iter_lines(
    path: str | Path, report: ConversionReport | None = None, skip_bad: bool = False
) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline); blank lines are skipped.

    A truncated gzip stream or undecodable bytes raise a one-line :class:`ConversionError` (byte
    offset, last complete line); with ``skip_bad`` and a ``report`` a truncated stream ends the
    file instead, the lines read so far are kept and the truncation is recorded in the counts.
    """
    number = 0
    with open_text(path) as handle:
        while True:
            try:
                line = handle.readline()
            except (EOFError, gzip.BadGzipFile, zlib.error) as err:
                offset = _compressed_offset(handle)
                where = f"byte {offset}" if offset is not None else f"line {number + 1}"
                problem = f"compressed stream ends early or is corrupt after line {number} ({err or 'truncated'})"
                if skip_bad and report is not None:
                    report.counts[f"truncated input {Path(path).name}"] = f"{where}, after line {number}"
                    logger.warning("%s: %s: %s; kept the %d lines before it", path, where, problem, number)
                    return
                raise ConversionError(
                    f"{path}: {where}: {problem}; pass --skip-bad to keep the lines before it"
                ) from None
            except UnicodeDecodeError as err:
                raise input_error(
                    path, number + 1, f"not UTF-8 text ({err.reason} at byte {err.start} of the line)", hint=None
                ) from None
            if not line:
                return
            number += 1
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
        raise TypeError(f"expected an object, got {type(record).__name__}")
    return record


def iter_records(
    path: str | Path, report: ConversionReport, skip_bad: bool = False, count_rows: bool = True
) -> Iterator[tuple[int, dict]]:
    """Parsed JSON(-lines) records; a malformed line raises with file and line, or is counted."""
    for number, line in iter_lines(path, report, skip_bad):
        if count_rows:
            report.rows_read += 1
        try:
            record = parse_record(line)
        except (ValueError, SyntaxError, TypeError) as err:
            if skip_bad:
                report.drop(f"malformed line in {Path(path).name}")
                continue
            raise input_error(path, number, f"malformed line ({err})") from None
        yield number, record


def flatten_text(value: Any) -> str:
    """Lists joined by spaces, None as '', anything else as ``str``."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(flatten_text(v) for v in value)
    return str(value)


def clean_text(value: Any) -> str:
    """One line of plain text: HTML tags stripped, entities unescaped, whitespace normalised.

    Applied the same way to every text field (titles, descriptions, categories, reviews), so that
    no field reaches a text encoder as markup. Escaped markup (``&lt;b&gt;``) is stripped too.
    """
    text = _TAG.sub(" ", flatten_text(value))
    text = html.unescape(text)
    text = _TAG.sub(" ", text)
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


def check_output_dir(output: str | Path, overwrite: bool = False) -> Path:
    """Refuse an output path that is a file, or a non-empty folder unless ``overwrite``.

    Called before any input is read, so a refused conversion costs nothing and changes nothing.
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise ConversionError(f"{output}: output path is an existing file, not a folder; give a folder path")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise ConversionError(
            f"{output}: output folder exists and is not empty; pass --overwrite to replace it "
            "whole (its files are deleted, never merged)"
        )
    return output


def _remove_stale_temporaries(output: Path) -> None:
    """Temporary folders of conversions that were killed (their process no longer exists)."""
    for path in output.parent.glob(f".{output.name}.tmp-*"):
        pid = path.name.split(".tmp-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _replace_folder(tmp: Path, output: Path, overwrite: bool) -> None:
    """``output`` becomes ``tmp`` by renames only; an old ``output`` is deleted once replaced.

    Without ``overwrite`` the single rename fails if a non-empty ``output`` appeared meanwhile
    (another conversion finished first): nothing of it is touched.
    """
    if not overwrite or not output.exists():
        try:
            os.rename(tmp, output)  # also replaces an empty folder
        except OSError as err:
            raise ConversionError(
                f"{output}: output folder appeared meanwhile and is not empty ({err.strerror}); "
                "pass --overwrite to replace it"
            ) from None
        return
    old = output.parent / f".{output.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.rename(output, old)
    try:
        os.rename(tmp, output)
    except OSError:
        os.rename(old, output)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_output_dir(output: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``output`` whole, by renames.

    A non-empty ``output`` is refused unless ``overwrite`` (then it is replaced, never merged
    into). On any error, or a kill, ``output`` is left exactly as it was; the temporary folder is
    removed (or, after a kill, by the next conversion into the same place).
    """
    output = check_output_dir(output, overwrite)
    output.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(output)
    tmp = output.parent / f".{output.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        check_output_dir(output, overwrite)  # something may have appeared meanwhile
        _replace_folder(tmp, output, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_report(folder: Path, report: ConversionReport) -> None:
    with open(folder / REPORT_FILE, "w", encoding="utf-8") as handle:
        json.dump(report.as_dict(), handle, indent=2)


def write_dataset_yaml(folder: Path, name: str, settings: dict[str, Any], comment: str) -> Path:
    """``<name>.yaml`` beside the atomic files: what RecBole needs to load and split them.

    recbole-llm's Config reads ``<data_path>/<dataset>/<dataset>.yaml`` below the user's own
    config files, so a converted dataset runs with no hand-written yaml.
    """
    path = folder / f"{name}.yaml"
    header = "".join(f"# {line}\n" for line in comment.strip().splitlines())
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(header)
        yaml.safe_dump(settings, handle, sort_keys=False, default_flow_style=None, allow_unicode=True)
    return path


def dataset_settings(
    inter_header: Sequence[str],
    item_header: Sequence[str] | None = None,
    item_text_fields: Sequence[str] = (),
    inter_text_fields: Sequence[str] = (),
) -> dict[str, Any]:
    """The yaml settings of a converted dataset: id/rating/time fields, load_col, protocol, text fields."""
    inter_fields = [h.split(":")[0] for h in inter_header]
    settings: dict[str, Any] = {"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id"}
    if "rating" in inter_fields:
        settings["RATING_FIELD"] = "rating"
    if "timestamp" in inter_fields:
        settings["TIME_FIELD"] = "timestamp"
    settings["load_col"] = {"inter": inter_fields}
    if item_header:
        settings["load_col"]["item"] = [h.split(":")[0] for h in item_header]
    if "timestamp" in inter_fields:
        settings["eval_args"] = dict(LEAVE_ONE_OUT_BY_TIME)
    settings["item_text_fields"] = list(item_text_fields) if item_header else []
    settings["inter_text_fields"] = list(inter_text_fields)
    return settings


def kcore_filter(pairs: list[tuple[str, str]], user_k: int, item_k: int) -> set[int]:
    """Indices of ``pairs`` kept by user/item k-core filtering, iterated to a fixed point."""
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
    """Run one conversion for a converter's ``main``: console logging; a failure is one stderr line, exit 1.

    Input errors, a refused output path and missing files print ``error: <message>`` (no
    traceback); the output folder is untouched in every case.
    """
    configure_cli_logging()
    try:
        convert(*args, **kwargs)
    except (ConversionError, OSError, ValueError) as err:
        message = " ".join(str(err).split())
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0
