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
    ConversionReport,
    atomic_output_dir,
    check_output_dir,
    dataset_settings,
    input_error,
    open_text,
    run_converter_cli,
    write_dataset_yaml,
    write_report,
)

logger = logging.getLogger(__name__)
ATOMIC_SUFFIXES = ("inter", "item", "user", "kg", "link", "net")


def check_atomic_file(path: Path, report: ConversionReport, count_rows: bool) -> list[str]:
    """Header ``field:type`` with known types; every line has as many columns as the header."""
    with open_text(path) as handle:
        header = handle.readline().rstrip("\r\n").split("\t")
        for column in header:
            field, _, ftype = column.partition(":")
            if not field or ftype not in {t.value for t in FeatureType}:
                raise input_error(path, 1, "header column is not 'field:type' with a RecBole type", column, hint=None)
        for number, line in enumerate(handle, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            if count_rows:
                report.rows_read += 1
            if line.count("\t") != len(header) - 1:
                raise input_error(
                    path, number, f"{line.count(chr(9)) + 1} columns, header has {len(header)}", hint=None
                )
    if count_rows:
        report.rows_kept = report.rows_read
    return header


def _yaml_settings(headers: dict[str, list[str]]) -> dict:
    """``load_col`` of every copied file; the protocol and text fields from the ``.inter``/``.item`` headers."""
    item_header = headers.get(".item")
    item_text = [
        h.split(":")[0] for h in item_header or [] if h.endswith(":token") and h.split(":")[0] not in ("item_id", "url")
    ]
    settings = dataset_settings(headers[".inter"], item_header, item_text)
    for suffix, header in headers.items():
        settings["load_col"][suffix[1:]] = [h.split(":")[0] for h in header]
    return settings


def copy_atomic(
    input_dir: str | Path,
    output_dir: str | Path,
    name: str | None = None,
    source_name: str | None = None,
    overwrite: bool = False,
) -> ConversionReport:
    """Copy ``input_dir/<source_name>.<suffix>`` to ``output_dir/<name>.<suffix>`` for every atomic suffix.

    A ``<name>.yaml`` with the fields of the copied files (``load_col``; leave-one-out by time when
    the ``.inter`` has a ``timestamp``) is written beside them.
    """
    input_dir, output_dir = Path(input_dir), check_output_dir(output_dir, overwrite)
    name = name or output_dir.name
    source_name = source_name or input_dir.name
    report = ConversionReport(name=name)
    sources = [
        input_dir / f"{source_name}.{s}" for s in ATOMIC_SUFFIXES if (input_dir / f"{source_name}.{s}").is_file()
    ]
    if not any(p.suffix == ".inter" for p in sources):
        raise FileNotFoundError(f"No {source_name}.inter in {input_dir}")
    with atomic_output_dir(output_dir, overwrite) as tmp:
        headers = {}
        for path in sources:
            headers[path.suffix] = check_atomic_file(path, report, count_rows=path.suffix == ".inter")
            shutil.copyfile(path, tmp / f"{name}{path.suffix}")
            report.files.append(str(output_dir / f"{name}{path.suffix}"))
        write_dataset_yaml(tmp, name, _yaml_settings(headers), f"{name}: RecBole atomic files copied from {input_dir}")
        report.files.append(str(output_dir / f"{name}.yaml"))
        write_report(tmp, report)
    logger.info(report.summary())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Copy RecBole atomic files under a dataset name.", allow_abbrev=False)
    parser.add_argument("--input", required=True, help="folder holding <source>.inter (and .item, .user, ...)")
    parser.add_argument("--output", required=True, help="output folder, e.g. dataset/lastfm")
    parser.add_argument("--name", help="dataset name; default: the output folder's name")
    parser.add_argument("--source-name", help="file prefix in --input; default: the input folder's name")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder whole")
    args = parser.parse_args(argv)
    return run_converter_cli(
        copy_atomic, args.input, args.output, args.name, args.source_name, overwrite=args.overwrite
    )


if __name__ == "__main__":
    raise SystemExit(main())
