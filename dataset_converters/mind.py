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

With ``--format benchmark`` (or ``--dev-behaviors``) the output is instead what the news models
(:mod:`recbole_llm.news`) read: ``<name>.{train,valid,test}.inter`` (``impression_id:float user_id:token
item_id:token label:float timestamp:float``, impression ids unique over the three files), ``<name>.imp``
(``impression_id:float history:token_seq``: the click history shown with each impression) and
``<name>.item`` (every news row). Malformed behaviours rows (wrong column count, a history id without
a news row, no click) stop the conversion at ``file:line``; ``--skip-bad`` skips and counts them.

CLI::

    python -m dataset_converters.mind --behaviors behaviors.tsv --news news.tsv --output dataset/mind-small
    python -m dataset_converters.mind --behaviors MINDsmall_train/behaviors.tsv --news MINDsmall_train/news.tsv \\
        --dev-behaviors MINDsmall_dev/behaviors.tsv --dev-news MINDsmall_dev/news.tsv --max-history 50 \\
        --output dataset/mind-small-news
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
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

INTER_HEADER = ["impression_id:token", "user_id:token", "item_id:token", "label:float", "timestamp:float"]
USER_HEADER = ["user_id:token", "history:token_seq"]
ITEM_HEADER = [
    "item_id:token",
    "category:token",
    "subcategory:token",
    "title:token",
    "abstract:token",
    "entities:token",
]
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
    settings = dataset_settings(
        INTER_HEADER, ITEM_HEADER[:-1] if with_news else None, ["title", "category", "subcategory", "abstract"]
    )
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
        impressions=report.rows_kept,
        impression_rows=len(inter_rows),
        clicks=sum(1 for r in inter_rows if r[3] == 1.0),
        users=len(histories),
        shown_news=len({r[2] for r in inter_rows}),
        users_whose_history_differs=history_changes,
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
        item_rows.append(
            [
                news_id,
                report.text("category", parts[1]),
                report.text("subcategory", parts[2]),
                report.text("title", parts[3]),
                report.text("abstract", parts[4]),
                report.text("entities", ", ".join(dict.fromkeys(entities))),
            ]
        )
    report.counts.update(
        news_rows=len(item_rows),
        duplicate_news_rows=duplicates,
        shown_news_with_text=len(shown_items & seen),
        shown_news_without_text=len(shown_items - seen),
    )
    return item_rows


def convert_mind(
    behaviors: str | Path,
    news: str | Path | None,
    output_dir: str | Path,
    name: str | None = None,
    skip_bad: bool = False,
    overwrite: bool = False,
) -> ConversionReport:
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
        write_dataset_yaml(
            tmp,
            name,
            _yaml_settings(news is not None),
            f"{name}: MIND impressions converted by dataset_converters.mind: one row per shown news\n"
            "item with its click label. Top-k models learn from clicks (val_interval); impressions of\n"
            "news without text are kept. Split by time 80/10/10 per user, full ranking.",
        )
        report.files.append(str(output_dir / f"{name}.yaml"))
        write_report(tmp, report)
    logger.info(report.summary())
    return report


# --------------------------------------------------------------------------- impression benchmark files
# The news models (recbole_llm.news) read pre-split benchmark files: one row per shown news item,
# keyed by an impression id that is unique over the three files, plus one history row per impression.
IMPRESSION_INTER_HEADER = ["impression_id:float", "user_id:token", "item_id:token", "label:float", "timestamp:float"]
IMPRESSION_HISTORY_HEADER = ["impression_id:float", "history:token_seq"]
SPLITS = ("train", "valid", "test")
#: NewsRecLib / AWRS: MIND-small train impressions from this time on are the validation split.
DEFAULT_VALID_FROM = "2019-11-14T00:00:00"
#: Skipped rows logged one by one (file:line) before the rest are only counted.
_LOGGED_BAD_ROWS = 20


@dataclass
class Impression:
    """One behaviours row: who saw what when, with the click history shown to the model."""

    user: str
    timestamp: float
    history: list[str]
    shown: list[tuple[str, int]]


