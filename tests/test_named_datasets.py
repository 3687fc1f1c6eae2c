"""Named datasets: atomic files if present, else converted from the raw folder (or downloaded).

Most tests convert from ``tests/data/raw`` (real rows cut from the public files, the default raw folder
of the test suite) and compute what they expect from those raw files; the ``real_data`` tests check
the documented counts of the full files in ``../shared/datasets`` and skip when it is absent.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest

import dataset_converters.amazon
from dataset_converters._common import clean_text
from recbole_llm.config import Config
from recbole_llm.data import DatasetNotFoundError, create_dataset, named_datasets
from recbole_llm.data.download import DownloadError, download_file
from recbole_llm.data.named_datasets import RawDataNotFoundError, prepare_named_dataset
from recbole_llm.profiles import collect_item_attributes
from recbole_llm.quick_start import run_recbole_llm
from recbole_llm.text import item_texts

from conftest import FAST

BEAUTY_RAW = "amazon-2018-5core/All_Beauty_5.json.gz"
GIFT_RAW = "amazon-2018-5core/Gift_Cards_5.json.gz"
GIFT_META = "amazon-2018-5core/meta_Gift_Cards.json.gz"


def plain_config(dataset: str, data_root: Path, **extra) -> dict:
    """The keys prepare_named_dataset reads, with the defaults RecBole's Config and properties/overall.yaml give."""
    defaults = {"raw_data_path": None, "download_raw": False, "benchmark_filename": None}
    return {**defaults, "dataset": dataset, "data_path": str(data_root / dataset), **extra}


