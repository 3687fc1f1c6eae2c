"""Amazon reviews (2014, 2018 JSON lines; 2023 JSONL) and their metadata -> RecBole atomic files.

Sources: He & McAuley, WWW 2016 (2014); Ni, Li & McAuley, EMNLP 2019 (2018); Hou et al. 2024
(2023). Review fields: 2014/2018 ``reviewerID, asin, overall, reviewText, summary,
unixReviewTime`` (seconds); 2023 ``user_id, parent_asin, rating, text, title, timestamp`` (ms,
converted to seconds). Gzip or plain files are both accepted.

Output ``<name>.inter``: ``user_id:token item_id:token rating:float timestamp:float
review_text:token summary:token``; ``<name>.item`` (when metadata is given): ``item_id:token
title:token categories:token brand:token description:token price:float``.

One row per (user, item) pair: repeated pairs (the 2018 5-core files repeat rows) keep the
earliest review and are counted as dropped duplicates.

CLI::

    python -m dataset_converters.amazon --input All_Beauty_5.json.gz [--meta meta_X.json.gz] \
        --output dataset/amazon-beauty [--kcore 5] [--min-rating 4] [--skip-bad]
"""
from __future__ import annotations

import argparse
import html
import logging
import re
from pathlib import Path
from typing import Any

from dataset_converters._common import (
    ConversionError,
    ConversionReport,
    atomic_output_dir,
    clean_text,
    run_converter_cli,
    iter_records,
    kcore_filter,
    write_atomic_file,
    write_report,
)

logger = logging.getLogger(__name__)

INTER_HEADER = ["user_id:token", "item_id:token", "rating:float", "timestamp:float",
                "review_text:token", "summary:token"]
ITEM_HEADER = ["item_id:token", "title:token", "categories:token", "brand:token",
               "description:token", "price:float"]
_TAG = re.compile(r"<[^>]+>")
_PRICE = re.compile(r"\d[\d,]*(?:\.\d+)?")


def _review_fields(record: dict) -> tuple[Any, Any, Any, Any, Any, Any, str]:
    """(user, item, rating, timestamp in s, text, summary, format) from any of the formats."""
    if "reviewerID" in record or ("asin" in record and "user_id" not in record):
        timestamp = record.get("unixReviewTime")
        return (record.get("reviewerID"), record.get("asin"), record.get("overall"), timestamp,
                record.get("reviewText"), record.get("summary"), "2014/2018")
    timestamp = record.get("timestamp")
    if timestamp is not None:
        timestamp = float(timestamp) / 1000.0  # 2023: milliseconds
    return (record.get("user_id"), record.get("parent_asin") or record.get("asin"), record.get("rating"),
            timestamp, record.get("text"), record.get("title"), "2023")


