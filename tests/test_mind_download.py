"""``mind-small``: the official MIND zips downloaded (from a local HTTP server here), checked, extracted
and converted by the converter of ``mind-small-sample``; archives kept so a rerun downloads nothing.

The zips are built at test time from the tiny MIND fixture (``tests/data/news/mind-small-sample``):
the train zip holds its behaviours and news, the dev zip its 2019-11-14 rows, both with MIND's other
members beside them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from dataset_converters.mind import convert_mind_impressions
from recbole_llm.config import Config
from recbole_llm.data import DatasetNotFoundError, create_dataset, named_datasets
from recbole_llm.data.download import (
    ChecksumError,
    DownloadError,
    extract_members,
    fetch_archive,
    recorded_sha256_path,
)
from recbole_llm.data.named_datasets import RawDataNotFoundError, prepare_named_dataset
from recbole_llm.metrics import register_metrics
from recbole_llm.news import news_data_preparation

FIXTURE = Path(__file__).resolve().parent / "data" / "news" / "mind-small-sample"
OTHER_MEMBERS = {"entity_embedding.vec": "Q1\t0.1 0.2\n", "relation_embedding.vec": "P1\t0.3 0.4\n"}


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zipped:
        for name, data in members.items():
            zipped.writestr(name, data)
    return path


def dev_rows() -> bytes:
    lines = (FIXTURE / "behaviors.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(line for line in lines if line.split("\t")[2].startswith("11/14/2019")).encode()


@pytest.fixture
def served(tmp_path):
    """A folder with MINDsmall_{train,dev}.zip, served on localhost; ``requests`` lists the paths asked for."""
    folder = tmp_path / "served"
    folder.mkdir()
    others = {name: text.encode() for name, text in OTHER_MEMBERS.items()}
    news = (FIXTURE / "news.tsv").read_bytes()
    write_zip(
        folder / "MINDsmall_train.zip",
        {"behaviors.tsv": (FIXTURE / "behaviors.tsv").read_bytes(), "news.tsv": news, **others},
    )
    write_zip(folder / "MINDsmall_dev.zip", {"behaviors.tsv": dev_rows(), "news.tsv": news, **others})
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"url": f"http://127.0.0.1:{server.server_address[1]}", "folder": folder, "requests": requests}
    server.shutdown()
    server.server_close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def local_mind_small(monkeypatch, served, pin: dict[str, str] | None = None, primary_missing: bool = False):
    """Point the registered mind-small archives at the local server (sizes of the tiny zips)."""
    spec = named_datasets.NAMED_DATASETS["mind-small"]
    archives = {}
    for raw in spec.raw_files:
        stem = Path(raw.archive.path).stem
        zip_path = served["folder"] / f"{stem}.zip"
        url = f"{served['url']}/{'gone/' if primary_missing else ''}{stem}.zip"
        archives.setdefault(
            raw.archive,
            dataclasses.replace(
                raw.archive,
                url=url,
                mirrors=(f"{served['url']}/{stem}.zip",),
                size=zip_path.stat().st_size,
                sha256=(pin or {}).get(stem),
            ),
        )
    files = tuple(dataclasses.replace(raw, archive=archives[raw.archive]) for raw in spec.raw_files)
    monkeypatch.setitem(named_datasets.NAMED_DATASETS, "mind-small", dataclasses.replace(spec, raw_files=files))


def plain_config(tmp_path: Path, **extra) -> dict:
    return {
        "dataset": "mind-small",
        "data_path": str(tmp_path / "data" / "mind-small"),
        "raw_data_path": str(tmp_path / "raw"),
        "download_raw": True,
        "benchmark_filename": ["train", "valid", "test"],
        **extra,
    }


def test_registry_names_the_official_zips_and_their_published_sizes():
    spec = named_datasets.NAMED_DATASETS["mind-small"]
    archives = {raw.archive.url: raw.archive.size for raw in spec.raw_files}
    base = "https://mind201910small.blob.core.windows.net/release"
    assert archives == {f"{base}/MINDsmall_train.zip": 52_952_752, f"{base}/MINDsmall_dev.zip": 30_945_572}
    assert {raw.role for raw in spec.raw_files} == {"behaviors", "news", "dev_behaviors", "dev_news"}


def test_without_download_raw_the_error_names_the_flag(tmp_path):
    with pytest.raises(RawDataNotFoundError, match="MINDsmall_train/behaviors.tsv.*--download_raw=True"):
        prepare_named_dataset(plain_config(tmp_path, download_raw=False))


def test_download_extract_convert_like_the_sample_and_no_second_download(tmp_path, served, monkeypatch, capsys):
    dev_zip = served["folder"] / "MINDsmall_dev.zip"
    local_mind_small(monkeypatch, served, pin={"MINDsmall_dev": sha256(dev_zip)}, primary_missing=True)
    assert prepare_named_dataset(plain_config(tmp_path))
    raw = tmp_path / "raw" / "mind-small"
    assert (raw / "MINDsmall_train" / "behaviors.tsv").read_bytes() == (FIXTURE / "behaviors.tsv").read_bytes()
    assert (raw / "MINDsmall_dev" / "behaviors.tsv").read_bytes() == dev_rows()
    assert sorted(p.name for p in (raw / "MINDsmall_train").iterdir()) == ["behaviors.tsv", "news.tsv"]
    # the train zip has no published sha256: its digest is recorded and printed with the size
    train_zip = raw / "MINDsmall_train.zip"
    assert recorded_sha256_path(train_zip).read_text().split() == [sha256(train_zip), "MINDsmall_train.zip"]
    assert f"sha256 {sha256(train_zip)}" in capsys.readouterr().err
    assert not recorded_sha256_path(raw / "MINDsmall_dev.zip").exists()  # pinned: nothing to record
    assert sorted(served["requests"]) == sorted(
        ["/gone/MINDsmall_train.zip", "/MINDsmall_train.zip", "/gone/MINDsmall_dev.zip", "/MINDsmall_dev.zip"]
    )

    # the same converter as mind-small-sample, on the extracted files
    expected = tmp_path / "expected"
    convert_mind_impressions(
        raw / "MINDsmall_train" / "behaviors.tsv",
        raw / "MINDsmall_train" / "news.tsv",
        expected,
        dev_behaviors=raw / "MINDsmall_dev" / "behaviors.tsv",
        dev_news=raw / "MINDsmall_dev" / "news.tsv",
        name="mind-small",
        keep_missing_news=True,
        max_history=named_datasets.MIND_SMALL_HISTORY,
    )
    converted = tmp_path / "data" / "mind-small"
    for suffix in ("train.inter", "valid.inter", "test.inter", "imp", "item"):
        assert (converted / f"mind-small.{suffix}").read_bytes() == (expected / f"mind-small.{suffix}").read_bytes()

    # a rerun with the extracted files and the converted folder gone uses the kept zips: no request
    for path in [*converted.iterdir(), *(raw / "MINDsmall_train").iterdir(), *(raw / "MINDsmall_dev").iterdir()]:
        path.unlink()
    served["requests"].clear()
    assert prepare_named_dataset(plain_config(tmp_path))
    assert served["requests"] == []
    assert (converted / "mind-small.test.inter").read_bytes() == (expected / "mind-small.test.inter").read_bytes()


def test_checksum_mismatch_is_one_line_and_leaves_nothing_behind(tmp_path, served, monkeypatch):
    local_mind_small(monkeypatch, served, pin={"MINDsmall_train": "0" * 64, "MINDsmall_dev": "0" * 64})
    with pytest.raises(DatasetNotFoundError, match="mind-small.*sha256 [0-9a-f]{64} does not match") as err:
        prepare_named_dataset(plain_config(tmp_path))
    assert "\n" not in str(err.value)
    leftovers = [p for p in (tmp_path / "raw").rglob("*") if p.is_file()] if (tmp_path / "raw").exists() else []
    assert leftovers == []
    assert not (tmp_path / "data").exists()


def test_recorded_sha256_refuses_a_different_copy_later(tmp_path, served):
    target = tmp_path / "raw" / "MINDsmall_train.zip"
    url = f"{served['url']}/MINDsmall_train.zip"
    fetch_archive(url, target, show_progress=False)
    recorded = recorded_sha256_path(target).read_text()
    target.unlink()
    write_zip(served["folder"] / "MINDsmall_train.zip", {"behaviors.tsv": b"changed\n", "news.tsv": b""})
    with pytest.raises(ChecksumError, match="does not match"):
        fetch_archive(url, target, show_progress=False)
    assert not target.exists() and recorded_sha256_path(target).read_text() == recorded
    write_zip(target, {"behaviors.tsv": b"swapped\n", "news.tsv": b""})  # a copy put there by hand
    with pytest.raises(ChecksumError, match="recorded at its first download"):
        fetch_archive(url, target, show_progress=False)


def test_not_a_zip_is_removed_with_one_line_error(tmp_path, served):
    (served["folder"] / "page.zip").write_text("<html>maintenance</html>")
    target = tmp_path / "raw" / "page.zip"
    with pytest.raises(DownloadError, match="not a zip archive"):
        fetch_archive(f"{served['url']}/page.zip", target, show_progress=False)
    assert list(target.parent.iterdir()) == []


def test_corrupt_or_incomplete_archive_writes_no_destination(tmp_path):
    archive = write_zip(tmp_path / "a.zip", {"behaviors.tsv": b"x" * 4096, "news.tsv": b"y" * 4096})
    data = bytearray(archive.read_bytes())
    data[data.index(b"y" * 64) + 10] ^= 0xFF  # one flipped byte in news.tsv: its CRC no longer matches
    archive.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(DownloadError, match="not a readable zip archive.*CRC"):
        extract_members(archive, {"behaviors.tsv": out / "behaviors.tsv", "news.tsv": out / "news.tsv"})
    assert list(out.iterdir()) == []  # behaviors.tsv was read fine but is not left alone either
    good = write_zip(tmp_path / "b.zip", {"MINDsmall_dev/behaviors.tsv": b"ok\n", "../evil/news.tsv": b"n\n"})
    with pytest.raises(DownloadError, match="one member named abstract.tsv, found 0"):
        extract_members(good, {"abstract.tsv": out / "abstract.tsv"})
    extract_members(good, {"behaviors.tsv": out / "behaviors.tsv", "news.tsv": out / "news.tsv"})
    assert sorted(p.name for p in out.iterdir()) == ["behaviors.tsv", "news.tsv"]  # never ../evil


def test_mind_small_loads_as_news_impressions(tmp_path, served, monkeypatch):
    """--dataset=mind-small reads the benchmark files: train before 11-14, valid = 11-14, test = the dev file."""
    local_mind_small(monkeypatch, served)
    register_metrics()
    config = Config(
        "NRMS",
        "mind-small",
        config_dict={
            "data_path": str(tmp_path / "data"),
            "raw_data_path": str(tmp_path / "raw"),
            "download_raw": True,
            "state": "ERROR",
            "use_gpu": False,
        },
    )
    train, valid, test = news_data_preparation(config, create_dataset(config))
    n_dev = len(dev_rows().splitlines())
    assert (len(train.table), len(valid.table), len(test.table)) == (
        len((FIXTURE / "behaviors.tsv").read_text().splitlines()) - n_dev,
        n_dev,
        n_dev,
    )
    assert int((train.table.history > 0).sum(1).max()) <= named_datasets.MIND_SMALL_HISTORY
