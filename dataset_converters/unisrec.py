"""UniSRec / RecBole pre-split benchmark files (``Scientific.*``) -> RecBole atomic files.

Source format: Hou et al., UniSRec (KDD 2022), built on Amazon 2018 (Ni, Li & McAuley, EMNLP
2019): ``<prefix>.{train,valid,test}.inter`` (``user_id:token item_id_list:token_seq
item_id:token``, 0-based integer indices, one row per prediction target), ``<prefix>.text``
(``item_id`` = ASIN, item text), ``<prefix>.item2index`` / ``<prefix>.user2index``.

Output: ``<name>.{train,valid,test}.inter`` (validated, same columns) for RecBole's
``benchmark_filename: [train, valid, test]`` with ``alias_of_item_id: [item_id_list]``, and
``<name>.item`` (``item_id:token`` index, ``asin:token``, ``text:token``).

CLI::

    python -m dataset_converters.unisrec --input ../shared/datasets/amazon-2018-scientific \
        --prefix Scientific --output dataset/scientific
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dataset_converters._common import (
    ConversionError,
    ConversionReport,
    atomic_output_dir,
    check_output_dir,
    input_error,
    iter_lines,
    run_converter_cli,
    write_atomic_file,
    write_dataset_yaml,
    write_report,
)

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
INTER_HEADER = ["user_id:token", "item_id_list:token_seq", "item_id:token"]
ITEM_HEADER = ["item_id:token", "asin:token", "text:token"]


def _read_index(path: Path) -> dict[str, str]:
    """``original id <tab> index`` -> {original: index}."""
    mapping: dict[str, str] = {}
    for number, line in iter_lines(path):
        parts = line.split("\t")
        if len(parts) != 2 or not parts[1].strip().isdigit():
            raise input_error(path, number, "expected 'original id<TAB>integer index'", hint=None)
        mapping[parts[0].strip()] = parts[1].strip()
    return mapping


def read_split(
    path: Path, report: ConversionReport, known_items: set[str] | None, skip_bad: bool
) -> list[tuple[str, str, str]]:
    """``(user, 'item item ...', target)`` rows of one UniSRec-format file (header and integer ids checked)."""
    rows: list[tuple[str, str, str]] = []
    for number, line in iter_lines(path, report, skip_bad):
        if number == 1:
            if line.split("\t") != INTER_HEADER:
                raise input_error(path, 1, f"header {line.split(chr(9))} is not {INTER_HEADER}", hint=None)
            continue
        report.rows_read += 1
        parts = line.split("\t")
        problem = None
        if len(parts) != 3:
            problem = f"{len(parts)} columns, expected 3"
        else:
            ids = parts[1].split() + [parts[2]]
            if not parts[0].strip() or not all(i.isdigit() for i in ids):
                problem = "user or item ids are not integer indices"
            elif known_items is not None and any(i not in known_items for i in ids):
                problem = "item index not in item2index"
        if problem:
            if skip_bad:
                report.drop(f"malformed line ({problem})")
                continue
            raise input_error(path, number, problem)
        rows.append((parts[0].strip(), " ".join(parts[1].split()), parts[2].strip()))
    return rows


def _yaml_settings(with_text: bool) -> dict:
    """Dataset yaml of the pre-split files: RecBole's benchmark_filename with the published split."""
    settings: dict = {
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": None,
        "benchmark_filename": list(SPLITS),
        "alias_of_item_id": ["item_id_list"],
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
    }
    if with_text:
        settings["load_col"]["item"] = ["item_id", "text"]
    settings["item_text_fields"] = ["text"] if with_text else []
    return settings


