"""Amazon reviews (2014, 2018 JSON lines; 2023 JSONL) and their metadata -> RecBole atomic files.

Sources: He & McAuley, WWW 2016 (2014); Ni, Li & McAuley, EMNLP 2019 (2018); Hou et al. 2024
(2023). Review fields: 2014/2018 ``reviewerID, asin, overall, reviewText, summary,
unixReviewTime`` (seconds); 2023 ``user_id, parent_asin, rating, text, title, timestamp`` (ms,
converted to seconds). Gzip or plain files are both accepted.

Output ``<name>.inter``: ``user_id:token item_id:token rating:float timestamp:float
review_text:token summary:token``; ``<name>.item`` (when metadata is given): ``item_id:token
title:token categories:token brand:token description:token price:float``; ``<name>.yaml`` (fields,
text fields, leave-one-out by time) and ``conversion_report.json``.

Order of the steps: every text field is cleaned (HTML stripped, entities unescaped, whitespace
normalised); repeated (user, item) pairs keep the earliest review (the 2018 5-core files repeat
rows); then the k-core filter runs on the deduplicated pairs until it no longer removes anything.
Files published as k-core (``*_5.json.gz``) get ``--kcore 5`` by default, so the output is really
5-core after deduplication; ``--kcore 0`` turns it off.

CLI::

    python -m dataset_converters.amazon --input All_Beauty_5.json.gz [--meta meta_X.json.gz] \
        --output dataset/amazon-beauty [--kcore 5] [--min-rating 4] [--skip-bad] [--overwrite]
"""

from __future__ import annotations

import argparse
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataset_converters._common import (
    ConversionReport,
    atomic_output_dir,
    check_output_dir,
    dataset_settings,
    input_error,
    iter_records,
    kcore_filter,
    run_converter_cli,
    write_atomic_file,
    write_dataset_yaml,
    write_report,
)

logger = logging.getLogger(__name__)

INTER_HEADER = [
    "user_id:token",
    "item_id:token",
    "rating:float",
    "timestamp:float",
    "review_text:token",
    "summary:token",
]
ITEM_HEADER = ["item_id:token", "title:token", "categories:token", "brand:token", "description:token", "price:float"]
ITEM_TEXT_FIELDS = ["title", "categories", "brand", "description"]
INTER_TEXT_FIELDS = ["summary", "review_text"]
# (user, item, rating, time, review text, summary) field names per format.
FIELDS_2018 = ("reviewerID", "asin", "overall", "unixReviewTime", "reviewText", "summary")
FIELDS_2023 = ("user_id", "parent_asin", "rating", "timestamp", "text", "title")
_PRICE = re.compile(r"\d[\d,]*(?:\.\d+)?")
_PUBLISHED_KCORE = re.compile(r"_(\d+)\.jsonl?(\.gz)?$")


def _review_fields(record: dict) -> tuple[list[Any], tuple[str, ...], str]:
    """([user, item, rating, time, text, summary], their field names, format)."""
    if "reviewerID" in record or "overall" in record or ("asin" in record and "user_id" not in record):
        return [record.get(f) for f in FIELDS_2018], FIELDS_2018, "2014/2018"
    values = [record.get(f) for f in FIELDS_2023]
    if values[1] is None:
        values[1] = record.get("asin")
    return values, FIELDS_2023, "2023"


def _parse_review(record: dict, path, number: int, report: ConversionReport) -> tuple[list[Any], str]:
    """One .inter row from a review record; a missing or invalid field raises naming it."""
    values, names, fmt = _review_fields(record)
    for position in range(4):
        if values[position] is None or values[position] == "":
            raise input_error(path, number, "missing", names[position])
    for position in (2, 3):
        try:
            values[position] = float(values[position])
        except (TypeError, ValueError):
            raise input_error(path, number, f"{values[position]!r} is not a number", names[position]) from None
    if fmt == "2023":
        values[3] /= 1000.0  # milliseconds
    row = [
        str(values[0]),
        str(values[1]),
        values[2],
        values[3],
        report.text("review_text", values[4]),
        report.text("summary", values[5]),
    ]
    return row, fmt