def json_lines(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def distinct_pairs(path: Path) -> set[tuple[str, str]]:
    return {(r["reviewerID"], r["asin"]) for r in json_lines(path)}


def data_lines(path: Path) -> list[str]:
    """Lines of an atomic file without its header."""
    return path.read_text(encoding="utf-8").splitlines()[1:]


def test_lightgcn_on_amazon_beauty_from_raw_files(tmp_path):
    """The acceptance run: nothing converted beforehand, raw files from RECBOLE_LLM_RAW_DATA."""
    result = run_recbole_llm("LightGCN", "amazon-beauty", config_dict={**FAST, "data_path": str(tmp_path)}, saved=False)
    assert (tmp_path / "amazon-beauty" / "amazon-beauty.inter").is_file()
    assert 0 < result["test_result"]["recall@10"] <= 1


def test_present_atomic_files_are_used_without_converting(tmp_path, monkeypatch):
    config = plain_config("amazon-beauty", tmp_path)
    assert prepare_named_dataset(config)
    inter = tmp_path / "amazon-beauty" / "amazon-beauty.inter"
    stamp = inter.stat().st_mtime_ns

    def must_not_convert(*_, **__):
        raise AssertionError("converted although the atomic files were present")

    # Replaced where the registry's convert imports it from: the conversion stamp stays the same.
    monkeypatch.setattr(dataset_converters.amazon, "convert_amazon", must_not_convert)
    assert prepare_named_dataset(config) and inter.stat().st_mtime_ns == stamp


def test_raw_data_path_key_and_flat_layout(tmp_path, mini_raw, monkeypatch):
    flat = tmp_path / "raw"
    flat.mkdir()
    (flat / "All_Beauty_5.json.gz").symlink_to(mini_raw / BEAUTY_RAW)
    monkeypatch.setenv("RECBOLE_LLM_RAW_DATA", str(tmp_path / "nowhere"))  # the config key wins
    assert prepare_named_dataset(plain_config("amazon-beauty", tmp_path, raw_data_path=str(flat)))
    rows = data_lines(tmp_path / "amazon-beauty" / "amazon-beauty.inter")
    assert len(rows) == len(distinct_pairs(mini_raw / BEAUTY_RAW))  # repeated rows dropped, nothing else


def test_missing_raw_files_say_where_they_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("RECBOLE_LLM_RAW_DATA", str(tmp_path / "empty"))
    with pytest.raises(RawDataNotFoundError, match="All_Beauty_5.*RECBOLE_LLM_RAW_DATA.*download_raw"):
        prepare_named_dataset(plain_config("amazon-beauty", tmp_path))
    assert not prepare_named_dataset(plain_config("not-a-dataset", tmp_path))
    with pytest.raises(DatasetNotFoundError, match="amazon-beauty"):  # the named ones are listed
        create_dataset(Config("BPR", "not-a-dataset", config_dict={**FAST, "data_path": str(tmp_path)}))


def _prepare_concurrently(config: dict, n_threads: int = 3) -> list:
    outcomes: list = []

    def prepare():
        try:
            outcomes.append(prepare_named_dataset(config))
        except Exception as err:  # noqa: BLE001 - reported by the caller's assertion
            outcomes.append(err)

    threads = [threading.Thread(target=prepare) for _ in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_preparation_is_safe(tmp_path, mini_raw):
    assert _prepare_concurrently(plain_config("amazon-gift-cards", tmp_path)) == [True, True, True]
    folder = tmp_path / "amazon-gift-cards"
    pairs = distinct_pairs(mini_raw / GIFT_RAW)
    with_meta = {item for _, item in pairs} & {r["asin"] for r in json_lines(mini_raw / GIFT_META)}
    assert len(data_lines(folder / "amazon-gift-cards.inter")) == len(pairs)
    assert len(data_lines(folder / "amazon-gift-cards.item")) == len(with_meta)
    assert [p.name for p in tmp_path.iterdir()] == ["amazon-gift-cards"]  # no temporary folders left


def test_gift_cards_real_counts(tmp_path, shared_datasets):
    """The counts documented in properties/dataset/amazon-gift-cards.yaml, from the full raw files."""
    config = plain_config("amazon-gift-cards", tmp_path, raw_data_path=str(shared_datasets))
    assert prepare_named_dataset(config)
    folder = tmp_path / "amazon-gift-cards"
    assert len(data_lines(folder / "amazon-gift-cards.inter")) == 2965
    assert len(data_lines(folder / "amazon-gift-cards.item")) == 148


def test_registry_checksums_match_the_real_files(shared_datasets):
    checked = 0
    for spec in named_datasets.NAMED_DATASETS.values():
        for raw in spec.raw_files:
            if raw.sha256 is None:
                continue
            real = shared_datasets / raw.candidates[0]
            assert hashlib.sha256(real.read_bytes()).hexdigest() == raw.sha256, real
            assert real.stat().st_size == raw.size, real
            checked += 1
    assert checked >= 3  # All_Beauty_5, Gift_Cards_5, meta_Gift_Cards


@pytest.fixture
def local_server(mini_raw):
    """An HTTP server on localhost serving the mini raw-data folder."""
    handler = functools.partial(_QuietHandler, directory=str(mini_raw))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_checks_sha256(local_server, mini_raw, tmp_path):
    source = mini_raw / BEAUTY_RAW
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    target = download_file(
        f"{local_server}/{BEAUTY_RAW}",
        tmp_path / "a" / "All_Beauty_5.json.gz",
        sha256=digest,
        expected_size=source.stat().st_size,
        show_progress=False,
    )
    assert target.read_bytes() == source.read_bytes()
    with pytest.raises(DownloadError, match="sha256"):
        download_file(
            f"{local_server}/{BEAUTY_RAW}", tmp_path / "b" / "x.json.gz", sha256="0" * 64, show_progress=False
        )
    with pytest.raises(DownloadError, match="404"):
        download_file(f"{local_server}/missing.json.gz", tmp_path / "b" / "y.json.gz", show_progress=False)
    assert list((tmp_path / "b").iterdir()) == []  # nothing half-downloaded is left


def test_named_dataset_downloads_missing_raw_file(local_server, mini_raw, tmp_path, monkeypatch):
    source = mini_raw / BEAUTY_RAW
    spec = named_datasets.NAMED_DATASETS["amazon-beauty"]
    local = dataclasses.replace(
        spec.raw_files[0],
        url=f"{local_server}/{BEAUTY_RAW}",
        sha256=hashlib.sha256(source.read_bytes()).hexdigest(),
        size=source.stat().st_size,
    )
    raw = tmp_path / "raw"
    config = plain_config("amazon-beauty", tmp_path / "data", raw_data_path=str(raw), download_raw=True)
    monkeypatch.setitem(named_datasets.NAMED_DATASETS, "amazon-beauty", dataclasses.replace(spec, raw_files=(local,)))
    assert prepare_named_dataset(config)
    assert (raw / BEAUTY_RAW).read_bytes() == source.read_bytes()
    assert (tmp_path / "data" / "amazon-beauty" / "amazon-beauty.inter").is_file()


# ----------------------------------------------------------------------------- loading with text
SEQUENCE_FILES = {"lastfm-seq": "LastFM.txt", "beauty-seq": "Beauty.txt"}


def check_literal_item_ids(dataset: str, raw_root: Path, data_path: Path):
    """Token k is RecBole id k, the time order is the file's sequence order; returns (config, dataset)."""
    lines = (raw_root / "seqrec" / SEQUENCE_FILES[dataset]).read_text().splitlines()
    n_items = max(int(item) for line in lines for item in line.split()[1:])
    config = Config("BPR", dataset, config_dict={**FAST, "data_path": str(data_path), "raw_data_path": str(raw_root)})
    ds = create_dataset(config)
    assert ds.item_num == n_items + 1
    field = ds.iid_field
    assert all(ds.token2id(field, str(k)) == k for k in range(1, n_items + 1))
    for line in (lines[0], lines[-1]):
        user, *items = line.split()
        rows = ds.inter_feat[ds.inter_feat[ds.uid_field] == ds.token2id(ds.uid_field, user)]
        order = np.argsort(np.asarray(rows[ds.time_field]), kind="stable")
        assert np.asarray(rows[field])[order].tolist() == [int(i) for i in items]  # time order = sequence order
    return config, ds


def check_beauty_titles(config, ds, raw_root: Path, ids: tuple[int, ...]) -> None:
    """beauty-seq item text starts with the title joined through the id -> ASIN map."""
    folder = raw_root / "amazon-2014-beauty"
    asin = dict(line.split("\t") for line in data_lines(folder / "DERIVED_s3rec_item_id2asin.tsv"))
    titles = {line.split("\t")[0]: line.split("\t")[1] for line in data_lines(folder / "Amazon_Beauty.item")}
    texts = item_texts(config, ds)
    for k in ids:
        assert texts[k].startswith(clean_text(titles[asin[str(k)]]))


@pytest.mark.parametrize("dataset", ["lastfm-seq", "beauty-seq"])
def test_sequential_datasets_keep_literal_item_ids(dataset, tmp_path, mini_raw):
    config, ds = check_literal_item_ids(dataset, mini_raw, tmp_path)
    if dataset == "beauty-seq":
        check_beauty_titles(config, ds, mini_raw, (1, 2, ds.item_num // 2, ds.item_num - 1))


@pytest.mark.parametrize("dataset, n_items", [("lastfm-seq", 3646), ("beauty-seq", 12101)])
def test_sequential_datasets_real_counts(dataset, n_items, tmp_path, shared_datasets):
    config, ds = check_literal_item_ids(dataset, shared_datasets, tmp_path)
    assert ds.item_num == n_items + 1
    if dataset == "beauty-seq":
        check_beauty_titles(config, ds, shared_datasets, (1, 2, 500, n_items))


def load_lastfm(raw_root: Path, data_path: Path):
    """lastfm: every row of lastfm.inter, artist names as item text."""
    config = Config("BPR", "lastfm", config_dict={**FAST, "data_path": str(data_path), "raw_data_path": str(raw_root)})
    ds = create_dataset(config)
    rows = data_lines(raw_root / "lastfm" / "lastfm.inter")
    assert len(ds.inter_feat) == len(rows)
    names = {line.split("\t")[0]: line.split("\t")[1] for line in data_lines(raw_root / "lastfm" / "lastfm.item")}
    artist = rows[0].split("\t")[1]
    assert item_texts(config, ds)[ds.token2id(ds.iid_field, artist)] == names[artist]
    return ds


def load_scientific(raw_root: Path, data_path: Path):
    """scientific: the three pre-split files as they are, text for every item with a .text row."""
    config = Config(
        "SASRec",
        "scientific",
        config_dict={
            **FAST,
            "data_path": str(data_path),
            "raw_data_path": str(raw_root),
            "train_neg_sample_args": None,
        },
    )
    ds = create_dataset(config)
    folder = raw_root / "amazon-2018-scientific"
    assert ds.file_size_list == [len(data_lines(folder / f"Scientific.{s}.inter")) for s in ("train", "valid", "test")]
    index = dict(line.split("\t") for line in (folder / "Scientific.item2index").read_text().splitlines())
    with_text = {
        index[line.split("\t")[0]] for line in data_lines(folder / "Scientific.text") if line.split("\t")[0] in index
    }
    texts = item_texts(config, ds)
    assert sum(t is not None for t in texts) == len(with_text & set(ds.field2id_token[ds.iid_field][1:]))
    return ds, texts


def load_mind(raw_root: Path, data_path: Path):
    """mind-small-sample-clicks: one row per click of the impressions (label 1 only), text for every news row."""
    config = Config(
        "BPR",
        "mind-small-sample-clicks",
        config_dict={**FAST, "data_path": str(data_path), "raw_data_path": str(raw_root)},
    )
    ds = create_dataset(config)
    folder = raw_root / "mind-small-sample"
    behaviors = (folder / "behaviors.tsv").read_text(encoding="utf-8").splitlines()
    clicks = sum(entry.endswith("-1") for line in behaviors for entry in line.split("\t")[4].split())
    assert len(ds.inter_feat) == clicks
    news = {line.split("\t")[0] for line in (folder / "news.tsv").read_text(encoding="utf-8").splitlines()}
    texts = item_texts(config, ds)
    assert sum(t is not None for t in texts) == len(news)
    return ds, texts


def test_lastfm_scientific_and_mind_load_with_text(tmp_path, mini_raw):
    load_lastfm(mini_raw, tmp_path)
    load_scientific(mini_raw, tmp_path)
    load_mind(mini_raw, tmp_path)


def test_lastfm_scientific_and_mind_real_counts(tmp_path, shared_datasets):
    """The counts documented in properties/dataset/{lastfm,scientific,mind-small-sample-clicks}.yaml."""
    assert len(load_lastfm(shared_datasets, tmp_path).inter_feat) == 64286
    ds, texts = load_scientific(shared_datasets, tmp_path)
    assert ds.file_size_list == [34101, 8442, 8442]
    assert sum(t is not None for t in texts) == 4385
    ds, texts = load_mind(shared_datasets, tmp_path)
    assert len(ds.inter_feat) == 7542  # clicks of the 5,000-impression sample
    assert sum(t is not None for t in texts) == 2000


# ----------------------------------------------------------------------------- amazon-games, globo
GAMES = "amazon-2018-games"
GLOBO_RAW = "globo-news-clicks/globo_clicks.csv.gz"


def games_sequences(raw_root: Path) -> dict[str, list[str]]:
    """User token -> whole sequence (history, then test item) of Games-6k.test.inter."""
    rows = (line.split("\t") for line in data_lines(raw_root / GAMES / "Games-6k.test.inter"))
    return {user: history.split() + [target] for user, history, target in rows}


def inter_rows(folder: Path, name: str) -> list[list[str]]:
    return [line.split("\t") for line in data_lines(folder / f"{name}.inter")]


def test_amazon_games_follows_each_sequence_and_gives_titles_to_p4r(tmp_path, mini_raw):
    """One row per sequence position (timestamp = position); RecBole's leave-one-out by time holds out
    each user's last item and trains on the rest in order; titles reach P4R's template profiles."""
    config = Config("P4R", "amazon-games", config_dict={**FAST, "data_path": str(tmp_path)})
    ds = create_dataset(config)
    sequences = games_sequences(mini_raw)
    assert ds.inter_num == sum(map(len, sequences.values())) and ds.user_num - 1 == len(sequences)
    train, valid, test = ds.build()

    def items_of(split, uid) -> list[str]:
        ids = split.inter_feat[ds.iid_field][split.inter_feat[ds.uid_field] == uid].tolist()
        return [ds.id2token(ds.iid_field, i) for i in ids]

    for user in (next(iter(sequences)), list(sequences)[-1]):
        uid = ds.token2id(ds.uid_field, user)
        assert items_of(train, uid) == sequences[user][:-2]  # training rows in sequence order
        assert items_of(valid, uid) == [sequences[user][-2]] and items_of(test, uid) == [sequences[user][-1]]
    rows = inter_rows(tmp_path / "amazon-games", "amazon-games")
    assert [int(float(t)) for u, _, t in rows if u == "0"] == list(range(1, len(sequences["0"]) + 1))
    titles = dict(line.split("\t", 1) for line in data_lines(mini_raw / GAMES / "Games.item"))
    assert any("&amp;" in titles[item] for item in ds.field2id_token[ds.iid_field][1:])  # cleaning is exercised
    attributes = {item.token: item.title for item in collect_item_attributes(config, ds)}
    assert attributes == {item: clean_text(titles[item]) for items in sequences.values() for item in items}


def test_amazon_games_user_sample_is_seeded_and_keeps_whole_sequences(tmp_path, mini_raw):
    from dataset_converters.llmrank import convert_llmrank

    files = (mini_raw / GAMES / "Games-6k.test.inter", mini_raw / GAMES / "Games.item")
    outputs = {}
    for label, seed in (("a", 0), ("b", 0), ("c", 1)):
        convert_llmrank(*files, tmp_path / label, sample_users_n=20, seed=seed)
        outputs[label] = inter_rows(tmp_path / label, label)
    users = {label: {u for u, _, _ in rows} for label, rows in outputs.items()}
    assert outputs["a"] == outputs["b"] and users["a"] != users["c"] and len(users["a"]) == 20
    sequences = games_sequences(mini_raw)
    kept = {}
    for user, item, _ in outputs["a"]:
        kept.setdefault(user, []).append(item)
    assert kept == {user: sequences[user] for user in users["a"]}  # nothing but the sample is filtered
    items = {line.split("\t")[0] for line in data_lines(tmp_path / "a" / "a.item")}
    assert items == {item for _, item, _ in outputs["a"]}


def test_globo_first_clicks_thresholds_and_seconds(tmp_path, mini_raw):
    """Deduplicated at the first click, the iterated thresholds hold and match a k-core of the eligible
    users, timestamps are seconds since the documented origin, rows in click order; RecBole keeps them raw."""
    import pandas as pd

    from dataset_converters._common import kcore_filter
    from dataset_converters.globo import TIME_ORIGIN_MS

    subset = named_datasets.GLOBO_SUBSET
    config = Config("BPR", "globo", config_dict={**FAST, "data_path": str(tmp_path)})
    ds = create_dataset(config)
    rows = [(int(u), int(i), float(t)) for u, i, t in inter_rows(tmp_path / "globo", "globo")]
    raw = pd.read_csv(mini_raw / GLOBO_RAW)
    first = raw.groupby(["user_id", "click_article_id"]).click_timestamp.min()
    assert len(raw) > len(first)  # the fixture repeats pairs
    assert len({(u, i) for u, i, _ in rows}) == len(rows)
    assert all(t == pytest.approx((first[(u, i)] - TIME_ORIGIN_MS) / 1000, abs=1e-6) for u, i, t in rows)
    assert [t for *_, t in rows] == sorted(t for *_, t in rows)
    eligible = [pair for pair, n in first.groupby(level=0).transform("size").items() if n >= subset["min_user_clicks"]]
    core = kcore_filter(eligible, subset["min_user_clicks"], subset["min_article_clicks"])
    assert sorted((u, i) for u, i, _ in rows) == sorted(eligible[k] for k in core)
    assert ds.inter_num == len(rows) > 0
    assert np.asarray(ds.inter_feat[ds.time_field]).max() == pytest.approx(max(t for *_, t in rows), abs=1)


def test_globo_user_sample_is_seeded(tmp_path, mini_raw):
    from dataset_converters.globo import convert_globo

    users = {}
    for label, seed in (("a", 0), ("b", 0), ("c", 1)):
        convert_globo(mini_raw / GLOBO_RAW, tmp_path / label, sample_users_n=50, seed=seed, min_user_clicks=5)
        users[label] = sorted({u for u, _, _ in inter_rows(tmp_path / label, label)})
    assert users["a"] == users["b"] != users["c"] and len(users["a"]) == 50  # every sampled user is eligible


@pytest.mark.parametrize(
    "dataset, users, items, interactions",
    [
        ("amazon-games", 50546, 16859, 440264),
        ("amazon-games-10k", 10000, 14782, 86922),
        ("globo", 18805, 2779, 285645),
    ],
)
def test_games_and_globo_real_counts(dataset, users, items, interactions, tmp_path, shared_datasets):
    """The counts documented in properties/dataset/{amazon-games,amazon-games-10k,globo}.yaml."""
    assert prepare_named_dataset(plain_config(dataset, tmp_path, raw_data_path=str(shared_datasets)))
    counts = json.loads((tmp_path / dataset / "conversion_report.json").read_text())["counts"]
    assert (counts["users"], counts["items"], counts["interactions"]) == (users, items, interactions)
