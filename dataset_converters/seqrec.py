"""S3-Rec / FMLP-Rec / BSARec sequential files (``user item item ...``) -> RecBole atomic files.

Source format: Zhou et al., S3-Rec (CIKM 2020), reused by FMLP-Rec and BSARec: one line per
user, 1-based integer ids, items in chronological order. There are no timestamps, so each row
gets a synthetic, globally increasing ``timestamp`` (its position in the file): RecBole's
time ordering (``order: TO``) then reproduces the sequence order exactly.

Integer ids stay literal: the ``.inter`` rows are written so that RecBole's first-appearance
remapping gives token ``k`` the internal id ``k`` (checked after loading by the tests). When an
item map (``s3rec_item_id -> asin``) and item metadata (a RecBole ``.item`` file keyed by asin,
e.g. ``amazon-2014-beauty/Amazon_Beauty.item``) are given, ``<name>.item`` carries the item text.

CLI::

    python -m dataset_converters.seqrec --input seqrec/Beauty.txt --output dataset/beauty-seq \
        --item-map amazon-2014-beauty/DERIVED_s3rec_item_id2asin.tsv \
        --item-meta amazon-2014-beauty/Amazon_Beauty.item
"""
from __future__ import annotations

import argparse
import ast
import logging
from pathlib import Path
from typing import Any

from dataset_converters._common import (
    ConversionError,
    ConversionReport,
    atomic_output_dir,
    clean_text,
    run_converter_cli,
    iter_lines,
    write_atomic_file,
    write_report,
)

logger = logging.getLogger(__name__)

INTER_HEADER = ["user_id:token", "item_id:token", "timestamp:float"]
ITEM_HEADER = ["item_id:token", "asin:token", "title:token", "categories:token", "brand:token", "price:float"]


def read_sequences(path: str | Path, report: ConversionReport, skip_bad: bool = False) -> list[tuple[int, list[int]]]:
    """(user, [items...]) per line; ids must be positive integers."""
    sequences: list[tuple[int, list[int]]] = []
    for number, line in iter_lines(path):
        report.rows_read += 1
        parts = line.split()
        try:
            ids = [int(p) for p in parts]
            if any(i < 1 for i in ids):
                raise ValueError("ids must be positive integers")
        except ValueError as err:
            if skip_bad:
                report.drop("malformed line (non-integer or non-positive id)")
                continue
            raise ConversionError(f"{path}:{number}: malformed line ({err}); pass --skip-bad to skip such lines") from None
        if len(ids) < 2:
            report.drop("user line without items")
            continue
        sequences.append((ids[0], ids[1:]))
    return sequences


def _literal_row_order(rows: list[tuple[int, int, int]]) -> tuple[list[tuple[int, int, int]], bool]:
    """Rows ordered so that item k first appears before item k+1 (RecBole remaps by first appearance).

    File order is kept when it already has that property (true for the S3-Rec files, which also
    keeps user ids literal); otherwise each item's first row is moved to the front in id order.
    """
    first_seen: list[int] = []
    seen: set[int] = set()
    for _, item, _ in rows:
        if item not in seen:
            seen.add(item)
            first_seen.append(item)
    if first_seen == sorted(first_seen):
        return rows, True
    first_row: dict[int, int] = {}
    for index, (_, item, _) in enumerate(rows):
        first_row.setdefault(item, index)
    front = [first_row[i] for i in sorted(first_row)]
    front_set = set(front)
    return [rows[i] for i in front] + [r for i, r in enumerate(rows) if i not in front_set], False


def _parse_categories(value: str) -> str:
    """``'Beauty', 'Makeup'`` (RecBole token_seq of a Python list) -> ``Beauty, Makeup``."""
    value = (value or "").strip()
    if not value:
        return ""
    try:
        parsed = ast.literal_eval(f"[{value}]")
        names = [clean_text(v) for v in parsed if isinstance(v, str)]
    except (ValueError, SyntaxError):
        names = [clean_text(value)]
    return ", ".join(dict.fromkeys(n for n in names if n))