@dataclass
class _Reviews:
    """Deduplicated review rows: the earliest review of each (user, item) pair."""

    rows: list[list[Any]] = field(default_factory=list)
    formats: set[str] = field(default_factory=set)
    _index: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, row: list[Any], report: ConversionReport) -> None:
        pair = (row[0], row[1])
        previous = self._index.get(pair)
        if previous is None:
            self._index[pair] = len(self.rows)
            self.rows.append(row)
            return
        report.drop("duplicate (user, item) pair (kept the earliest review)")
        if row[3] < self.rows[previous][3]:
            self.rows[previous] = row


def _read_reviews(path, report: ConversionReport, min_rating: float | None, skip_bad: bool) -> _Reviews:
    reviews = _Reviews()
    for number, record in iter_records(path, report, skip_bad):
        try:
            row, fmt = _parse_review(record, path, number, report)
        except ValueError:
            if not skip_bad:
                raise
            report.drop("record with a missing or invalid user, item, rating or time field")
            continue
        reviews.formats.add(fmt)
        if min_rating is not None and row[2] < min_rating:
            report.drop(f"rating below {min_rating:g}")
            continue
        reviews.add(row, report)
    return reviews


def published_kcore(path: str | Path) -> int:
    """k of a file published as k-core (``Gift_Cards_5.json.gz`` -> 5), else 0."""
    match = _PUBLISHED_KCORE.search(Path(path).name)
    return int(match.group(1)) if match else 0


def _kcore(rows: list[list[Any]], report: ConversionReport, user_k: int, item_k: int) -> list[list[Any]]:
    """Rows left by the k-core filter on the deduplicated pairs (removed rows counted)."""
    alive = kcore_filter([(r[0], r[1]) for r in rows], user_k, item_k)
    report.drop(f"k-core filter (users >= {user_k}, items >= {item_k})", len(rows) - len(alive))
    report.counts["kcore"] = {"users": user_k, "items": item_k}
    return sorted((rows[i] for i in alive), key=lambda r: (r[0], r[3], r[1]))


