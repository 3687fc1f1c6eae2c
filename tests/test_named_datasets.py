"""Named datasets: atomic files if present, else converted from the raw folder (or downloaded)."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from recbole_llm.config import Config
from recbole_llm.data import DatasetNotFoundError, create_dataset
from recbole_llm.data import named_datasets
from recbole_llm.data.download import DownloadError, download_file
from recbole_llm.data.named_datasets import RawDataNotFoundError, prepare_named_dataset
from recbole_llm.quick_start import run_recbole_llm
from recbole_llm.text import item_texts

FAST = {"epochs": 1, "show_progress": False, "state": "ERROR", "use_gpu": False, "train_batch_size": 4096}
BEAUTY_RAW = "amazon-2018-5core/All_Beauty_5.json.gz"


def plain_config(dataset: str, data_root: Path, **extra) -> dict:
    """The keys prepare_named_dataset reads, as RecBole's Config would hold them."""
    return {"dataset": dataset, "data_path": str(data_root / dataset), **extra}


def test_lightgcn_on_amazon_beauty_from_raw_files(tmp_path):
    """The acceptance run: nothing converted beforehand, raw files from RECBOLE_LLM_RAW_DATA."""
    result = run_recbole_llm("LightGCN", "amazon-beauty", config_dict={**FAST, "data_path": str(tmp_path)},
                             saved=False)
    assert (tmp_path / "amazon-beauty" / "amazon-beauty.inter").is_file()
    assert 0 < result["test_result"]["recall@10"] <= 1


def test_present_atomic_files_are_used_without_converting(tmp_path, monkeypatch):
    config = plain_config("amazon-beauty", tmp_path)
    assert prepare_named_dataset(config)
    inter = tmp_path / "amazon-beauty" / "amazon-beauty.inter"
    stamp = inter.stat().st_mtime_ns

    def must_not_convert(*_):
        raise AssertionError("converted although the atomic files were present")

    spec = named_datasets.NAMED_DATASETS["amazon-beauty"]
    monkeypatch.setitem(named_datasets.NAMED_DATASETS, "amazon-beauty",
                        dataclasses.replace(spec, convert=must_not_convert))
    assert prepare_named_dataset(config) and inter.stat().st_mtime_ns == stamp


def test_raw_data_path_key_and_flat_layout(tmp_path, shared_datasets, monkeypatch):
    flat = tmp_path / "raw"
    flat.mkdir()
    (flat / "All_Beauty_5.json.gz").symlink_to(shared_datasets / BEAUTY_RAW)
    monkeypatch.setenv("RECBOLE_LLM_RAW_DATA", str(tmp_path / "nowhere"))  # the config key wins
    assert prepare_named_dataset(plain_config("amazon-beauty", tmp_path, raw_data_path=str(flat)))
    lines = (tmp_path / "amazon-beauty" / "amazon-beauty.inter").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + 4092


def test_missing_raw_files_say_where_they_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("RECBOLE_LLM_RAW_DATA", str(tmp_path / "empty"))
    with pytest.raises(RawDataNotFoundError, match="All_Beauty_5.*RECBOLE_LLM_RAW_DATA.*download_raw"):
        prepare_named_dataset(plain_config("amazon-beauty", tmp_path))
    assert not prepare_named_dataset(plain_config("not-a-dataset", tmp_path))
    with pytest.raises(DatasetNotFoundError, match="amazon-beauty"):  # the named ones are listed
        create_dataset(Config("BPR", "not-a-dataset", config_dict={**FAST, "data_path": str(tmp_path)}))