def _price(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = _PRICE.search(str(value))
    if not match or "$" not in str(value) and not re.fullmatch(r"\s*[\d,.]+\s*", str(value)):
        return None
    return float(match.group(0).replace(",", ""))


def _categories(record: dict) -> str:
    """Distinct categories in order, joined with ', ' (2014: list of lists; 2018/2023: list)."""
    raw = record.get("categories", record.get("category"))
    flat: list[str] = []

    def walk(value):
        if isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
        elif value:
            flat.append(clean_text(html.unescape(str(value))))

    walk(raw)
    seen: dict[str, None] = {}
    for name in flat:
        if name:
            seen.setdefault(name, None)
    return ", ".join(seen)


def _description(value: Any) -> str:
    text = clean_text(value)
    return clean_text(html.unescape(_TAG.sub(" ", text)))


def _meta_row(record: dict) -> tuple[str | None, list[Any]]:
    item = record.get("parent_asin") or record.get("asin")
    brand = record.get("brand") or record.get("store")
    if not brand and isinstance(record.get("details"), dict):
        brand = record["details"].get("Brand")
    row = [
        item,
        clean_text(html.unescape(clean_text(record.get("title")))),
        _categories(record),
        clean_text(html.unescape(clean_text(brand))),
        _description(record.get("description")),
        _price(record.get("price")),
    ]
    return item, row


def convert_amazon(
    input_path: str | Path,
    output_dir: str | Path,
    meta_path: str | Path | None = None,
    name: str | None = None,
    kcore: int = 0,
    user_kcore: int | None = None,
    item_kcore: int | None = None,
    min_rating: float | None = None,
    skip_bad: bool = False,
) -> ConversionReport:
    """Convert an Amazon review file (+ optional metadata) into ``output_dir/<name>.{inter,item}``.

    ``kcore`` (or ``user_kcore`` / ``item_kcore``): iterative k-core after deduplication; 0 = none.
    ``min_rating``: drop reviews rated below it. ``skip_bad``: count malformed lines instead of
    failing on the first one. Returns the counts (also written to ``conversion_report.json``).
    """
    output_dir = Path(output_dir)
    name = name or output_dir.name
    report = ConversionReport(name=name)
    best: dict[tuple[str, str], tuple[float, int]] = {}  # pair -> (timestamp, row index)
    rows: list[list[Any]] = []
    formats: set[str] = set()
    for number, record in iter_records(input_path, report, skip_bad):
        try:
            user, item, rating, timestamp, text, summary, fmt = _review_fields(record)
            if user is None or item is None or rating is None:
                raise ValueError("missing user, item or rating")
            rating = float(rating)
            timestamp = float(timestamp) if timestamp is not None else 0.0
        except (TypeError, ValueError) as err:
            if skip_bad:
                report.drop("malformed record (missing/invalid user, item, rating or time)")
                continue
            raise ConversionError(f"{input_path}:{number}: {err}; pass --skip-bad to skip such lines") from None
        formats.add(fmt)
        if min_rating is not None and rating < min_rating:
            report.drop(f"rating below {min_rating:g}")
            continue
        review, short = clean_text(text), clean_text(summary)
        if not review:
            report.counts["reviews without text"] = report.counts.get("reviews without text", 0) + 1
        pair = (str(user), str(item))
        previous = best.get(pair)
        if previous is not None:
            report.drop("duplicate (user, item) pair (kept the earliest review)")
            if timestamp >= previous[0]:
                continue
            rows[previous[1]] = None  # type: ignore[call-overload]
        best[pair] = (timestamp, len(rows))
        rows.append([pair[0], pair[1], rating, timestamp, review, short])
    kept_rows = [r for r in rows if r is not None]
    user_k = user_kcore if user_kcore is not None else kcore
    item_k = item_kcore if item_kcore is not None else kcore
    alive = kcore_filter([(r[0], r[1]) for r in kept_rows], user_k, item_k)
    report.drop(f"k-core filter (users >= {user_k}, items >= {item_k})", len(kept_rows) - len(alive))
    kept_rows = sorted((kept_rows[i] for i in alive), key=lambda r: (r[0], r[3], r[1]))
    report.rows_kept = len(kept_rows)
    items = {r[1] for r in kept_rows}
    report.counts.update(
        users=len({r[0] for r in kept_rows}), items=len(items), format=", ".join(sorted(formats)) or "-",
    )
    if "reviews without text" in report.counts:
        report.counts["reviews without text"] = sum(1 for r in kept_rows if not r[4])

    meta_rows: list[list[Any]] = []
    if meta_path is not None:
        meta_report = ConversionReport(name=f"{name} metadata")
        seen: set[str] = set()
        for number, record in iter_records(meta_path, meta_report, skip_bad):
            item, row = _meta_row(record)
            if item is None:
                if skip_bad:
                    meta_report.drop("metadata without asin")
                    continue
                raise ConversionError(f"{meta_path}:{number}: metadata record without asin/parent_asin")
            if item in seen:
                meta_report.drop("duplicate metadata row")
                continue
            seen.add(item)
            if item not in items:
                meta_report.drop("metadata of items without kept interactions")
                continue
            meta_rows.append(row)
        meta_report.rows_kept = len(meta_rows)
        report.counts.update(
            meta_rows_read=meta_report.rows_read,
            meta_rows_kept=meta_report.rows_kept,
            meta_dropped=dict(meta_report.dropped),
            items_without_metadata=len(items - {r[0] for r in meta_rows}),
        )
        meta_rows.sort(key=lambda r: r[0])

    with atomic_output_dir(output_dir) as tmp:
        write_atomic_file(tmp / f"{name}.inter", INTER_HEADER, kept_rows)
        report.files.append(str(output_dir / f"{name}.inter"))
        if meta_path is not None:
            write_atomic_file(tmp / f"{name}.item", ITEM_HEADER, meta_rows)
            report.files.append(str(output_dir / f"{name}.item"))
        write_report(tmp, report)
    logger.info(report.summary())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="reviews file (.json / .jsonl, gzip or plain)")
    parser.add_argument("--meta", help="metadata file of the same category (optional)")
    parser.add_argument("--output", required=True, help="output folder, e.g. dataset/amazon-beauty")
    parser.add_argument("--name", help="dataset name (file prefix); default: the output folder's name")
    parser.add_argument("--kcore", type=int, default=0, help="iterative k-core on users and items (0 = off)")
    parser.add_argument("--user-kcore", type=int, help="k-core for users only (overrides --kcore)")
    parser.add_argument("--item-kcore", type=int, help="k-core for items only (overrides --kcore)")
    parser.add_argument("--min-rating", type=float, help="drop reviews rated below this")
    parser.add_argument("--skip-bad", action="store_true", help="skip malformed lines (counted) instead of failing")
    args = parser.parse_args(argv)
    return run_converter_cli(
        convert_amazon, args.input, args.output, meta_path=args.meta, name=args.name, kcore=args.kcore,
        user_kcore=args.user_kcore, item_kcore=args.item_kcore, min_rating=args.min_rating, skip_bad=args.skip_bad,
    )


if __name__ == "__main__":
    raise SystemExit(main())