@dataclass
class _BadRows:
    """Malformed behaviours rows: raise at the first (file:line), or count and log them with ``skip_bad``."""

    report: ConversionReport
    skip_bad: bool
    logged: int = 0

    def __call__(self, path, number: int, reason: str, detail: str) -> None:
        if not self.skip_bad:
            raise input_error(path, number, f"{reason}: {detail}")
        self.report.drop(reason)
        if self.logged < _LOGGED_BAD_ROWS:
            logger.warning("%s:%d: skipped (%s: %s)", path, number, reason, detail)
            self.logged += 1


def read_impressions(path, news_ids: set[str] | None, bad: _BadRows, keep_missing_news: bool) -> list[Impression]:
    """Checked impressions of one behaviours file.

    A row is malformed when its column count is wrong, a history id has no news row (only checked
    when a news table is given and ``keep_missing_news`` is off) or no shown news was clicked.
    """
    impressions: list[Impression] = []
    for number, line in iter_lines(path, bad.report, bad.skip_bad):
        bad.report.rows_read += 1
        try:
            _, user, timestamp, history, shown = _parse_behavior(line)
        except ValueError as err:
            bad(path, number, "malformed behaviors line", str(err))
            continue
        history_ids = history.split()
        if news_ids is not None and not keep_missing_news:
            missing = [h for h in history_ids if h not in news_ids]
            if missing:
                bad(
                    path,
                    number,
                    "history id missing from the news table",
                    f"{missing[0]} (+{len(missing) - 1} more); pass --keep-missing-news to keep them without text",
                )
                continue
        if not any(label for _, label in shown):
            bad(path, number, "impression without a click", f"{len(shown)} shown news, none clicked")
            continue
        impressions.append(Impression(user, timestamp, history_ids, shown))
    return impressions


