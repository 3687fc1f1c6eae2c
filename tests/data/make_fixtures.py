"""Regenerate ``tests/data/raw/``: a tiny mirror of ``../shared/datasets`` cut from the real public files.

The tests set ``RECBOLE_LLM_RAW_DATA`` to ``tests/data/raw``, so the named datasets (amazon-beauty,
amazon-gift-cards, lastfm, lastfm-seq, beauty-seq, scientific, mind-small-sample, mind-small-sample-clicks,
amazon-games, globo) convert from these files in a clean clone, with no ``../shared/datasets`` beside the
project. Every kept line is a byte-for-byte copy of a line of the public file (same folder and file
names); only whole users (or whole rows) are kept, so each file stays in its original format and the
converters' filters see real data:

- ``amazon-2018-5core/Gift_Cards_5.json.gz``, ``All_Beauty_5.json.gz``: every review of a seeded random
  sample of users (plus the first user with a repeated (user, item) pair and the first with an empty
  review, so those quirks stay covered). All_Beauty also keeps every user of its 5-core after
  deduplication, so the mini file has the same 5-core as the full file (686 pairs); the Gift_Cards
  sample (200 users) keeps a non-empty 5-core too. ``meta_Gift_Cards.json.gz``: the metadata of the
  kept items plus a few rows of other items (dropped by the converter).
- ``seqrec/LastFM.txt``, ``seqrec/Beauty.txt``: the first users. The S3-Rec files number items by
  first appearance, so the first users' items are exactly ``1..M`` and ids stay literal.
- ``amazon-2014-beauty/``: the id maps, ASIN sequences and ``Amazon_Beauty.item`` rows of exactly the
  users and items kept in ``seqrec/Beauty.txt`` (beauty-seq joins item text through them).
- ``lastfm/``: every row of a seeded random sample of users; the ``.item`` rows of their artists.
- ``amazon-2018-scientific/``: the rows of the first users (ids ``0..n-1``) in the three splits, and the
  index and text rows of their users and items.
- ``mind-small-sample/``: the first impressions of ``behaviors.tsv``; the ``news.tsv`` rows of news they
  show or click, plus a few others.
- ``amazon-2018-games/``: the ``Games-6k.test.inter`` rows of the first users (plus the first user with
  an HTML entity in an item title) and the ``Games.item`` rows of their items, plus a few others.
- ``globo-news-clicks/globo_clicks.csv.gz``: the header and every click of a seeded sample of the users
  with >= 5 distinct articles among the readers of the most-read article, of a few lighter users, and
  of the first user who clicked one article twice (so deduplication, the user threshold and the
  article threshold all remove something, and the ``globo`` thresholds leave a non-empty subset).
- ``stocks-nasdaq/trsr_nasdaq_2013-2017.tar.gz``: the first 61 days of 8 tickers' files (3 of them with
  missing days), same names inside the archive.

Deterministic: fixed seed, sorted inputs, gzip written with mtime 0, so rerunning gives identical
bytes. Usage (from the project root; the real folder defaults to ``../shared/datasets``)::

    python tests/data/make_fixtures.py [--source ../shared/datasets] [--target tests/data/raw]

(``--source`` defaults to ``$RECBOLE_LLM_SHARED_DATA``, else ``../shared/datasets``.)

The whole folder must stay under 2 MB (checked at the end).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

SEED = 2026
LIMIT_BYTES = 2 * 2**20
HERE = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------- reading and writing
def read_lines(path: Path) -> list[bytes]:
    """Lines of a plain or gzip file, as bytes without their line ending."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return data.splitlines()


