"""A converted named dataset is reused only while its stamp matches the converter and the raw files.

The conversions read ``tests/data/raw`` (copied into ``tmp_path`` where a test touches a raw file). A spy
replaces the converter function inside its ``dataset_converters`` module, which is where the registry's
``convert`` imports it from at call time, so the stamp (which hashes that module's source) is unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path

import pytest

import dataset_converters.globo
import dataset_converters.llmrank
from dataset_converters import ConversionError
from recbole_llm.config import Config
from recbole_llm.data import DatasetNotFoundError, named_datasets
from recbole_llm.data.conversion_stamp import STAMP_FILE, conversion_fingerprint, source_digest
from recbole_llm.data.named_datasets import prepare_named_dataset

from conftest import FAST

GAMES = "amazon-games-10k"
GAMES_RAW = ("amazon-2018-games/Games-6k.test.inter", "amazon-2018-games/Games.item")


def plain_config(dataset: str, data_root: Path, **extra) -> dict:
    """The keys prepare_named_dataset reads, with the defaults RecBole's Config and properties/overall.yaml give."""
    defaults = {"raw_data_path": None, "download_raw": False, "benchmark_filename": None}
    return {**defaults, "dataset": dataset, "data_path": str(data_root / dataset), **extra}


def users(folder: Path, dataset: str) -> set[str]:
    lines = (folder / f"{dataset}.inter").read_text(encoding="utf-8").splitlines()[1:]
    return {line.split("\t")[0] for line in lines}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def conversions(monkeypatch) -> list[str]:
    """Names of the datasets converted by amazon-games-10k's and globo's converter functions during the test."""
    calls: list[str] = []
    converters = ((dataset_converters.llmrank, "convert_llmrank"), (dataset_converters.globo, "convert_globo"))
    for module, function in converters:
        real = getattr(module, function)

        def spy(*args, _real=real, **kwargs):
            calls.append(kwargs["name"])
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, function, spy)
    return calls


def test_converting_twice_does_not_reconvert(tmp_path, conversions):
    config = plain_config(GAMES, tmp_path)
    assert prepare_named_dataset(config)
    folder = tmp_path / GAMES
    stamp = json.loads((folder / STAMP_FILE).read_text())
    assert stamp["parameters"] == {"options": {"sample_users_n": 10_000, "seed": 0}}
    assert "dataset_converters/llmrank.py" in stamp["sources"] and "dataset_converters/_common.py" in stamp["sources"]
    before = snapshot(folder)
    assert prepare_named_dataset(config) and prepare_named_dataset(config)
    assert conversions == [GAMES] and snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [GAMES]  # no temporary folder left


def test_changed_registry_parameter_reconverts(tmp_path, conversions, monkeypatch, caplog):
    config = plain_config(GAMES, tmp_path)
    assert prepare_named_dataset(config)
    assert len(users(tmp_path / GAMES, GAMES)) == 60  # 10,000 of the fixture's 60 users: all of them
    spec = named_datasets.NAMED_DATASETS[GAMES]
    sampled = dataclasses.replace(spec, convert=named_datasets._convert_llmrank(sample_users_n=7, seed=0))
    monkeypatch.setitem(named_datasets.NAMED_DATASETS, GAMES, sampled)
    with caplog.at_level(logging.WARNING, logger=named_datasets.__name__):
        assert prepare_named_dataset(config)
    assert "parameter options.sample_users_n: 10000 -> 7" in caplog.text
    assert len(users(tmp_path / GAMES, GAMES)) == 7
    assert prepare_named_dataset(config) and conversions == [GAMES, GAMES]


def test_changed_module_constant_reconverts(tmp_path, conversions, monkeypatch, caplog):
    """``globo`` reads its subset parameters from the module constant GLOBO_SUBSET."""
    config = plain_config("globo", tmp_path)
    assert prepare_named_dataset(config)
    monkeypatch.setitem(named_datasets.GLOBO_SUBSET, "min_article_clicks", 2)
    with caplog.at_level(logging.WARNING, logger=named_datasets.__name__):
        assert prepare_named_dataset(config)
    assert "parameter GLOBO_SUBSET.min_article_clicks: 10 -> 2" in caplog.text
    assert conversions == ["globo", "globo"]


