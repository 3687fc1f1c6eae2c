"""MIND (``behaviors.tsv``, ``news.tsv``) -> impression-level RecBole atomic files.

Source: Wu et al., MIND: A Large-scale Dataset for News Recommendation (ACL 2020).
``behaviors.tsv``: impression id, user, time (``11/12/2019 2:14:46 PM``), click history,
impressions (``N123-1 N456-0``). ``news.tsv``: id, category, subcategory, title, abstract, url,
title entities, abstract entities (JSON).

Output ``<name>.inter``: one row per shown news item, ``impression_id:token user_id:token
item_id:token label:float timestamp:float`` (unix seconds, times read as UTC);
``<name>.user``: ``user_id:token history:token_seq`` (the click history before the log period);
``<name>.item``: ``item_id:token category:token subcategory:token title:token abstract:token
entities:token``.

CLI::

    python -m dataset_converters.mind --behaviors behaviors.tsv --news news.tsv --output dataset/mind-small
"""
from __future__ import annotations

import argparse
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dataset_converters._common import (
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

INTER_HEADER = ["impression_id:token", "user_id:token", "item_id:token", "label:float", "timestamp:float"]
USER_HEADER = ["user_id:token", "history:token_seq"]
ITEM_HEADER = ["item_id:token", "category:token", "subcategory:token", "title:token", "abstract:token",
               "entities:token"]
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"


def _parse_impressions(field: str) -> list[tuple[str, int]]:
    shown = []
    for token in field.split():
        news, sep, label = token.rpartition("-")
        if not sep or not news or label not in ("0", "1"):
            raise ValueError(f"impression '{token}' is not <news id>-<0|1>")
        shown.append((news, int(label)))
    return shown


def _entity_labels(field: str) -> list[str]:
    if not field.strip():
        return []
    try:
        return [str(e.get("Label")) for e in json.loads(field) if isinstance(e, dict) and e.get("Label")]
    except json.JSONDecodeError:
        return []


def _yaml_settings(with_news: bool) -> dict:
    """Dataset yaml of a converted MIND folder (clicks as positives, time-ordered 80/10/10 split)."""
    settings = dataset_settings(INTER_HEADER, ITEM_HEADER[:-1] if with_news else None,
                                ["title", "category", "subcategory", "abstract"])
    settings = {"LABEL_FIELD": "label", **settings}
    settings["val_interval"] = {"label": "[1,1]"}
    settings["filter_inter_by_user_or_item"] = False
    settings["eval_args"] = {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO", "group_by": "user", "mode": "full"}
    return settings


def _read_behaviors(behaviors, report: ConversionReport, skip_bad: bool) -> tuple[list[list[Any]], dict[str, str]]:
    """(one row per shown news item, each user's first click history); counts go into ``report``."""
    inter_rows: list[list[Any]] = []
    histories: dict[str, str] = {}
    history_changes = 0
    impression_ids: set[str] = set()
    for number, line in iter_lines(behaviors, report, skip_bad):
        report.rows_read += 1
        try:
            impression, user, timestamp, history, shown = _parse_behavior(line)
        except ValueError as err:
            if skip_bad:
                report.drop("malformed behaviors line")
                continue
            raise input_error(behaviors, number, str(err)) from None
        if impression in impression_ids:
            report.drop("duplicate impression id")
            continue
        impression_ids.add(impression)
        if user in histories:
            history_changes += histories[user] != history
        else:
            histories[user] = history
        if not shown:
            report.drop("impression without shown news")
            continue
        inter_rows.extend([impression, user, news_id, float(label), timestamp] for news_id, label in shown)
    report.rows_kept = len(impression_ids) - report.dropped.get("impression without shown news", 0)
    report.counts.update(
        impressions=report.rows_kept, impression_rows=len(inter_rows), clicks=sum(1 for r in inter_rows if r[3] == 1.0),
        users=len(histories), shown_news=len({r[2] for r in inter_rows}), users_whose_history_differs=history_changes,
        users_without_history=sum(1 for h in histories.values() if not h),
    )
    return inter_rows, histories


def _parse_behavior(line: str) -> tuple[str, str, float, str, list[tuple[str, int]]]:
    """(impression, user, unix time, history, shown news) of one behaviors line."""
    parts = line.split("\t")
    if len(parts) != 5:
        raise ValueError(f"{len(parts)} columns, expected 5")
    impression, user, time_text, history, shown_field = parts
    if not impression.strip() or not user.strip():
        raise ValueError("empty impression id or user")
    timestamp = datetime.strptime(time_text.strip(), TIME_FORMAT).replace(tzinfo=UTC).timestamp()
    return impression, user, timestamp, " ".join(history.split()), _parse_impressions(shown_field)


def _read_news(news, shown_items: set[str], report: ConversionReport, skip_bad: bool) -> list[list[Any]]:
    """One cleaned item row per news id (first row kept)."""
    item_rows: list[list[Any]] = []
    seen: set[str] = set()
    duplicates = 0
    for number, line in iter_lines(news, report, skip_bad):
        parts = line.split("\t")
        if len(parts) < 5:
            if skip_bad:
                report.drop("malformed news line")
                continue
            raise input_error(news, number, f"{len(parts)} columns, expected 8")
        news_id = parts[0].strip()
        if news_id in seen:
            duplicates += 1
            continue
        seen.add(news_id)
        entities = _entity_labels(parts[6]) + _entity_labels(parts[7]) if len(parts) >= 8 else []
        item_rows.append([news_id, report.text("category", parts[1]), report.text("subcategory", parts[2]),
                          report.text("title", parts[3]), report.text("abstract", parts[4]),
                          report.text("entities", ", ".join(dict.fromkeys(entities)))])
    report.counts.update(news_rows=len(item_rows), duplicate_news_rows=duplicates,
                         shown_news_with_text=len(shown_items & seen), shown_news_without_text=len(shown_items - seen))
    return item_rows


def convert_mind(behaviors: str | Path, news: str | Path | None, output_dir: str | Path,
                 name: str | None = None, skip_bad: bool = False, overwrite: bool = False) -> ConversionReport:
    """Convert MIND files into ``output_dir/<name>.{inter,user,item,yaml}``."""
    output_dir = check_output_dir(output_dir, overwrite)
    name = name or output_dir.name
    report = ConversionReport(name=name)
    inter_rows, histories = _read_behaviors(behaviors, report, skip_bad)
    item_rows = _read_news(news, {r[2] for r in inter_rows}, report, skip_bad) if news is not None else []
    with atomic_output_dir(output_dir, overwrite) as tmp:
        write_atomic_file(tmp / f"{name}.user", USER_HEADER, sorted(histories.items()))
        report.files.append(str(output_dir / f"{name}.user"))
        if news is not None:
            write_atomic_file(tmp / f"{name}.item", ITEM_HEADER, item_rows)
            report.files.append(str(output_dir / f"{name}.item"))
        write_atomic_file(tmp / f"{name}.inter", INTER_HEADER, inter_rows)
        report.files.append(str(output_dir / f"{name}.inter"))
        write_dataset_yaml(tmp, name, _yaml_settings(news is not None),
                           f"{name}: MIND impressions converted by dataset_converters.mind: one row per shown news\n"
                           "item with its click label. Top-k models learn from clicks (val_interval); impressions of\n"
                           "news without text are kept. Split by time 80/10/10 per user, full ranking.")
        report.files.append(str(output_dir / f"{name}.yaml"))
        write_report(tmp, report)
    logger.info(report.summary())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="MIND behaviors/news -> impression-level RecBole atomic files.",
                                     allow_abbrev=False)
    parser.add_argument("--behaviors", required=True, help="behaviors.tsv")
    parser.add_argument("--news", help="news.tsv (item text)")
    parser.add_argument("--output", required=True, help="output folder, e.g. dataset/mind-small")
    parser.add_argument("--name", help="dataset name; default: the output folder's name")
    parser.add_argument("--skip-bad", action="store_true", help="skip malformed lines (counted) instead of failing")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder whole")
    args = parser.parse_args(argv)
    return run_converter_cli(convert_mind, args.behaviors, args.news, args.output, args.name, args.skip_bad,
                             overwrite=args.overwrite)


if __name__ == "__main__":
    raise SystemExit(main())
