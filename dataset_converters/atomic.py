"""Copy existing RecBole atomic files (e.g. ``lastfm/lastfm.{inter,item}``) under a dataset name.

The files are checked (header of ``field:type`` columns, same column count on every line) and
copied through a temporary folder, renamed to ``<name>.<suffix>``.

CLI::

    python -m dataset_converters.atomic --input ../shared/datasets/lastfm --output dataset/lastfm
"""
from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from recbole.utils import FeatureType

from dataset_converters._common import (
    ConversionError,
    ConversionReport,
    atomic_output_dir,
    run_converter_cli,
    open_text,
    write_report,
)

logger = logging.getLogger(__name__)
ATOMIC_SUFFIXES = ("inter", "item", "user", "kg", "link", "net")


def check_atomic_file(path: Path, report: ConversionReport, count_rows: bool) -> None:
    """Header ``field:type`` with known types; every line has as many columns as the header."""
    with open_text(path) as handle:
        header = handle.readline().rstrip("\r\n").split("\t")
        for column in header:
            field, _, ftype = column.partition(":")
            if not field or ftype not in {t.value for t in FeatureType}:
                raise ConversionError(f"{path}:1: header column '{column}' is not 'field:type' with a RecBole type")
        for number, line in enumerate(handle, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            if count_rows:
                report.rows_read += 1
            if line.count("\t") != len(header) - 1:
                raise ConversionError(f"{path}:{number}: {line.count(chr(9)) + 1} columns, header has {len(header)}")
    if count_rows:
        report.rows_kept = report.rows_read


def copy_atomic(input_dir: str | Path, output_dir: str | Path, name: str | None = None,
                source_name: str | None = None) -> ConversionReport:
    """Copy ``input_dir/<source_name>.<suffix>`` to ``output_dir/<name>.<suffix>`` for every atomic suffix."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    name = name or output_dir.name
    source_name = source_name or input_dir.name
    report = ConversionReport(name=name)
    sources = [input_dir / f"{source_name}.{s}" for s in ATOMIC_SUFFIXES if (input_dir / f"{source_name}.{s}").is_file()]
    if not any(p.suffix == ".inter" for p in sources):
        raise FileNotFoundError(f"No {source_name}.inter in {input_dir}")
    with atomic_output_dir(output_dir) as tmp:
        for path in sources:
            check_atomic_file(path, report, count_rows=path.suffix == ".inter")
            shutil.copyfile(path, tmp / f"{name}{path.suffix}")
            report.files.append(str(output_dir / f"{name}{path.suffix}"))
        write_report(tmp, report)
    logger.info(report.summary())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Copy RecBole atomic files under a dataset name.")
    parser.add_argument("--input", required=True, help="folder holding <source>.inter (and .item, .user, ...)")
    parser.add_argument("--output", required=True, help="output folder, e.g. dataset/lastfm")
    parser.add_argument("--name", help="dataset name; default: the output folder's name")
    parser.add_argument("--source-name", help="file prefix in --input; default: the input folder's name")
    args = parser.parse_args(argv)
    return run_converter_cli(copy_atomic, args.input, args.output, args.name, args.source_name)


if __name__ == "__main__":
    raise SystemExit(main())