def write_lines(path: Path, lines: Iterable[bytes]) -> None:
    """Write lines (``\\n``-terminated); ``.gz`` files are gzipped without a timestamp or file name."""
    data = b"".join(line + b"\n" for line in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        buffer = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as handle:
            handle.write(data)
        data = buffer.getvalue()
    path.write_bytes(data)


def keep_rows(lines: list[bytes], keep: Callable[[bytes], bool], header: bool) -> list[bytes]:
    """The header (when the file has one) and the rows ``keep`` accepts, in file order."""
    head, rows = (lines[:1], lines[1:]) if header else ([], lines)
    return head + [row for row in rows if keep(row)]


def field(row: bytes, index: int, sep: bytes = b"\t") -> str:
    return row.split(sep)[index].decode("utf-8").strip()


# ----------------------------------------------------------------------------- one cut per source
def kcore_pairs(pairs: set[tuple[str, str]], k: int) -> set[tuple[str, str]]:
    """The iterative k-core: drop users and items with fewer than k pairs until none is dropped."""
    while True:
        users = Counter(user for user, _ in pairs)
        items = Counter(item for _, item in pairs)
        kept = {(u, i) for u, i in pairs if users[u] >= k and items[i] >= k}
        if kept == pairs:
            return pairs
        pairs = kept


def cut_amazon_reviews(
    source: Path, target: Path, n_users: int, rng: random.Random, keep_core_users: bool = False
) -> set[str]:
    """Every review of a seeded sample of users (+ one user with a repeated pair, one with an empty review).

    ``keep_core_users``: also keep every user of the file's 5-core after deduplication, so the mini
    file has exactly the same 5-core as the full one (a k-core of a subset that holds the whole core).
    """
    lines = read_lines(source)
    records = [json.loads(line) for line in lines]
    pairs = Counter((r["reviewerID"], r["asin"]) for r in records)
    users = sorted({user for user, _ in pairs})
    chosen = set(rng.sample(users, n_users))
    if keep_core_users:
        chosen |= {user for user, _ in kcore_pairs(set(pairs), 5)}
    repeated = sorted(user for (user, _), count in pairs.items() if count > 1)
    empty = sorted(r["reviewerID"] for r in records if not (r.get("reviewText") or "").strip())
    chosen |= set(repeated[:1]) | set(empty[:1])
    write_lines(target, [line for line, r in zip(lines, records) if r["reviewerID"] in chosen])
    return {r["asin"] for r in records if r["reviewerID"] in chosen}


def cut_amazon_meta(source: Path, target: Path, items: set[str], n_other: int = 3) -> None:
    lines = read_lines(source)
    asins = [json.loads(line)["asin"] for line in lines]
    others = [line for line, asin in zip(lines, asins) if asin not in items][:n_other]
    write_lines(target, [line for line, asin in zip(lines, asins) if asin in items] + others)


def cut_sequences(source: Path, target: Path, n_users: int) -> tuple[set[str], int]:
    """First users of an S3-Rec file; returns their user ids and the largest item id (= item count)."""
    lines = read_lines(source)[:n_users]
    items = [int(i) for line in lines for i in line.split()[1:]]
    if set(items) != set(range(1, max(items) + 1)):
        raise SystemExit(f"{source}: the first {n_users} users' items are not 1..M; ids would not stay literal")
    write_lines(target, lines)
    return {line.split()[0].decode() for line in lines}, max(items)


def cut_beauty_text(source: Path, target: Path, users: set[str], n_items: int) -> None:
    """The amazon-2014-beauty files of exactly the kept beauty-seq users and items."""
    item_map = keep_rows(
        read_lines(source / "DERIVED_s3rec_item_id2asin.tsv"), lambda row: int(field(row, 0)) <= n_items, header=True
    )
    user_map = keep_rows(
        read_lines(source / "DERIVED_s3rec_user_id2reviewerID.tsv"), lambda row: field(row, 0) in users, header=True
    )
    asins = {field(row, 1) for row in item_map[1:]}
    reviewers = {field(row, 1) for row in user_map[1:]}
    write_lines(target / "DERIVED_s3rec_item_id2asin.tsv", item_map)
    write_lines(target / "DERIVED_s3rec_user_id2reviewerID.tsv", user_map)
    write_lines(
        target / "user_sequence_asin.txt",
        keep_rows(
            read_lines(source / "user_sequence_asin.txt"), lambda row: field(row, 0, b" ") in reviewers, header=False
        ),
    )
    write_lines(
        target / "Amazon_Beauty.item",
        keep_rows(read_lines(source / "Amazon_Beauty.item"), lambda row: field(row, 0) in asins, header=True),
    )


def cut_lastfm(source: Path, target: Path, n_users: int, rng: random.Random) -> None:
    inter = read_lines(source / "lastfm.inter")
    users = sorted({field(row, 0) for row in inter[1:]}, key=int)
    chosen = set(rng.sample(users, n_users))
    kept = keep_rows(inter, lambda row: field(row, 0) in chosen, header=True)
    artists = {field(row, 1) for row in kept[1:]}
    write_lines(target / "lastfm.inter", kept)
    write_lines(
        target / "lastfm.item",
        keep_rows(read_lines(source / "lastfm.item"), lambda row: field(row, 0) in artists, header=True),
    )


def cut_scientific(source: Path, target: Path, n_users: int) -> None:
    """Rows of users ``0..n_users-1`` in the three splits; index and text rows of their users and items."""
    users = {str(u) for u in range(n_users)}
    items: set[str] = set()
    for split in ("train", "valid", "test"):
        kept = keep_rows(
            read_lines(source / f"Scientific.{split}.inter"), lambda row: field(row, 0) in users, header=True
        )
        for row in kept[1:]:
            items.update(field(row, 1).split() + [field(row, 2)])
        write_lines(target / f"Scientific.{split}.inter", kept)
    item_index = keep_rows(
        read_lines(source / "Scientific.item2index"), lambda row: field(row, 1) in items, header=False
    )
    asins = {field(row, 0) for row in item_index}
    write_lines(target / "Scientific.item2index", item_index)
    write_lines(
        target / "Scientific.user2index",
        keep_rows(read_lines(source / "Scientific.user2index"), lambda row: field(row, 1) in users, header=False),
    )
    write_lines(
        target / "Scientific.text",
        keep_rows(read_lines(source / "Scientific.text"), lambda row: field(row, 0) in asins, header=True),
    )


def cut_mind(source: Path, target: Path, n_impressions: int, n_other_news: int = 5) -> None:
    behaviors = read_lines(source / "behaviors.tsv")[:n_impressions]
    shown: set[str] = set()
    for row in behaviors:
        shown.update(field(row, 3).split())
        shown.update(entry.split("-")[0] for entry in field(row, 4).split())
    news = read_lines(source / "news.tsv")
    others = [row for row in news if field(row, 0) not in shown][:n_other_news]
    write_lines(target / "behaviors.tsv", behaviors)
    write_lines(target / "news.tsv", [row for row in news if field(row, 0) in shown] + others)


def cut_games(source: Path, target: Path, n_users: int, n_other_items: int = 3) -> None:
    """First users of the history file (+ one whose items include an HTML-escaped title); their titles."""
    item_lines = read_lines(source / "Games.item")
    escaped = {field(row, 0) for row in item_lines[1:] if b"&amp;" in row}
    rows = read_lines(source / "Games-6k.test.inter")

    def items_of(row: bytes) -> set[str]:
        return set(field(row, 1).split()) | {field(row, 2)}

    first_escaped = next(row for row in rows[1:] if items_of(row) & escaped)
    kept = rows[: n_users + 1] + ([first_escaped] if first_escaped not in rows[: n_users + 1] else [])
    items = set().union(*(items_of(row) for row in kept[1:]))
    others = [row for row in item_lines[1:] if field(row, 0) not in items][:n_other_items]
    write_lines(target / "Games-6k.test.inter", kept)
    write_lines(target / "Games.item", keep_rows(item_lines, lambda row: field(row, 0) in items, header=True) + others)


def cut_globo(source: Path, target: Path, n_users: int, n_light: int, rng: random.Random) -> None:
    """Every click of a seeded sample of users, a few light users and one repeater (see the module docstring).

    The sample is drawn among users with >= 5 distinct articles who clicked the log's most-clicked
    article: they read the news of the same days, so articles with >= 10 of them exist (a sample of
    all users leaves none).
    """
    lines = read_lines(source / "globo_clicks.csv.gz")
    articles: dict[str, set[str]] = {}
    clicks: Counter = Counter()
    for row in lines[1:]:
        user = field(row, 0, b",")
        articles.setdefault(user, set()).add(field(row, 4, b","))
        clicks[user] += 1
    readers = Counter(article for read in articles.values() for article in read)
    top = readers.most_common(1)[0][0]
    heavy = sorted((u for u, a in articles.items() if len(a) >= 5 and top in a), key=int)
    light = sorted((u for u, a in articles.items() if len(a) < 5), key=int)
    repeater = next(u for u in sorted(articles, key=int) if clicks[u] > len(articles[u]))
    chosen = set(rng.sample(heavy, n_users)) | set(rng.sample(light, n_light)) | {repeater}
    write_lines(target / "globo_clicks.csv.gz", keep_rows(lines, lambda row: field(row, 0, b",") in chosen, True))


# ----------------------------------------------------------------------------- driver
STOCK_TICKERS = ("AAPL", "ABMD", "ADBE", "AKAM", "ALGN", "AMOT", "AMZN", "ATRI")  # ABMD, AMOT, ATRI miss days


def cut_stocks(source: Path, target: Path, n_days: int = 61) -> None:
    """The first ``n_days`` rows of a few tickers' files, in a tar.gz of the same name and layout."""
    import tarfile

    target.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(source, "r:gz") as archive, tarfile.open(fileobj=buffer, mode="w") as out:
        for ticker in STOCK_TICKERS:
            name = f"data/2013-01-01/NASDAQ_{ticker}_1.csv"
            lines = archive.extractfile(name).read().splitlines()[:n_days]
            data = b"".join(line + b"\n" for line in lines)
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            out.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=9) as handle:
        handle.write(buffer.getvalue())
    target.write_bytes(packed.getvalue())


