"""LLMRank / UniSRec per-user history file (``Games-6k.test.inter``) -> general-recommendation atomic files.

Source format: Hou et al., LLMRank (ECIR 2024; RUCAIBox/LLMRank), which processes Amazon 2018 as
UniSRec does: ``<prefix>.test.inter`` has one row per user, ``user_id item_id_list item_id`` = the
user's whole visible history (oldest first), then its held-out test item; ``<prefix>.item``
(``item_id:token title:token_seq``) holds the item titles. Ids are 0-based integers shared by both
files. There are no timestamps, only the order.

Output ``<name>.inter`` (``user_id:token item_id:token timestamp:float``): one row per item of each
user's sequence (history + test item), ``timestamp`` = the item's 1-based position in that user's
sequence. Rows are written user by user in sequence order, so RecBole's stable sort by time keeps
each user's order, and ``order: TO`` with ``split: {LS: valid_and_test}`` holds out the last item
for test and the one before it for validation, as the source file does. Positions are only
comparable within one user (the yaml's time-ordered split groups by user). ``<name>.item``
(``item_id:token title:token``): the cleaned title (HTML entities unescaped) of every item kept, as
a plain text field so P4R's template profiles and the text encoders read it whole. ``<name>.yaml``
and ``conversion_report.json`` as every converter writes them.

``--sample-users N --seed S`` keeps N users drawn by ``random.Random(S).sample`` over the file's user
rows (the users stay in file order; :func:`dataset_converters.seqrec.sample_users`). Nothing else is
filtered: items keep whatever interactions the sampled users have (the report counts the items left
with fewer than 5).

CLI::

    python -m dataset_converters.llmrank --input ../shared/datasets/amazon-2018-games/Games-6k.test.inter \
        --item ../shared/datasets/amazon-2018-games/Games.item --output dataset/amazon-games-10k \
        --sample-users 10000 --seed 0
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path

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
from dataset_converters.seqrec import repeated_pairs, sample_users
from dataset_converters.unisrec import read_split

logger = logging.getLogger(__name__)

INTER_HEADER = ["user_id:token", "item_id:token", "timestamp:float"]
ITEM_HEADER = ["item_id:token", "title:token"]


def read_titles(path: str | Path, report: ConversionReport) -> dict[str, str]:
    """``item_id<TAB>title`` rows (RecBole header checked) -> {item token: cleaned title}."""
    titles: dict[str, str] = {}
    for number, line in iter_lines(path, report):
        item, sep, title = line.partition("\t")
        if number == 1:
            if not item.startswith("item_id:") or not title.startswith("title:"):
                raise input_error(path, 1, "header is not 'item_id:token<TAB>title:...'", hint=None)
            continue
        if not sep or not item.strip().isdigit():
            raise input_error(path, number, "expected 'integer item id<TAB>title'", "item_id", hint=None)
        titles[item.strip()] = report.text("title", title)
    return titles


def _rows(sequences: list[tuple[str, list[str]]], report: ConversionReport) -> list[tuple[str, str, int]]:
    """(user, item, position in the user's sequence) rows, user by user; counts in the report."""
    rows = [(user, item, position) for user, items in sequences for position, item in enumerate(items, start=1)]
    per_item = Counter(item for _, item, _ in rows)
    report.counts.update(
        users=len(sequences),
        items=len(per_item),
        interactions=len(rows),
        items_with_fewer_than_5_interactions=sum(count < 5 for count in per_item.values()),
        shortest_sequence=min((len(items) for _, items in sequences), default=0),
    )
    return rows


def _write(output_dir: Path, name: str, report: ConversionReport, rows, item_rows, overwrite: bool) -> None:
    with atomic_output_dir(output_dir, overwrite) as tmp:
        write_atomic_file(tmp / f"{name}.inter", INTER_HEADER, rows)
        write_atomic_file(tmp / f"{name}.item", ITEM_HEADER, item_rows)
        report.files += [str(output_dir / f"{name}.inter"), str(output_dir / f"{name}.item")]
        sample = report.counts.get("sample")
        write_dataset_yaml(
            tmp,
            name,
            dataset_settings(INTER_HEADER, ITEM_HEADER, ["title"]),
            f"{name}: LLMRank/UniSRec history file converted by dataset_converters.llmrank"
            + (f" (sample of {sample['users']:,} users, seed {sample['seed']})" if sample else "")
            + f"\n{report.counts['interactions']:,} interactions, {report.counts['users']:,} users, "
            f"{report.counts['items']:,} items; timestamps are positions in each user's sequence.\n"
            "Leave-one-out by time (last item = test, second last = valid), full ranking.",
        )
        report.files.append(str(output_dir / f"{name}.yaml"))
        write_report(tmp, report)


def convert_llmrank(
    input_path: str | Path,
    item_path: str | Path,
    output_dir: str | Path,
    name: str | None = None,
    sample_users_n: int | None = None,
    seed: int = 0,
    skip_bad: bool = False,
    overwrite: bool = False,
) -> ConversionReport:
    """Convert a history file + titles into ``output_dir/<name>.{inter,item,yaml}``.

    Steps in order: read, sample users (``sample_users_n`` with ``seed``; None = all), count repeated
    (user, item) pairs, write one row per sequence position and the titles of the items kept.
    """
    output_dir = check_output_dir(output_dir, overwrite)
    name = name or output_dir.name
    report = ConversionReport(name=name)
    split = read_split(Path(input_path), report, None, skip_bad)
    sequences = [(user, history.split() + [target]) for user, history, target in split]
    if len({user for user, _ in sequences}) != len(sequences):
        raise ConversionError(f"{input_path}: a user has several rows; expected one history row per user")
    sequences = sample_users(sequences, sample_users_n, seed, report)
    repeated_pairs(sequences, dedup=False, report=report)
    report.rows_kept = len(sequences)
    rows = _rows(sequences, report)
    titles = read_titles(item_path, report)
    kept_items = sorted({item for _, item, _ in rows}, key=int)
    item_rows = [(item, titles[item]) for item in kept_items if item in titles]
    report.counts.update(items_with_title=len(item_rows), items_without_title=len(kept_items) - len(item_rows))
    _write(output_dir, name, report, rows, item_rows, overwrite)
    logger.info(report.summary())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="LLMRank/UniSRec per-user history file -> RecBole general-recommendation atomic files.",
        allow_abbrev=False,
    )
    parser.add_argument("--input", required=True, help="history file: user_id, item_id_list, item_id (one row a user)")
    parser.add_argument("--item", required=True, help="RecBole .item file with item_id and title")
    parser.add_argument("--output", required=True, help="output folder, e.g. dataset/amazon-games")
    parser.add_argument("--name", help="dataset name; default: the output folder's name")
    parser.add_argument("--sample-users", type=int, help="keep this many users, drawn with --seed (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the user sample (default 0)")
    parser.add_argument("--skip-bad", action="store_true", help="skip malformed lines (counted) instead of failing")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder whole")
    args = parser.parse_args(argv)
    return run_converter_cli(
        convert_llmrank,
        args.input,
        args.item,
        args.output,
        args.name,
        sample_users_n=args.sample_users,
        seed=args.seed,
        skip_bad=args.skip_bad,
        overwrite=args.overwrite,
    )


if __name__ == "__main__":
    raise SystemExit(main())