def _item_text_rows(
    text_path: Path, item_index: dict[str, str], item_index_path: Path, items: set[str], report: ConversionReport
) -> list[list[str]]:
    """``[index, asin, text]`` rows of the ``.text`` file, sorted by index (none without the file).

    Text is keyed by ASIN, the splits by index: rows whose ASIN has no index are counted, not kept.
    """
    if not text_path.is_file():
        return []
    if not item_index:
        raise ConversionError(f"{text_path} needs {item_index_path} to map ASINs to indices")
    item_rows: list[list[str]] = []
    without_index = 0
    for number, line in iter_lines(text_path):
        if number == 1 and line.startswith("item_id:"):
            continue
        asin, _, text = line.partition("\t")
        index = item_index.get(asin.strip())
        if index is None:
            without_index += 1
            continue
        item_rows.append([index, asin.strip(), report.text("text", text).rstrip(". ").strip() + "."])
    item_rows.sort(key=lambda r: int(r[0]))
    report.counts.update(
        items_with_text=len(item_rows),
        items_without_text=len(items - {r[0] for r in item_rows}),
        text_rows_without_index=without_index,
    )
    return item_rows


def convert_unisrec(
    input_dir: str | Path,
    output_dir: str | Path,
    prefix: str | None = None,
    name: str | None = None,
    skip_bad: bool = False,
    overwrite: bool = False,
) -> ConversionReport:
    """Convert ``input_dir/<prefix>.*`` into ``output_dir/<name>.{train,valid,test}.inter`` + ``.item``, ``.yaml``."""
    input_dir, output_dir = Path(input_dir), check_output_dir(output_dir, overwrite)
    name = name or output_dir.name
    if prefix is None:
        found = sorted(input_dir.glob("*.train.inter"))
        if len(found) != 1:
            raise ConversionError(f"{input_dir}: give --prefix (found {len(found)} *.train.inter files)")
        prefix = found[0].name[: -len(".train.inter")]
    report = ConversionReport(name=name)
    item_index_path = input_dir / f"{prefix}.item2index"
    item_index = _read_index(item_index_path) if item_index_path.is_file() else {}
    known = set(item_index.values()) if item_index else None
    splits = {s: read_split(input_dir / f"{prefix}.{s}.inter", report, known, skip_bad) for s in SPLITS}
    report.rows_kept = sum(len(rows) for rows in splits.values())

    users = {r[0] for rows in splits.values() for r in rows}
    items = {i for rows in splits.values() for r in rows for i in r[1].split() + [r[2]]}
    # Every user's full sequence is its test row's history plus the target.
    interactions = sum(len(r[1].split()) + 1 for r in splits["test"])
    report.counts.update({f"{s}_rows": len(rows) for s, rows in splits.items()})
    report.counts.update(users=len(users), items=len(items), interactions=interactions)

    item_rows = _item_text_rows(input_dir / f"{prefix}.text", item_index, item_index_path, items, report)

    with atomic_output_dir(output_dir, overwrite) as tmp:
        if item_rows:
            write_atomic_file(tmp / f"{name}.item", ITEM_HEADER, item_rows)
            report.files.append(str(output_dir / f"{name}.item"))
        for split, rows in splits.items():
            write_atomic_file(tmp / f"{name}.{split}.inter", INTER_HEADER, rows)
            report.files.append(str(output_dir / f"{name}.{split}.inter"))
        write_dataset_yaml(
            tmp,
            name,
            _yaml_settings(bool(item_rows)),
            f"{name}: UniSRec pre-split benchmark converted by dataset_converters.unisrec\n"
            "(train/valid/test files as published; one row per prediction target).",
        )
        report.files.append(str(output_dir / f"{name}.yaml"))
        write_report(tmp, report)
    logger.info(report.summary())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="UniSRec/RecBole pre-split benchmark files -> RecBole atomic files.", allow_abbrev=False
    )
    parser.add_argument(
        "--input", required=True, help="folder holding <prefix>.{train,valid,test}.inter, .text, .item2index"
    )
    parser.add_argument("--prefix", help="file prefix, e.g. Scientific (default: the only *.train.inter)")
    parser.add_argument("--output", required=True, help="output folder, e.g. dataset/scientific")
    parser.add_argument("--name", help="dataset name; default: the output folder's name")
    parser.add_argument("--skip-bad", action="store_true", help="skip malformed lines (counted) instead of failing")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder whole")
    args = parser.parse_args(argv)
    return run_converter_cli(
        convert_unisrec, args.input, args.output, args.prefix, args.name, args.skip_bad, overwrite=args.overwrite
    )


if __name__ == "__main__":
    raise SystemExit(main())