def _parse_time(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise ConversionError(f"{option}: '{value}' is not an ISO time such as {DEFAULT_VALID_FROM}") from None


def split_impressions(
    train: list[Impression], dev: list[Impression] | None, valid_from: str, test_from: str | None, protocol: str
) -> dict[str, list[Impression]]:
    """train / valid / test impressions for the anchors' protocols.

    ``newsreclib`` (NewsRecLib, AWRS): train = train-file impressions before ``valid_from``, valid =
    the rest, test = the dev file; without a dev file, test = train-file impressions from
    ``test_from`` on. ``recommenders`` (microsoft/recommenders): train = the train file, valid =
    test = the dev file.
    """
    if protocol == "recommenders":
        if dev is None:
            raise ConversionError("--protocol recommenders needs --dev-behaviors (valid = test = the dev file)")
        return {"train": train, "valid": dev, "test": dev}
    if protocol != "newsreclib":
        raise ConversionError(f"--protocol must be newsreclib or recommenders, not '{protocol}'")
    valid_start = _parse_time(valid_from, "--valid-from")
    test_start = _parse_time(test_from, "--test-from")
    if dev is None and test_start is None:
        raise ConversionError(
            "without --dev-behaviors give --test-from (train-file impressions from then on are the test split)"
        )
    end = test_start if dev is None else float("inf")
    if dev is None and test_start <= valid_start:
        raise ConversionError(f"--test-from ({test_from}) must be after --valid-from ({valid_from})")
    return {
        "train": [imp for imp in train if imp.timestamp < valid_start],
        "valid": [imp for imp in train if valid_start <= imp.timestamp < end],
        "test": dev if dev is not None else [imp for imp in train if imp.timestamp >= end],
    }


def _numbered(splits: dict[str, list[Impression]]) -> dict[str, list[tuple[float, Impression]]]:
    """Impression ids 1..N over train, valid, test (each split in time order)."""
    numbered: dict[str, list[tuple[float, Impression]]] = {}
    number = 0
    for split in SPLITS:
        numbered[split] = []
        for imp in sorted(splits[split], key=lambda i: i.timestamp):
            number += 1
            numbered[split].append((float(number), imp))
    return numbered


def impression_yaml_settings(name: str, with_news: bool, category: bool = True) -> dict[str, Any]:
    """What RecBole needs to load the benchmark files (the news models add their own defaults)."""
    item_fields = ["item_id", "category", "subcategory", "title", "abstract"] if category else ["item_id", "title"]
    load_col: dict[str, list[str]] = {
        "inter": [h.split(":")[0] for h in IMPRESSION_INTER_HEADER],
        "imp": ["impression_id", "history"],
    }
    if with_news:
        load_col["item"] = item_fields
    return {
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "LABEL_FIELD": "label",
        "TIME_FIELD": "timestamp",
        "load_col": load_col,
        "benchmark_filename": list(SPLITS),
        "additional_feat_suffix": ["imp"],
        "alias_of_item_id": ["history"],
        "normalize_all": False,
        "filter_inter_by_user_or_item": False,
        "eval_args": {"order": "TO", "group_by": None, "mode": "labeled"},
        "train_neg_sample_args": None,
        "item_text_fields": ["title"] if with_news else [],
    }


def write_impression_benchmark(
    output_dir: Path,
    name: str,
    splits: dict[str, list[Impression]],
    item_rows: list[list[Any]] | None,
    report: ConversionReport,
    overwrite: bool,
    item_header: list[str] = ITEM_HEADER,
    comment: str = "",
    recorded: dict[str, Any] | None = None,
) -> None:
    """``<name>.{train,valid,test}.inter``, ``<name>.imp``, ``<name>.item`` and ``<name>.yaml``, atomically.

    ``recorded``: settings written into the yaml that say how the files were made (a split's seed),
    so that every resolved configuration, and the benchmark keys made of it, name them.
    """
    numbered = _numbered(splits)  # rows are streamed to the files, never held as lists (MIND: millions)
    with atomic_output_dir(output_dir, overwrite) as tmp:
        for split in SPLITS:
            rows = (
                [number, imp.user, news, float(label), imp.timestamp]
                for number, imp in numbered[split]
                for news, label in imp.shown
            )
            report.counts[f"{split}_impressions"] = len(splits[split])
            report.counts[f"{split}_rows"] = write_atomic_file(
                tmp / f"{name}.{split}.inter", IMPRESSION_INTER_HEADER, rows
            )
            report.files.append(str(output_dir / f"{name}.{split}.inter"))
        histories = ([number, " ".join(imp.history)] for split in SPLITS for number, imp in numbered[split])
        write_atomic_file(tmp / f"{name}.imp", IMPRESSION_HISTORY_HEADER, histories)
        report.files.append(str(output_dir / f"{name}.imp"))
        if item_rows is not None:
            write_atomic_file(tmp / f"{name}.item", item_header, item_rows)
            report.files.append(str(output_dir / f"{name}.item"))
        settings = impression_yaml_settings(name, item_rows is not None, category="category:token" in item_header)
        settings.update(recorded or {})
        write_dataset_yaml(
            tmp,
            name,
            settings,
            comment
            or f"{name}: news impressions (train/valid/test benchmark files) for the news models of recbole_llm.news.",
        )
        report.files.append(str(output_dir / f"{name}.yaml"))
        write_report(tmp, report)


def _news_coverage(splits: dict[str, list[Impression]], news_ids: set[str], report: ConversionReport) -> None:
    """Share of the news ids in histories and impressions that have a news row (the shared sample: ~4%)."""
    used = {n for imps in splits.values() for imp in imps for n in [*imp.history, *(s for s, _ in imp.shown)]}
    report.counts["news_ids_used"] = len(used)
    report.counts["news_ids_with_text"] = len(used & news_ids)
    report.counts["news_coverage"] = round(len(used & news_ids) / max(len(used), 1), 4)


def convert_mind_impressions(
    behaviors: str | Path,
    news: str | Path | None,
    output_dir: str | Path,
    dev_behaviors: str | Path | None = None,
    dev_news: str | Path | None = None,
    name: str | None = None,
    valid_from: str = DEFAULT_VALID_FROM,
    test_from: str | None = None,
    protocol: str = "newsreclib",
    skip_bad: bool = False,
    keep_missing_news: bool = False,
    overwrite: bool = False,
    max_history: int = 0,
) -> ConversionReport:
    """MIND behaviours (+ dev behaviours) and news -> impression benchmark files for the news models.

    ``max_history > 0`` keeps only each impression's most recent history clicks (RecBole pads every
    history to the longest one, so the full MIND histories cost memory the models never read).
    """
    output_dir = check_output_dir(output_dir, overwrite)
    name = name or output_dir.name
    report = ConversionReport(name=name)
    item_rows = _read_news(news, set(), report, skip_bad) if news is not None else None
    if dev_news is not None and item_rows is not None:
        known = {row[0] for row in item_rows}
        item_rows += [row for row in _read_news(dev_news, set(), report, skip_bad) if row[0] not in known]
    news_ids = {row[0] for row in item_rows} if item_rows is not None else None
    for key in ("shown_news_with_text", "shown_news_without_text"):  # replaced by the coverage counts
        report.counts.pop(key, None)
    bad = _BadRows(report, skip_bad)
    train = read_impressions(behaviors, news_ids, bad, keep_missing_news)
    dev = read_impressions(dev_behaviors, news_ids, bad, keep_missing_news) if dev_behaviors is not None else None
    splits = split_impressions(train, dev, valid_from, test_from, protocol)
    if max_history > 0:
        for imp in {id(i): i for imps in splits.values() for i in imps}.values():
            imp.history = imp.history[-max_history:]
    if news_ids is not None:
        _news_coverage(splits, news_ids, report)
    report.rows_kept = sum(len(v) for k, v in splits.items() if k != "valid" or protocol != "recommenders")
    write_impression_benchmark(output_dir, name, splits, item_rows, report, overwrite)
    logger.info(report.summary())
    return report


DknRows = dict[str, list[tuple[str, str, int]]]


def _dkn_rows(path, report: ConversionReport, bad: _BadRows) -> DknRows:
    """user -> [(news id, title, label)] of a DKN raw file, in file order."""
    rows: DknRows = {}
    for number, line in iter_lines(path, report, bad.skip_bad):
        report.rows_read += 1
        parts = line.split("\t")
        if len(parts) != 4 or parts[2].strip() not in ("0", "1") or not parts[1].strip():
            bad(path, number, "malformed DKN line", f"{len(parts)} columns, expected user, title, label 0/1, entities")
            continue
        title = " ".join(parts[1].split())
        news_id = "D" + hashlib.sha1(title.encode("utf-8")).hexdigest()[:12]
        rows.setdefault(parts[0].strip(), []).append((news_id, title, int(parts[2])))
    return rows


def _dkn_train_impressions(rows: DknRows, size: int) -> list[Impression]:
    """Each user's training rows cut into impressions of ``size`` rows (file order); the history of
    each is the user's clicks in the *other* training impressions, less the news shown in this one
    (a user may be shown one title twice), so no impression sees its own clicks."""
    impressions = []
    for user, user_rows in rows.items():
        chunks = [user_rows[start : start + size] for start in range(0, len(user_rows), size)]
        for number, chunk in enumerate(chunks):
            shown = {n for n, _, _ in chunk}
            history = [n for other, c in enumerate(chunks) if other != number for n, _, y in c if y and n not in shown]
            if any(y for _, _, y in chunk):
                impressions.append(Impression(user, 0.0, list(dict.fromkeys(history)), [(n, y) for n, _, y in chunk]))
    return impressions


def _dkn_valid_news(user: str, rows: list[tuple[str, str, int]], share: float, seed: int) -> set[str]:
    """News ids of ``user``'s validation impression, drawn from their raw_train rows.

    News in the order of ``random.Random(f"{seed}/{user}")`` (one user's draw depends on no other
    user): first a clicked news, then a news shown without a click where the user has one, then more
    until ``max(2, round(share * rows))`` rows are taken; a news the user clicked is skipped when it
    is their last clicked news left, so the test history keeps a click. A news moves with all the
    user's rows of it (158 (user, title) pairs repeat in raw_train), so none of the user's training
    rows or history shows it. Empty for a user with fewer than two clicked news.
    """
    labels: dict[str, set[int]] = {}
    for news, _, label in rows:
        labels.setdefault(news, set()).add(label)
    order = sorted(labels)
    random.Random(f"{seed}/{user}").shuffle(order)
    clicked = [n for n in order if 1 in labels[n]]
    if len(clicked) < 2:
        return set()
    unclicked = [n for n in order if labels[n] == {0}][:1] or [n for n in order if 0 in labels[n]][:1]
    target = max(2, round(share * len(rows)))
    counts = Counter(news for news, _, _ in rows)
    chosen: set[str] = set()
    taken, clicks_left = 0, len(clicked)
    for position, news in enumerate([clicked[0], *unclicked, *order]):
        if taken >= target and position > len(unclicked):
            break
        if news in chosen or (1 in labels[news] and clicks_left == 1):
            continue
        chosen.add(news)
        taken += counts[news]
        clicks_left -= 1 in labels[news]
    return chosen


def _dkn_splits(
    train_rows: DknRows, test_rows: DknRows, size: int, share: float, seed: int
) -> dict[str, list[Impression]]:
    """train / valid / test impressions; every history is made of the user's remaining training clicks."""
    kept: DknRows = {}
    valid = []
    for user, rows in train_rows.items():
        held = _dkn_valid_news(user, rows, share, seed)
        kept[user] = [row for row in rows if row[0] not in held]
        if held:
            valid.append(Impression(user, 1.0, _dkn_clicks(kept[user]), [(n, y) for n, _, y in rows if n in held]))
    test = [
        Impression(user, 1.0, _dkn_clicks(kept.get(user, [])), [(n, y) for n, _, y in rows])
        for user, rows in test_rows.items()
        if any(y for _, _, y in rows)
    ]
    return {"train": _dkn_train_impressions(kept, size), "valid": valid, "test": test}


def _dkn_valid_counts(splits: dict[str, list[Impression]], users: int) -> dict[str, int]:
    """Users left without a validation impression; validation news that other users see in training
    (test news never occur in raw_train, so validation is warmer than the test)."""
    shown_in_train = {n for imp in splits["train"] for n, _ in imp.shown}
    valid_news = {n for imp in splits["valid"] for n, _ in imp.shown}
    return {
        "users_without_valid": users - len(splits["valid"]),
        "valid_news": len(valid_news),
        "valid_news_shown_in_train": len(valid_news & shown_in_train),
    }


def _dkn_clicks(rows: list[tuple[str, str, int]]) -> list[str]:
    return list(dict.fromkeys(n for n, _, y in rows if y))


def convert_dkn_bing(
    train: str | Path,
    test: str | Path,
    output_dir: str | Path,
    name: str | None = None,
    skip_bad: bool = False,
    overwrite: bool = False,
    impression_size: int = 10,
    valid_share: float = 0.1,
    valid_seed: int = 0,
) -> ConversionReport:
    """DKN's Bing News sample (``raw_train.txt``, ``raw_test.txt``) -> impression benchmark files.

    The sample has no impression ids, no times and no validation file. Each user's validation
    impression is carved out of their raw_train rows (:func:`_dkn_valid_news`: about ``valid_share``
    of them, default 10%, drawn with ``valid_seed``, default 0), so that early stopping never reads
    raw_test. The user's other raw_train rows are cut into training impressions of
    ``impression_size`` rows in file order, each with the user's clicks in their other training
    impressions as history (DKN itself puts every training click in the history, so a training
    sample would see its own click). A user's raw_test rows form one test impression. Validation and
    test histories are the user's clicks in their training impressions: no validation row is in any
    history or training impression.
    """
    if impression_size < 1:
        raise ConversionError(f"impression_size must be >= 1, got {impression_size}")
    if not 0 < valid_share < 1:
        raise ConversionError(f"valid_share must be between 0 and 1 (exclusive), got {valid_share}")
    output_dir = check_output_dir(output_dir, overwrite)
    name = name or output_dir.name
    report = ConversionReport(name=name)
    bad = _BadRows(report, skip_bad)
    train_rows, test_rows = _dkn_rows(train, report, bad), _dkn_rows(test, report, bad)
    titles = {
        news: title for rows in (train_rows, test_rows) for user_rows in rows.values() for news, title, _ in user_rows
    }
    splits = _dkn_splits(train_rows, test_rows, impression_size, valid_share, valid_seed)
    report.rows_kept = sum(len(imps) for imps in splits.values())
    report.counts.update(users=len(train_rows), news=len(titles), valid_share=valid_share, valid_seed=valid_seed)
    report.counts.update(_dkn_valid_counts(splits, len(train_rows)))
    item_rows = [[news, title] for news, title in sorted(titles.items())]
    write_impression_benchmark(
        output_dir,
        name,
        splits,
        item_rows,
        report,
        overwrite,
        ["item_id:token", "title:token"],
        f"{name}: DKN Bing News sample (no times, no impression ids). Per user: a validation impression\n"
        f"of about {valid_share:g} of their raw_train rows (seed {valid_seed}; none for users with fewer than\n"
        f"two clicked news), training impressions of {impression_size} of the other raw_train rows, one\n"
        "test impression of their raw_test rows; histories = the user's training clicks only.",
        {"dkn_valid_share": valid_share, "dkn_valid_seed": valid_seed},
    )
    logger.info(report.summary())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="MIND behaviors/news -> impression-level RecBole atomic files.", allow_abbrev=False
    )
    parser.add_argument("--behaviors", required=True, help="behaviors.tsv")
    parser.add_argument("--news", help="news.tsv (item text)")
    parser.add_argument("--output", required=True, help="output folder, e.g. dataset/mind-small")
    parser.add_argument("--name", help="dataset name; default: the output folder's name")
    parser.add_argument("--skip-bad", action="store_true", help="skip malformed lines (counted) instead of failing")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder whole")
    parser.add_argument(
        "--format",
        choices=("inter", "benchmark"),
        default="inter",
        help="inter: one <name>.inter for top-k models; benchmark: train/valid/test impression "
        "files + histories for the news models (implied by --dev-behaviors)",
    )
    parser.add_argument("--dev-behaviors", help="MIND dev behaviors.tsv: the test split (benchmark format)")
    parser.add_argument("--dev-news", help="MIND dev news.tsv, merged into the news table")
    parser.add_argument(
        "--valid-from",
        default=DEFAULT_VALID_FROM,
        help="train-file impressions from this time on are the validation split",
    )
    parser.add_argument(
        "--test-from", help="without --dev-behaviors: train-file impressions from this time on are the test split"
    )
    parser.add_argument(
        "--protocol",
        choices=("newsreclib", "recommenders"),
        default="newsreclib",
        help="recommenders: train = train file, valid = test = dev file",
    )
    parser.add_argument(
        "--max-history",
        type=int,
        default=0,
        help="keep each impression's most recent N history clicks (0 = all; the models read 50)",
    )
    parser.add_argument(
        "--keep-missing-news",
        action="store_true",
        help="keep history ids without a news row (their text is missing) instead of failing",
    )
    args = parser.parse_args(argv)
    if args.format == "benchmark" or args.dev_behaviors:
        return run_converter_cli(
            convert_mind_impressions,
            args.behaviors,
            args.news,
            args.output,
            dev_behaviors=args.dev_behaviors,
            dev_news=args.dev_news,
            name=args.name,
            valid_from=args.valid_from,
            test_from=args.test_from,
            protocol=args.protocol,
            skip_bad=args.skip_bad,
            keep_missing_news=args.keep_missing_news,
            overwrite=args.overwrite,
            max_history=args.max_history,
        )
    return run_converter_cli(
        convert_mind, args.behaviors, args.news, args.output, args.name, args.skip_bad, overwrite=args.overwrite
    )


if __name__ == "__main__":
    raise SystemExit(main())