def _price(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = _PRICE.search(str(value))
    if not match or "$" not in str(value) and not re.fullmatch(r"\s*[\d,.]+\s*", str(value)):
        return None
    return float(match.group(0).replace(",", ""))


def _flat_categories(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in _flat_categories(v)]
    return [value] if value else []


def _categories(record: dict, report: ConversionReport) -> str:
    """Distinct cleaned category names in order, joined with ', ' (2014: list of lists; 2018/2023: list)."""
    names = [report.text("categories", v) for v in _flat_categories(record.get("categories", record.get("category")))]
    return ", ".join(dict.fromkeys(n for n in names if n))


def _meta_row(record: dict, report: ConversionReport) -> tuple[str | None, list[Any]]:
    item = record.get("parent_asin") or record.get("asin")
    brand = record.get("brand") or record.get("store")
    if not brand and isinstance(record.get("details"), dict):
        brand = record["details"].get("Brand")
    row = [
        item,
        report.text("title", record.get("title")),
        _categories(record, report),
        report.text("brand", brand),
        report.text("description", record.get("description")),
        _price(record.get("price")),
    ]
    return item, row


def _read_meta(path, items: set[str], report: ConversionReport, skip_bad: bool) -> list[list[Any]]:
    """Item rows of the kept items (one per asin; metadata counts go into ``report.counts``)."""
    meta_report = ConversionReport(name=f"{report.name} metadata")
    meta_report.text_fields = report.text_fields
    rows: dict[str, list[Any]] = {}
    for number, record in iter_records(path, meta_report, skip_bad):
        item, row = _meta_row(record, meta_report)
        if not item:
            if not skip_bad:
                raise input_error(path, number, "missing (nor 'parent_asin')", "asin")
            meta_report.drop("metadata without asin")
        elif item in rows:
            meta_report.drop("duplicate metadata row")
        elif item not in items:
            meta_report.drop("metadata of items without kept interactions")
        else:
            rows[str(item)] = row
    report.counts.update(
        meta_rows_read=meta_report.rows_read,
        meta_rows_kept=len(rows),
        meta_dropped=dict(meta_report.dropped),
        items_without_metadata=len(items - set(rows)),
    )
    report.counts.update({k: v for k, v in meta_report.counts.items() if k.startswith("truncated")})
    return [rows[item] for item in sorted(rows)]


def _write(output_dir: Path, name: str, report: ConversionReport, inter_rows, item_rows, overwrite: bool) -> None:
    with atomic_output_dir(output_dir, overwrite) as tmp:
        write_atomic_file(tmp / f"{name}.inter", INTER_HEADER, inter_rows)
        report.files.append(str(output_dir / f"{name}.inter"))
        if item_rows is not None:
            write_atomic_file(tmp / f"{name}.item", ITEM_HEADER, item_rows)
            report.files.append(str(output_dir / f"{name}.item"))
        settings = dataset_settings(
            INTER_HEADER, ITEM_HEADER if item_rows is not None else None, ITEM_TEXT_FIELDS, INTER_TEXT_FIELDS
        )
        write_dataset_yaml(
            tmp,
            name,
            settings,
            f"{name}: Amazon reviews converted by dataset_converters.amazon\n"
            f"{report.rows_kept:,} interactions, {report.counts['users']:,} users, "
            f"{report.counts['items']:,} items. Leave-one-out by time, full ranking.",
        )
        report.files.append(str(output_dir / f"{name}.yaml"))
        write_report(tmp, report)


def convert_amazon(
    input_path: str | Path,
    output_dir: str | Path,
    meta_path: str | Path | None = None,
    name: str | None = None,
    kcore: int | None = None,
    user_kcore: int | None = None,
    item_kcore: int | None = None,
    min_rating: float | None = None,
    skip_bad: bool = False,
    overwrite: bool = False,
) -> ConversionReport:
    """Convert an Amazon review file (+ optional metadata) into ``output_dir/<name>.{inter,item,yaml}``.

    ``kcore`` (or ``user_kcore`` / ``item_kcore``): iterative k-core after deduplication; None =
    the file's published k (``*_5.json.gz`` -> 5, else 0); 0 = none. ``min_rating``: drop reviews
    rated below it. ``skip_bad``: count malformed lines (and a truncated stream) instead of
    failing. ``overwrite``: replace a non-empty ``output_dir`` whole. Returns the counts (also
    written to ``conversion_report.json``).
    """
    output_dir = check_output_dir(output_dir, overwrite)
    name = name or output_dir.name
    report = ConversionReport(name=name)
    reviews = _read_reviews(input_path, report, min_rating, skip_bad)
    kcore = published_kcore(input_path) if kcore is None else kcore
    user_k = user_kcore if user_kcore is not None else kcore
    item_k = item_kcore if item_kcore is not None else kcore
    rows = _kcore(reviews.rows, report, user_k, item_k)
    report.rows_kept = len(rows)
    items = {r[1] for r in rows}
    report.counts.update(
        users=len({r[0] for r in rows}),
        items=len(items),
        format=", ".join(sorted(reviews.formats)) or "-",
        reviews_without_text=sum(1 for r in rows if not r[4]),
    )
    item_rows = _read_meta(meta_path, items, report, skip_bad) if meta_path is not None else None
    _write(output_dir, name, report, rows, item_rows, overwrite)
    logger.info(report.summary())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input", required=True, help="reviews file (.json / .jsonl, gzip or plain)")
    parser.add_argument("--meta", help="metadata file of the same category (optional)")
    parser.add_argument("--output", required=True, help="output folder, e.g. dataset/amazon-beauty")
    parser.add_argument("--name", help="dataset name (file prefix); default: the output folder's name")
    parser.add_argument(
        "--kcore",
        type=int,
        help="iterative k-core on users and items after deduplication "
        "(0 = off; default: 5 for files published as 5-core, '*_5.json.gz', else off)",
    )
    parser.add_argument("--user-kcore", type=int, help="k-core for users only (overrides --kcore)")
    parser.add_argument("--item-kcore", type=int, help="k-core for items only (overrides --kcore)")
    parser.add_argument("--min-rating", type=float, help="drop reviews rated below this")
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip malformed lines and stop at a truncated stream (counted) instead of failing",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder whole")
    args = parser.parse_args(argv)
    return run_converter_cli(
        convert_amazon,
        args.input,
        args.output,
        meta_path=args.meta,
        name=args.name,
        kcore=args.kcore,
        user_kcore=args.user_kcore,
        item_kcore=args.item_kcore,
        min_rating=args.min_rating,
        skip_bad=args.skip_bad,
        overwrite=args.overwrite,
    )


if __name__ == "__main__":
    raise SystemExit(main())