def make_fixtures(source: Path, target: Path) -> int:
    """Rebuild ``target`` from ``source``; returns its total size in bytes."""
    if target.exists():
        shutil.rmtree(target)
    rng = random.Random(SEED)
    amazon, amazon_target = source / "amazon-2018-5core", target / "amazon-2018-5core"
    gift_items = cut_amazon_reviews(
        amazon / "Gift_Cards_5.json.gz", amazon_target / "Gift_Cards_5.json.gz", n_users=200, rng=rng
    )
    cut_amazon_meta(amazon / "meta_Gift_Cards.json.gz", amazon_target / "meta_Gift_Cards.json.gz", gift_items)
    cut_amazon_reviews(
        amazon / "All_Beauty_5.json.gz",
        amazon_target / "All_Beauty_5.json.gz",
        n_users=40,
        rng=rng,
        keep_core_users=True,
    )
    cut_sequences(source / "seqrec" / "LastFM.txt", target / "seqrec" / "LastFM.txt", n_users=120)
    beauty_users, beauty_items = cut_sequences(
        source / "seqrec" / "Beauty.txt", target / "seqrec" / "Beauty.txt", n_users=60
    )
    cut_beauty_text(source / "amazon-2014-beauty", target / "amazon-2014-beauty", beauty_users, beauty_items)
    cut_lastfm(source / "lastfm", target / "lastfm", n_users=30, rng=rng)
    cut_scientific(source / "amazon-2018-scientific", target / "amazon-2018-scientific", n_users=150)
    cut_mind(source / "mind-small-sample", target / "mind-small-sample", n_impressions=100)
    cut_games(source / "amazon-2018-games", target / "amazon-2018-games", n_users=60)
    cut_globo(source / "globo-news-clicks", target / "globo-news-clicks", n_users=150, n_light=20, rng=rng)
    stocks = "stocks-nasdaq/trsr_nasdaq_2013-2017.tar.gz"
    cut_stocks(source / stocks, target / stocks)
    return sum(p.stat().st_size for p in target.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Cut tests/data/raw from the real public files.")
    default_source = os.environ.get("RECBOLE_LLM_SHARED_DATA") or HERE.parents[2] / "shared" / "datasets"
    parser.add_argument(
        "--source",
        type=Path,
        default=Path(default_source),
        help="the real data folder (default: $RECBOLE_LLM_SHARED_DATA, else ../shared/datasets)",
    )
    parser.add_argument("--target", type=Path, default=HERE / "raw")
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        print(f"error: real data folder {args.source} not found; pass --source", file=sys.stderr)
        return 2
    size = make_fixtures(args.source, args.target)
    print(f"{args.target}: {size / 2**10:.0f} KiB")
    if size > LIMIT_BYTES:
        print(f"error: fixtures are {size} bytes, over the {LIMIT_BYTES}-byte limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