def test_concurrent_preparation_is_safe(tmp_path):
    config = plain_config("amazon-gift-cards", tmp_path)
    outcomes: list = []

    def prepare():
        try:
            outcomes.append(prepare_named_dataset(config))
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            outcomes.append(err)

    threads = [threading.Thread(target=prepare) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == [True, True, True]
    folder = tmp_path / "amazon-gift-cards"
    assert len((folder / "amazon-gift-cards.inter").read_text(encoding="utf-8").splitlines()) == 1 + 2965
    assert len((folder / "amazon-gift-cards.item").read_text(encoding="utf-8").splitlines()) == 1 + 148
    assert [p.name for p in tmp_path.iterdir()] == ["amazon-gift-cards"]  # no temporary folders left


@pytest.fixture
def local_server(shared_datasets):
    """An HTTP server on localhost serving the shared datasets folder."""
    handler = functools.partial(_QuietHandler, directory=str(shared_datasets))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_checks_sha256(local_server, shared_datasets, tmp_path):
    real = shared_datasets / BEAUTY_RAW
    digest = hashlib.sha256(real.read_bytes()).hexdigest()
    spec = named_datasets.NAMED_DATASETS["amazon-beauty"].raw_files[0]
    assert spec.sha256 == digest and spec.size == real.stat().st_size  # registry matches the real file
    target = download_file(f"{local_server}/{BEAUTY_RAW}", tmp_path / "a" / "All_Beauty_5.json.gz",
                           sha256=digest, expected_size=spec.size, show_progress=False)
    assert target.read_bytes() == real.read_bytes()
    with pytest.raises(DownloadError, match="sha256"):
        download_file(f"{local_server}/{BEAUTY_RAW}", tmp_path / "b" / "x.json.gz", sha256="0" * 64,
                      show_progress=False)
    with pytest.raises(DownloadError, match="404"):
        download_file(f"{local_server}/missing.json.gz", tmp_path / "b" / "y.json.gz", show_progress=False)
    assert list((tmp_path / "b").iterdir()) == []  # nothing half-downloaded is left


def test_named_dataset_downloads_missing_raw_file(local_server, tmp_path, monkeypatch):
    spec = named_datasets.NAMED_DATASETS["amazon-beauty"]
    local = dataclasses.replace(spec.raw_files[0], url=f"{local_server}/{BEAUTY_RAW}")
    monkeypatch.setitem(named_datasets.NAMED_DATASETS, "amazon-beauty", dataclasses.replace(spec, raw_files=(local,)))
    raw = tmp_path / "raw"
    config = plain_config("amazon-beauty", tmp_path / "data", raw_data_path=str(raw), download_raw=True)
    assert prepare_named_dataset(config)
    assert (raw / BEAUTY_RAW).is_file()
    assert (tmp_path / "data" / "amazon-beauty" / "amazon-beauty.inter").is_file()


@pytest.mark.parametrize("dataset, n_items", [("lastfm-seq", 3646), ("beauty-seq", 12101)])
def test_sequential_datasets_keep_literal_item_ids(dataset, n_items, tmp_path, shared_datasets):
    config = Config("BPR", dataset, config_dict={**FAST, "data_path": str(tmp_path)})
    ds = create_dataset(config)
    assert ds.item_num == n_items + 1
    field = ds.iid_field
    assert all(ds.token2id(field, str(k)) == k for k in range(1, n_items + 1))
    first_line = (shared_datasets / "seqrec" / ("LastFM.txt" if dataset == "lastfm-seq" else "Beauty.txt")
                  ).read_text().splitlines()[0].split()
    user = ds.token2id(ds.uid_field, first_line[0])
    rows = ds.inter_feat[ds.inter_feat[ds.uid_field] == user]
    order = rows[ds.time_field].argsort()
    assert rows[field][order].tolist() == [int(i) for i in first_line[1:]]  # time order = sequence order
    if dataset == "beauty-seq":
        texts = item_texts(config, ds)
        asin = dict(line.split("\t") for line in
                    (shared_datasets / "amazon-2014-beauty" / "DERIVED_s3rec_item_id2asin.tsv").read_text().splitlines()[1:])
        titles = {}
        for line in (shared_datasets / "amazon-2014-beauty" / "Amazon_Beauty.item").read_text(encoding="utf-8").splitlines()[1:]:
            parts = line.split("\t")
            titles[parts[0]] = parts[1]
        for k in (1, 2, 500, n_items):
            assert texts[k].startswith(" ".join(titles[asin[str(k)]].split()))


def test_lastfm_scientific_and_mind_load_with_text(tmp_path, shared_datasets):
    lastfm = Config("BPR", "lastfm", config_dict={**FAST, "data_path": str(tmp_path)})
    ds = create_dataset(lastfm)
    assert len(ds.inter_feat) == 64286
    assert item_texts(lastfm, ds)[ds.token2id(ds.iid_field, "52")] == "Morcheeba"  # lastfm.item, artist 52
    scientific = Config("SASRec", "scientific", config_dict={**FAST, "data_path": str(tmp_path),
                                                            "train_neg_sample_args": None})
    ds = create_dataset(scientific)
    assert ds.file_size_list == [34101, 8442, 8442]
    assert sum(t is not None for t in item_texts(scientific, ds)) == 4385
    mind = Config("BPR", "mind-small", config_dict={**FAST, "data_path": str(tmp_path)})
    ds = create_dataset(mind)
    assert len(ds.inter_feat) == 7542  # clicks of the 5,000-impression sample
    texts = item_texts(mind, ds)
    assert sum(t is not None for t in texts) == 2000
