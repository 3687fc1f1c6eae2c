"""Globo.com news click log (``globo_clicks.csv.gz``) -> RecBole atomic files with real click times.

Source: Moreira et al., "News Session-Based Recommendations using Deep Neural Networks", DLRS 2018
(the G1 portal's click log, 2017-10-01 .. 2017-10-17, hourly files concatenated into one CSV with
columns ``user_id, session_id, session_start, session_size, click_article_id, click_timestamp (ms),
click_environment, click_deviceGroup, click_os, click_country, click_region, click_referrer_type``).
Only user, article and click time are used; the log has no article text.

Steps, in order:

1. **Deduplicate**: one row per (user, article), at the user's first click on it.
2. **Eligible users**: users with at least ``min_user_clicks`` distinct articles.
3. **Sample** (``sample_users_n``, ``seed``): that many eligible users, drawn by
   ``random.Random(seed).sample`` over their ids sorted ascending (None: every eligible user).
4. **Filter** the sample: drop articles with fewer than ``min_article_clicks`` users and users with
   fewer than ``min_user_clicks`` articles, repeated until nothing changes (both thresholds hold on
   the output; the report gives the number of rounds).

Output ``<name>.inter``: ``user_id:token item_id:token timestamp:float``, rows in click order.
``timestamp`` is in seconds (millisecond fraction kept) since 2017-10-01 00:00 Brasilia time
(UTC-3, 03:00 UTC), the start of the log: RecBole holds float fields as float32, whose step at Unix
times near 1.5e9 is 128 s, while offsets below 4.2e6 s keep a step under 0.5 s, so clicks keep
their order and hour/day buckets (POPK) fall on local hours and days. ``<name>.yaml``: fields and
the leave-one-out split by time; ``conversion_report.json``.

CLI::

    python -m dataset_converters.globo --input ../shared/datasets/globo-news-clicks/globo_clicks.csv.gz \
        --output dataset/globo --sample-users 20000 --seed 0 --min-user-clicks 5 --min-article-clicks 10
"""

from __future__ import annotations

import argparse
import logging
import random
from pathlib import Path

from dataset_converters._common import (
    ConversionError,
    ConversionReport,
    atomic_output_dir,
    check_output_dir,
    dataset_settings,
    run_converter_cli,
    write_atomic_file,
    write_dataset_yaml,
    write_report,
)

logger = logging.getLogger(__name__)

INTER_HEADER = ["user_id:token", "item_id:token", "timestamp:float"]
COLUMNS = {"user_id": "user_id", "click_article_id": "item_id", "click_timestamp": "time_ms"}
#: 2017-10-01 00:00 in Brasilia (UTC-3), in Unix milliseconds: the origin of the output's timestamps.
TIME_ORIGIN_MS = 1_506_826_800_000