def _raw_copy(tmp_path: Path, mini_raw: Path) -> Path:
    raw = tmp_path / "raw"
    for name in GAMES_RAW:
        (raw / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(mini_raw / name, raw / name)
    return raw


def test_edited_raw_file_reconverts(tmp_path, mini_raw, conversions, caplog):
    """Same size and a new time but another content (one byte changed): converted again."""
    raw = _raw_copy(tmp_path, mini_raw)
    config = plain_config(GAMES, tmp_path / "data", raw_data_path=str(raw))
    assert prepare_named_dataset(config)
    item = raw / GAMES_RAW[1]
    text = item.read_bytes()
    item.write_bytes(text[:-2] + (b"X" if text[-2:-1] != b"X" else b"Y") + text[-1:])
    with caplog.at_level(logging.WARNING, logger=named_datasets.__name__):
        assert prepare_named_dataset(config)
    assert "raw file 'item'" in caplog.text and "content" in caplog.text
    assert prepare_named_dataset(config) and conversions == [GAMES, GAMES]


def test_raw_file_with_a_new_time_only_is_not_reconverted(tmp_path, mini_raw, conversions):
    """A re-synced or copied raw file (new time, same bytes) keeps the conversion and what was derived from it
    (profiles); the stamp takes the new time, so the file is hashed once, not on every run."""
    raw = _raw_copy(tmp_path, mini_raw)
    config = plain_config(GAMES, tmp_path / "data", raw_data_path=str(raw))
    assert prepare_named_dataset(config)
    folder = tmp_path / "data" / GAMES
    profiles = folder / f"{GAMES}.p4r-profiles.transformers-x.jsonl"
    profiles.write_text("{}\n")
    item = raw / GAMES_RAW[1]
    os.utime(item, ns=(item.stat().st_atime_ns, item.stat().st_mtime_ns + 10**9))
    assert prepare_named_dataset(config) and conversions == [GAMES] and profiles.read_text() == "{}\n"
    stamp = json.loads((folder / STAMP_FILE).read_text())["raw_files"]["item"]
    assert stamp["mtime_ns"] == item.stat().st_mtime_ns and len(stamp["sha256"]) == 64


def test_changed_converter_source_reconverts(tmp_path, conversions, caplog):
    """A stamp recorded with other converter code (here: edited in the stamp) is stale."""
    config = plain_config(GAMES, tmp_path)
    assert prepare_named_dataset(config)
    stamp_file = tmp_path / GAMES / STAMP_FILE
    stamp = json.loads(stamp_file.read_text())
    stamp["sources"]["dataset_converters/llmrank.py"] = "0" * 64
    stamp_file.write_text(json.dumps(stamp))
    with caplog.at_level(logging.WARNING, logger=named_datasets.__name__):
        assert prepare_named_dataset(config)
    assert "source of dataset_converters/llmrank.py changed" in caplog.text
    assert conversions == [GAMES, GAMES]


def test_docstrings_comments_and_layout_do_not_count_as_code():
    code = "def f(x):\n    return x + 1\n"
    edited = '"""Module."""\n\n\ndef f(x):  # why\n    """Adds one."""\n    return (x +\n            1)\n'
    assert source_digest(code) == source_digest(edited)
    assert source_digest(code) != source_digest(code.replace("+ 1", "+ 2"))


def test_folder_without_stamp_is_reconverted_once_and_text_cache_kept(tmp_path, conversions, caplog):
    config = plain_config(GAMES, tmp_path)
    assert prepare_named_dataset(config)
    folder = tmp_path / GAMES
    (folder / STAMP_FILE).unlink()  # as converted before conversions were stamped
    (folder / "text_cache" / "encoder").mkdir(parents=True)
    (folder / "text_cache" / "encoder" / "shard-0.npz").write_bytes(b"cached vectors")
    (folder / f"{GAMES}.p4r-profiles.template.x.jsonl").write_text("{}\n")  # derived from the old data
    with caplog.at_level(logging.WARNING, logger=named_datasets.__name__):
        assert prepare_named_dataset(config)
    assert f"no {STAMP_FILE}" in caplog.text
    assert (folder / STAMP_FILE).is_file() and conversions == [GAMES, GAMES]
    assert (folder / "text_cache" / "encoder" / "shard-0.npz").read_bytes() == b"cached vectors"
    assert not (folder / f"{GAMES}.p4r-profiles.template.x.jsonl").exists()
    assert prepare_named_dataset(config) and conversions == [GAMES, GAMES]


@pytest.mark.parametrize("error", [ConversionError("bad row"), RuntimeError("killed half-way")])
def test_failing_reconversion_leaves_the_previous_folder(tmp_path, monkeypatch, error):
    config = plain_config(GAMES, tmp_path)
    assert prepare_named_dataset(config)
    before = snapshot(tmp_path / GAMES)

    def fail_half_way(input_path, item_path, output_dir, **kwargs):
        output_dir.mkdir()
        (output_dir / f"{GAMES}.inter").write_text("user_id:token\titem_id:token\n")  # half written
        raise error

    monkeypatch.setattr(dataset_converters.llmrank, "convert_llmrank", fail_half_way)
    spec = named_datasets.NAMED_DATASETS[GAMES]
    sampled = dataclasses.replace(spec, convert=named_datasets._convert_llmrank(sample_users_n=7, seed=0))
    monkeypatch.setitem(named_datasets.NAMED_DATASETS, GAMES, sampled)
    with pytest.raises(DatasetNotFoundError if isinstance(error, ConversionError) else RuntimeError, match=str(error)):
        prepare_named_dataset(config)
    assert snapshot(tmp_path / GAMES) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [GAMES]  # the temporary folder is gone


def test_user_atomic_files_are_left_alone(tmp_path, conversions):
    """A folder no converter wrote (no conversion_report.json, no stamp) is the user's: never replaced."""
    folder = tmp_path / GAMES
    folder.mkdir()
    (folder / f"{GAMES}.inter").write_text("user_id:token\titem_id:token\nu1\ti1\n")
    before = snapshot(folder)
    assert prepare_named_dataset(plain_config(GAMES, tmp_path))
    assert snapshot(folder) == before and conversions == []


def test_converted_folder_without_its_raw_files_is_used_with_a_warning(tmp_path, conversions, caplog):
    assert prepare_named_dataset(plain_config(GAMES, tmp_path))
    before = snapshot(tmp_path / GAMES)
    elsewhere = plain_config(GAMES, tmp_path, raw_data_path=str(tmp_path / "no-raw-here"))
    with caplog.at_level(logging.WARNING, logger=named_datasets.__name__):
        assert prepare_named_dataset(elsewhere)
    assert "cannot be checked" in caplog.text
    assert snapshot(tmp_path / GAMES) == before and conversions == [GAMES]


def test_recbole_bundled_ml_100k_is_not_stamped(tmp_path):
    config = Config("BPR", "ml-100k", config_dict=dict(FAST))
    assert prepare_named_dataset(config)
    assert not (Path(config["data_path"]) / STAMP_FILE).exists()


def test_fingerprint_is_stable_and_names_the_converter(mini_raw):
    spec = named_datasets.NAMED_DATASETS["dkn-bing-news"]
    found, _ = named_datasets.locate_raw_files(spec, mini_raw)
    first = conversion_fingerprint("dkn-bing-news", spec.convert, found)
    assert first == conversion_fingerprint("dkn-bing-news", spec.convert, found)
    assert first["converter"] == "recbole_llm.data.named_datasets._convert_dkn_bing"
    assert first["parameters"] == {"DKN_VALIDATION": named_datasets.DKN_VALIDATION}
    assert {"dataset_converters/mind.py", "dataset_converters/_common.py"} <= set(first["sources"])
