"""S3-Rec / FMLP-Rec / BSARec sequential files (``user item item ...``) -> RecBole atomic files.

Source format: Zhou et al., S3-Rec (CIKM 2020), reused by FMLP-Rec and BSARec: one line per
user, 1-based integer ids, items in chronological order. There are no timestamps, so each row
gets a synthetic, globally increasing ``timestamp`` (its position in the file): RecBole's
time ordering (``order: TO``) then reproduces the sequence order exactly. ``<name>.yaml`` holds
the fields, ``load_col`` and the leave-one-out protocol, so SASRec runs with no hand-written yaml.

Item text, two layouts: an item map (``s3rec_item_id -> asin``) plus a RecBole ``.item`` file keyed
by asin (``amazon-2014-beauty/Amazon_Beauty.item``), or the S3-Rec ``*.item.json`` layout
(``{"<key>": {"title": ..., ...}}``, item id = key + 1, as for Yelp). Text is cleaned like every
converter's (HTML stripped, entities unescaped, whitespace normalised).

Repeated (user, item) rows are counted (and the users whose test item already occurs earlier in
their sequence); ``--dedup`` keeps only the first occurrence of each pair.

``--sample-users N --seed S`` keeps N users drawn with a seeded generator. Item ids then:

- ``--ids keep`` (default): tokens stay the file's ids. Rows are ordered so that RecBole's
  first-appearance remapping keeps the ids' order (token k -> internal id k when no id is missing),
  so a sample numbers items exactly as the full file does, up to the gaps.
- ``--ids first-appearance``: users and items are renumbered 1, 2, ... in the order they first
  occur in the sampled file. Consecutive items of one sequence then often get consecutive ids,
  which changes results: on one sample 12.6% of test targets became "previous id + 1" instead
  of 2.9%. The share is in the report (``test_targets_previous_id_plus_1``) for either choice.

CLI::

    python -m dataset_converters.seqrec --input seqrec/LastFM.txt --output dataset/lastfm-300 \
        --sample-users 300 --seed 0 [--ids keep|first-appearance] [--dedup] [--item-json X.item.json]
    python -m dataset_converters.seqrec --input seqrec/Beauty.txt --output dataset/beauty-seq \
        --item-map amazon-2014-beauty/DERIVED_s3rec_item_id2asin.tsv \
        --item-meta amazon-2014-beauty/Amazon_Beauty.item
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import random
from pathlib import Path
from typing import Any

from dataset_converters._common import (
    ConversionError,
    ConversionReport,
    atomic_output_dir,
    check_output_dir,
    dataset_settings,
    input_error,
    iter_lines,
    run_converter_cli,
    write_atomic_file,
    write_dataset_yaml,
    write_report,
)

logger = logging.getLogger(__name__)

INTER_HEADER = ["user_id:token", "item_id:token", "timestamp:float"]
ITEM_HEADER = ["item_id:token", "asin:token", "title:token", "categories:token", "brand:token", "price:float"]
MAP_TEXT_FIELDS = ["title", "categories", "brand"]
ID_CHOICES = ("keep", "first-appearance")
Sequences = list[tuple[int, list[int]]]


def read_sequences(path: str | Path, report: ConversionReport, skip_bad: bool = False) -> Sequences:
    """(user, [items...]) per line; ids must be positive integers."""
    sequences: Sequences = []
    for number, line in iter_lines(path, report, skip_bad):
        report.rows_read += 1
        parts = line.split()
        bad = next((p for p in parts if not p.isdigit() or int(p) < 1), None)
        if bad is not None:
            if skip_bad:
                report.drop("malformed line (non-integer or non-positive id)")
                continue
            field_name = "user id" if bad == parts[0] else "item id"
            raise input_error(path, number, f"malformed line ('{bad}' is not a positive integer)", field_name)
        if len(parts) < 2:
            report.drop("user line without items")
            continue
        sequences.append((int(parts[0]), [int(p) for p in parts[1:]]))
    return sequences


def sample_users(sequences: Sequences, n: int | None, seed: int, report: ConversionReport) -> Sequences:
    """``n`` users drawn by ``random.Random(seed)`` (file order kept); None or n >= users: all."""
    if n is None or n >= len(sequences):
        return sequences
    if n < 1:
        raise ConversionError(f"--sample-users must be >= 1, got {n}")
    chosen = set(random.Random(seed).sample(range(len(sequences)), n))
    report.drop(f"user not in the sample of {n} (seed {seed})", len(sequences) - n)
    report.counts["sample"] = {"users": n, "seed": seed}
    return [s for i, s in enumerate(sequences) if i in chosen]


def repeated_pairs(sequences: Sequences, dedup: bool, report: ConversionReport) -> Sequences:
    """Count repeated (user, item) rows and users whose test item occurred before; drop repeats if ``dedup``."""
    repeated = test_seen = 0
    out: Sequences = []
    for user, items in sequences:
        seen: set[int] = set()
        kept = []
        for item in items:
            repeated += item in seen
            if item not in seen or not dedup:
                kept.append(item)
            seen.add(item)
        test_seen += items[-1] in items[:-1]
        if len(kept) >= 1:
            out.append((user, kept))
    report.counts.update(repeated_user_item_rows=repeated, users_whose_test_item_occurs_earlier=test_seen)
    if dedup:
        report.drop("repeated (user, item) row (--dedup kept the first)", repeated)
    return out


def renumber_first_appearance(sequences: Sequences) -> Sequences:
    """Users and items renumbered 1, 2, ... by first appearance in file order."""
    users: dict[int, int] = {}
    items: dict[int, int] = {}
    out: Sequences = []
    for user, seq in sequences:
        new_user = users.setdefault(user, len(users) + 1)
        out.append((new_user, [items.setdefault(i, len(items) + 1) for i in seq]))
    return out


def _literal_row_order(rows: list[tuple[int, int, int]]) -> tuple[list[tuple[int, int, int]], bool]:
    """Rows ordered so that item k first appears before item k+1 (RecBole remaps by first appearance).

    File order is kept when it already has that property (true for the S3-Rec files, which also
    keeps user ids literal); otherwise each item's first row is moved to the front in id order.
    """
    first_row: dict[int, int] = {}
    for index, (_, item, _) in enumerate(rows):
        first_row.setdefault(item, index)
    first_seen = list(first_row)
    if first_seen == sorted(first_seen):
        return rows, True
    front = [first_row[i] for i in sorted(first_row)]
    front_set = set(front)
    return [rows[i] for i in front] + [r for i, r in enumerate(rows) if i not in front_set], False


def previous_plus_one_share(rows: list[tuple[int, int, int]]) -> float:
    """Share of users whose test item's internal id is the previous item's + 1.

    Internal ids as RecBole assigns them: by first appearance of the token in the written rows.
    """
    internal: dict[int, int] = {}
    for _, item, _ in rows:
        internal.setdefault(item, len(internal) + 1)
    last_two: dict[int, list[tuple[int, int]]] = {}
    for user, item, time in rows:
        last_two.setdefault(user, []).append((time, item))
    users = [sorted(v)[-2:] for v in last_two.values() if len(v) >= 2]
    hits = sum(internal[b[1]] == internal[a[1]] + 1 for a, b in users)
    return round(hits / len(users), 4) if users else 0.0


def _parse_categories(value: str) -> str:
    """``'Beauty', 'Makeup'`` (RecBole token_seq of a Python list) -> ``Beauty, Makeup``."""
    value = (value or "").strip()
    if not value:
        return ""
    try:
        parsed = ast.literal_eval(f"[{value}]")
        names = [str(v) for v in parsed if isinstance(v, str)]
    except (ValueError, SyntaxError):
        names = [value]
    return ", ".join(dict.fromkeys(n for n in names if n))


def read_item_map(path: str | Path) -> dict[int, str]:
    """``integer id <tab> original id`` (header line allowed)."""
    mapping: dict[int, str] = {}
    for number, line in iter_lines(path):
        parts = line.split("\t")
        if len(parts) < 2:
            raise input_error(path, number, "expected 'id<TAB>original id'", hint=None)
        try:
            mapping[int(parts[0])] = parts[1].strip()
        except ValueError:
            if number == 1:
                continue  # header
            raise input_error(path, number, f"'{parts[0]}' is not an integer id", "id", hint=None) from None
    return mapping


def read_recbole_item_file(path: str | Path) -> dict[str, dict[str, str]]:
    """A RecBole ``.item`` file as {item token: {field: value}} (read like RecBole does)."""
    import pandas as pd

    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, engine="python")
    frame.columns = [c.split(":")[0] for c in frame.columns]
    if "item_id" not in frame.columns:
        raise input_error(path, 1, "no item_id column", "item_id", hint=None)
    return {row["item_id"]: row for row in frame.to_dict("records")}


def read_item_json(path: str | Path, report: ConversionReport) -> tuple[list[str], dict[int, dict[str, str]]]:
    """S3-Rec ``*.item.json``: ``{"<key>": {"title": ..., ...}}`` -> (fields, {key + 1: cleaned texts})."""
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except json.JSONDecodeError as err:
        raise input_error(path, err.lineno, f"malformed JSON ({err.msg})", hint=None) from None
    except UnicodeDecodeError as err:
        raise input_error(path, 1, f"not UTF-8 text ({err.reason})", hint=None) from None
    if not isinstance(raw, dict):
        raise input_error(path, 1, 'expected an object {"<key>": {"title": ...}}', hint=None)
    fields: dict[str, None] = {}
    texts: dict[int, dict[str, str]] = {}
    for key, record in raw.items():
        if not str(key).lstrip("-").isdigit() or int(key) < 0:
            raise input_error(path, f"key {key!r}", "item key is not a non-negative integer", "key", hint=None)
        if not isinstance(record, dict):
            raise input_error(path, f"key {key!r}", "item record is not an object", "value", hint=None)
        if "title" not in record:
            raise input_error(path, f"key {key!r}", "missing", "title", hint=None)
        for name in record:
            fields.setdefault(str(name), None)
        texts[int(key) + 1] = {str(name): report.text(str(name), value) for name, value in record.items()}
    return ["title"] + [f for f in fields if f != "title"], texts


def _item_rows_from_json(path, item_ids: set[int], report: ConversionReport) -> tuple[list[str], list[list[Any]]]:
    fields, texts = read_item_json(path, report)
    rows = [[item] + [texts[item].get(f, "") for f in fields] for item in sorted(item_ids) if item in texts]
    report.counts.update(
        items_with_text=len(rows),
        items_without_text=len(item_ids) - len(rows),
        item_json_entries_unused=len(set(texts) - item_ids),
    )
    return ["item_id:token"] + [f"{f}:token" for f in fields], rows


def _item_rows_from_map(item_map, item_meta, item_ids: set[int], report: ConversionReport) -> list[list[Any]]:
    mapping = read_item_map(item_map)
    meta = read_recbole_item_file(item_meta)
    rows: list[list[Any]] = []
    without_map = without_meta = 0
    for item in sorted(item_ids):
        original = mapping.get(item)
        record = meta.get(original) if original is not None else None
        without_map += original is None
        without_meta += original is not None and record is None
        if record is None:
            continue
        price = record.get("price") or None
        rows.append(
            [
                item,
                original,
                report.text("title", record.get("title")),
                report.text("categories", _parse_categories(record.get("categories", ""))),
                report.text("brand", record.get("brand")),
                float(price) if price else None,
            ]
        )
    report.counts.update(
        items_with_text=len(rows), items_without_id_map=without_map, items_without_metadata=without_meta
    )
    return rows


def _item_text(
    item_ids: set[int], report: ConversionReport, item_map, item_meta, item_json
) -> tuple[list[str] | None, list[list[Any]]]:
    """(item header, item rows) from whichever text source was given; (None, []) without one."""
    if (item_map is None) != (item_meta is None):
        raise ConversionError("item text needs both --item-map and --item-meta")
    if item_json is not None and item_map is not None:
        raise ConversionError("give either --item-json or --item-map/--item-meta, not both")
    if item_json is not None:
        return _item_rows_from_json(item_json, item_ids, report)
    if item_map is not None:
        return ITEM_HEADER, _item_rows_from_map(item_map, item_meta, item_ids, report)
    return None, []


def _rows(sequences: Sequences, report: ConversionReport) -> list[tuple[int, int, int]]:
    """(user, item, synthetic timestamp) rows, ordered for literal ids when possible."""
    rows: list[tuple[int, int, int]] = []
    for user, items in sequences:
        for item in items:
            rows.append((user, item, len(rows) + 1))
    rows, file_order_literal = _literal_row_order(rows)
    item_ids = {r[1] for r in rows}
    gaps = (max(item_ids) if item_ids else 0) - len(item_ids)
    report.counts.update(
        users=len({u for u, _ in sequences}),
        items=len(item_ids),
        interactions=len(rows),
        literal_item_ids=gaps == 0,
        rows_reordered_for_literal_ids=not file_order_literal,
        test_targets_previous_id_plus_1=previous_plus_one_share(rows),
    )
    if gaps:
        report.counts["missing_item_ids"] = gaps
    return rows


def _write(
    output_dir: Path, name: str, report: ConversionReport, rows, item_header, item_rows, overwrite: bool
) -> None:
    with atomic_output_dir(output_dir, overwrite) as tmp:
        write_atomic_file(tmp / f"{name}.inter", INTER_HEADER, rows)
        report.files.append(str(output_dir / f"{name}.inter"))
        if item_rows:
            write_atomic_file(tmp / f"{name}.item", item_header, item_rows)
            report.files.append(str(output_dir / f"{name}.item"))
        text_fields = (
            [h.split(":")[0] for h in item_header[1:] if h.endswith(":token") and h != "asin:token"]
            if item_rows
            else []
        )
        settings = dataset_settings(INTER_HEADER, item_header if item_rows else None, text_fields)
        write_dataset_yaml(
            tmp,
            name,
            settings,
            f"{name}: sequential file converted by dataset_converters.seqrec\n"
            f"{report.counts['interactions']:,} interactions, {report.counts['users']:,} users, "
            f"{report.counts['items']:,} items; timestamps are positions in the sequence.\n"
            "Leave-one-out by time (last item = test, second last = valid), full ranking.",
        )
        report.files.append(str(output_dir / f"{name}.yaml"))
        write_report(tmp, report)


def convert_seqrec(
    input_path: str | Path,
    output_dir: str | Path,
    name: str | None = None,
    item_map: str | Path | None = None,
    item_meta: str | Path | None = None,
    skip_bad: bool = False,
    item_json: str | Path | None = None,
    dedup: bool = False,
    sample_users_n: int | None = None,
    seed: int = 0,
    ids: str = "keep",
    overwrite: bool = False,
) -> ConversionReport:
    """Convert a sequential benchmark file into ``output_dir/<name>.{inter,yaml}`` (+ ``.item`` with text).

    Steps in order: read, sample users (``sample_users_n``, ``seed``), count (and with ``dedup``
    drop) repeated pairs, renumber (``ids``: see the module docstring), write.
    """
    if ids not in ID_CHOICES:
        raise ConversionError(f"--ids must be one of {', '.join(ID_CHOICES)}, got '{ids}'")
    if ids != "keep" and (item_map is not None or item_json is not None):
        raise ConversionError(
            "--ids first-appearance renumbers items, so item text files keyed by the "
            "original ids cannot be joined; use --ids keep"
        )
    output_dir = check_output_dir(output_dir, overwrite)
    name = name or output_dir.name
    report = ConversionReport(name=name)
    sequences = read_sequences(input_path, report, skip_bad)
    sequences = sample_users(sequences, sample_users_n, seed, report)
    sequences = repeated_pairs(sequences, dedup, report)
    if ids == "first-appearance":
        sequences = renumber_first_appearance(sequences)
    report.counts["ids"] = ids
    report.rows_kept = len(sequences)
    rows = _rows(sequences, report)
    if not report.counts["literal_item_ids"] and ids == "keep":
        logger.info(
            "%s: %d item ids never occur: RecBole numbers items by their rank instead",
            name,
            report.counts["missing_item_ids"],
        )
    item_header, item_rows = _item_text({r[1] for r in rows}, report, item_map, item_meta, item_json)
    _write(output_dir, name, report, rows, item_header, item_rows, overwrite)
    logger.info(report.summary())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="S3-Rec/BSARec sequential file -> RecBole atomic files.", allow_abbrev=False
    )
    parser.add_argument("--input", required=True, help="sequence file: 'user item item ...' per line")
    parser.add_argument("--output", required=True, help="output folder, e.g. dataset/beauty-seq")
    parser.add_argument("--name", help="dataset name; default: the output folder's name")
    parser.add_argument("--item-map", help="TSV integer item id -> original id (e.g. ASIN)")
    parser.add_argument("--item-meta", help="RecBole .item file keyed by the original id (item text)")
    parser.add_argument("--item-json", help='S3-Rec item text {"<key>": {"title": ...}} (item id = key + 1)')
    parser.add_argument("--dedup", action="store_true", help="drop repeated (user, item) rows (first kept)")
    parser.add_argument("--sample-users", type=int, help="keep this many users, drawn with --seed")
    parser.add_argument("--seed", type=int, default=0, help="seed of the user sample (default 0)")
    parser.add_argument(
        "--ids",
        choices=ID_CHOICES,
        default="keep",
        help="keep the file's ids (default) or renumber by first appearance (changes results: "
        "see the module docstring)",
    )
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip malformed lines and stop at a truncated stream (counted) instead of failing",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder whole")
    args = parser.parse_args(argv)
    return run_converter_cli(
        convert_seqrec,
        args.input,
        args.output,
        args.name,
        args.item_map,
        args.item_meta,
        args.skip_bad,
        item_json=args.item_json,
        dedup=args.dedup,
        sample_users_n=args.sample_users,
        seed=args.seed,
        ids=args.ids,
        overwrite=args.overwrite,
    )


if __name__ == "__main__":
    raise SystemExit(main())