def read_clicks(path: str | Path, report: ConversionReport):
    """The user, article and click-time columns as a DataFrame (``user_id, item_id, time_ms``)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Input file not found: {path}")
    header = pd.read_csv(path, nrows=0).columns
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ConversionError(f"{path}:1: field '{missing[0]}': missing from the header ({', '.join(header)})")
    try:
        frame = pd.read_csv(path, usecols=list(COLUMNS), dtype="int64")
    except ValueError as err:
        raise ConversionError(f"{path}: a user, article or click time is not an integer ({err})") from None
    frame = frame.rename(columns=COLUMNS)
    report.rows_read = len(frame)
    report.counts.update(raw_users=int(frame.user_id.nunique()), raw_articles=int(frame.item_id.nunique()))
    return frame


def first_clicks(frame, report: ConversionReport):
    """One row per (user, article): the earliest click (ties in file order), rows in time order."""
    ordered = frame.sort_values("time_ms", kind="stable")
    deduplicated = ordered.drop_duplicates(["user_id", "item_id"], keep="first")
    report.drop("repeated (user, article) click (the first was kept)", len(frame) - len(deduplicated))
    return deduplicated


def sample_eligible_users(frame, n: int | None, seed: int, min_user_clicks: int, report: ConversionReport):
    """Rows of ``n`` users drawn with ``seed`` among those with >= ``min_user_clicks`` distinct articles."""
    counts = frame.user_id.value_counts()
    eligible = sorted(int(u) for u in counts.index[counts >= min_user_clicks])
    report.counts["eligible_users"] = len(eligible)
    if n is not None and n < 1:
        raise ConversionError(f"--sample-users must be >= 1, got {n}")
    chosen = eligible if n is None or n >= len(eligible) else random.Random(seed).sample(eligible, n)
    if n is not None and n < len(eligible):
        report.counts["sample"] = {"users": n, "seed": seed}
    kept = frame[frame.user_id.isin(set(chosen))]
    report.drop(f"user with < {min_user_clicks} articles or not in the sample", len(frame) - len(kept))
    return kept


def iterated_filter(frame, min_user_clicks: int, min_article_clicks: int, report: ConversionReport):
    """Drop rare articles and light users until both thresholds hold (a fixed point)."""
    rounds = 0
    while True:
        rounds += 1
        user_n = frame.user_id.map(frame.user_id.value_counts())
        item_n = frame.item_id.map(frame.item_id.value_counts())
        kept = frame[(user_n >= min_user_clicks) & (item_n >= min_article_clicks)]
        if len(kept) == len(frame):
            break
        frame = kept
    report.counts["filter_rounds"] = rounds
    return frame


def convert_globo(
    input_path: str | Path,
    output_dir: str | Path,
    name: str | None = None,
    sample_users_n: int | None = None,
    seed: int = 0,
    min_user_clicks: int = 1,
    min_article_clicks: int = 1,
    overwrite: bool = False,
) -> ConversionReport:
    """Convert the click log into ``output_dir/<name>.{inter,yaml}`` (steps in the module docstring)."""
    output_dir = check_output_dir(output_dir, overwrite)
    name = name or output_dir.name
    report = ConversionReport(name=name)
    frame = first_clicks(read_clicks(input_path, report), report)
    frame = sample_eligible_users(frame, sample_users_n, seed, min_user_clicks, report)
    before = len(frame)
    frame = iterated_filter(frame, min_user_clicks, min_article_clicks, report)
    report.drop(
        f"filter: article with < {min_article_clicks} users or user with < {min_user_clicks} articles",
        before - len(frame),
    )
    if frame.empty:
        raise ConversionError(f"{input_path}: no click is left after sampling and filtering")
    report.rows_kept = len(frame)
    report.counts.update(
        users=int(frame.user_id.nunique()),
        items=int(frame.item_id.nunique()),
        interactions=len(frame),
        min_user_clicks=min_user_clicks,
        min_article_clicks=min_article_clicks,
        time_origin_unix_ms=TIME_ORIGIN_MS,
    )
    seconds = (frame.time_ms - TIME_ORIGIN_MS) / 1000
    rows = zip(frame.user_id.tolist(), frame.item_id.tolist(), seconds.tolist())
    _write(output_dir, name, report, rows, overwrite)
    logger.info(report.summary())
    return report


def _write(output_dir: Path, name: str, report: ConversionReport, rows, overwrite: bool) -> None:
    counts = report.counts
    with atomic_output_dir(output_dir, overwrite) as tmp:
        write_atomic_file(tmp / f"{name}.inter", INTER_HEADER, rows)
        report.files.append(str(output_dir / f"{name}.inter"))
        sample = counts.get("sample")
        write_dataset_yaml(
            tmp,
            name,
            dataset_settings(INTER_HEADER),
            f"{name}: Globo.com news clicks converted by dataset_converters.globo: first click per (user, article)"
            + (f", {sample['users']:,} users sampled with seed {sample['seed']}" if sample else "")
            + f", users >= {counts['min_user_clicks']} articles and articles >= {counts['min_article_clicks']} users"
            f" (iterated).\n{counts['interactions']:,} interactions, {counts['users']:,} users, "
            f"{counts['items']:,} articles; timestamp = seconds since 2017-10-01 00:00 UTC-3.\n"
            "Leave-one-out by time (last click = test, second last = valid), full ranking.",
        )
        report.files.append(str(output_dir / f"{name}.yaml"))
        write_report(tmp, report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Globo.com news click log -> RecBole atomic files.", allow_abbrev=False
    )
    parser.add_argument("--input", required=True, help="globo_clicks.csv.gz (or plain CSV)")
    parser.add_argument("--output", required=True, help="output folder, e.g. dataset/globo")
    parser.add_argument("--name", help="dataset name; default: the output folder's name")
    parser.add_argument("--sample-users", type=int, help="keep this many eligible users, drawn with --seed")
    parser.add_argument("--seed", type=int, default=0, help="seed of the user sample (default 0)")
    parser.add_argument("--min-user-clicks", type=int, default=1, help="distinct articles a user needs (default 1)")
    parser.add_argument("--min-article-clicks", type=int, default=1, help="users an article needs (default 1)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder whole")
    args = parser.parse_args(argv)
    return run_converter_cli(
        convert_globo,
        args.input,
        args.output,
        args.name,
        sample_users_n=args.sample_users,
        seed=args.seed,
        min_user_clicks=args.min_user_clicks,
        min_article_clicks=args.min_article_clicks,
        overwrite=args.overwrite,
    )


if __name__ == "__main__":
    raise SystemExit(main())