def read_item_map(path: str | Path) -> dict[int, str]:
    """``integer id <tab> original id`` (header line allowed)."""
    mapping: dict[int, str] = {}
    for number, line in iter_lines(path):
        parts = line.split("\t")
        if len(parts) < 2:
            raise ConversionError(f"{path}:{number}: expected 'id<TAB>original id'")
        try:
            mapping[int(parts[0])] = parts[1].strip()
        except ValueError:
            if number == 1:
                continue  # header
            raise ConversionError(f"{path}:{number}: '{parts[0]}' is not an integer id") from None
    return mapping


def read_recbole_item_file(path: str | Path) -> dict[str, dict[str, str]]:
    """A RecBole ``.item`` file as {item token: {field: value}} (read like RecBole does)."""
    import pandas as pd

    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, engine="python")
    frame.columns = [c.split(":")[0] for c in frame.columns]
    if "item_id" not in frame.columns:
        raise ConversionError(f"{path}:1: no item_id column")
    return {row["item_id"]: row for row in frame.to_dict("records")}


def convert_seqrec(
    input_path: str | Path,
    output_dir: str | Path,
    name: str | None = None,
    item_map: str | Path | None = None,
    item_meta: str | Path | None = None,
    skip_bad: bool = False,
) -> ConversionReport:
    """Convert a sequential benchmark file into ``output_dir/<name>.inter`` (+ ``.item`` with text)."""
    output_dir = Path(output_dir)
    name = name or output_dir.name
    report = ConversionReport(name=name)
    sequences = read_sequences(input_path, report, skip_bad)
    rows: list[tuple[int, int, int]] = []
    for user, items in sequences:
        for item in items:
            rows.append((user, item, len(rows) + 1))
    rows, file_order_literal = _literal_row_order(rows)
    item_ids = {r[1] for r in rows}
    max_item = max(item_ids) if item_ids else 0
    gaps = max_item - len(item_ids)
    report.rows_kept = len(sequences)
    report.counts.update(
        users=len({u for u, _ in sequences}), items=len(item_ids), interactions=len(rows),
        literal_item_ids=gaps == 0, rows_reordered_for_literal_ids=not file_order_literal,
    )
    if gaps:
        logger.warning("%s: %d item ids in 1..%d never occur: ids cannot all stay literal", name, gaps, max_item)
        report.counts["missing_item_ids"] = gaps

    item_rows: list[list[Any]] = []
    if item_map is not None and item_meta is not None:
        mapping = read_item_map(item_map)
        meta = read_recbole_item_file(item_meta)
        without_map = without_meta = 0
        for item in sorted(item_ids):
            original = mapping.get(item)
            if original is None:
                without_map += 1
                continue
            record = meta.get(original)
            if record is None:
                without_meta += 1
                continue
            price = record.get("price") or None
            item_rows.append([item, original, clean_text(record.get("title")),
                              _parse_categories(record.get("categories", "")), clean_text(record.get("brand")),
                              float(price) if price else None])
        report.counts.update(items_with_text=len(item_rows), items_without_id_map=without_map,
                             items_without_metadata=without_meta)
    elif (item_map is None) != (item_meta is None):
        raise ValueError("item text needs both item_map and item_meta")

    with atomic_output_dir(output_dir) as tmp:
        write_atomic_file(tmp / f"{name}.inter", INTER_HEADER, rows)
        report.files.append(str(output_dir / f"{name}.inter"))
        if item_rows:
            write_atomic_file(tmp / f"{name}.item", ITEM_HEADER, item_rows)
            report.files.append(str(output_dir / f"{name}.item"))
        write_report(tmp, report)
    logger.info(report.summary())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="S3-Rec/BSARec sequential file -> RecBole atomic files (literal ids).")
    parser.add_argument("--input", required=True, help="sequence file: 'user item item ...' per line")
    parser.add_argument("--output", required=True, help="output folder, e.g. dataset/beauty-seq")
    parser.add_argument("--name", help="dataset name; default: the output folder's name")
    parser.add_argument("--item-map", help="TSV integer item id -> original id (e.g. ASIN)")
    parser.add_argument("--item-meta", help="RecBole .item file keyed by the original id (item text)")
    parser.add_argument("--skip-bad", action="store_true", help="skip malformed lines (counted) instead of failing")
    args = parser.parse_args(argv)
    return run_converter_cli(
        convert_seqrec, args.input, args.output, args.name, args.item_map, args.item_meta, args.skip_bad
    )


if __name__ == "__main__":
    raise SystemExit(main())
