"""OIE-inducing training: synthetic dataset, front negatives, cache, transfer modes, mapping checks."""

from __future__ import annotations

import json
from contextlib import chdir
from pathlib import Path

import numpy as np
import pytest
import torch

from recbole_llm.compat import load_recbole_checkpoint
from recbole_llm.oie.pretrain import FrontNegativeSampler, apply_oie_init, item_permutation, permute_item_rows
from recbole_llm.oie.synthetic import OIEMappingError, check_same_mapping, synthetic_sequences, write_atomic
from recbole_llm.oie.trainer import history_path
from recbole_llm.quick_start import run_recbole_llm

from oie_helpers import TINY, single_thread, tiny_config, write_lastfm_slice

PRETRAIN = {"oie_num_sequences": 1000, "oie_pretrain_epochs": 2}


def test_synthetic_sequences_are_ordered_runs_and_subruns():
    sequences = synthetic_sequences(n_items=205, num_sequences=400, seed=3)
    assert len(sequences) == 400
    runs = sequences[:11]
    assert np.array_equal(np.concatenate(runs), np.arange(1, 206))  # runs of 20 cover 1..N in order
    assert all(len(run) == 20 for run in runs[:-1]) and len(runs[-1]) == 5
    for sequence in sequences[11:]:
        assert 3 <= len(sequence) <= 18
        assert np.all(np.diff(sequence) == 1)  # contiguous increasing sub-run
        assert (sequence[0] - 1) // 20 == (sequence[-1] - 1) // 20  # inside one run
    again = synthetic_sequences(n_items=205, num_sequences=400, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(sequences, again))
    assert not all(np.array_equal(a, b) for a, b in zip(sequences, synthetic_sequences(205, 400, seed=4)))


def test_written_synthetic_file_loads_with_literal_ids(tmp_path):
    from recbole.data import create_dataset

    from recbole_llm.config import Config

    write_atomic(synthetic_sequences(n_items=57, num_sequences=60, seed=0), tmp_path, "synthetic")
    config = Config("SASRec", "synthetic", config_dict=tiny_config(tmp_path))
    dataset = create_dataset(config)
    tokens = list(dataset.field2id_token["item_id"])
    assert tokens[1:] == [str(k) for k in range(1, 58)]


def test_front_negatives_are_larger_than_the_target():
    sampler = FrontNegativeSampler(n_items=101)  # ids 1..100
    positives = np.array([1, 50, 99, 100, 7])
    negatives = sampler.sample_by_user_ids(np.zeros(5), positives, 200).view(200, 5)
    assert bool((negatives[:, : 4 - 1] > torch.as_tensor(positives[:3])).all())
    assert bool((negatives[:, 4] > 7).all()) and bool((negatives <= 100).all())
    assert bool((negatives[:, 3] < 100).all()) and bool((negatives[:, 3] >= 1).all())  # nothing above N


def test_mapping_checks_fail_loudly():
    literal = ["[PAD]"] + [str(k) for k in range(1, 11)]
    check_same_mapping(literal, list(literal))
    with pytest.raises(OIEMappingError, match="differ"):
        check_same_mapping(literal, literal + ["11"])
    with pytest.raises(OIEMappingError, match="not literal"):
        check_same_mapping(["[PAD]", "2", "1"] + literal[3:], literal)


@pytest.fixture(scope="module")
def tiny_folder(mini_raw, tmp_path_factory) -> Path:
    return write_lastfm_slice(mini_raw, tmp_path_factory.mktemp("oie"), n_users=100)


def _run(folder: Path, model: str, **overrides) -> dict:
    with chdir(folder), single_thread():
        return run_recbole_llm(model, TINY, config_dict=tiny_config(folder, **{**PRETRAIN, **overrides}))


def _history(result: dict, folder: Path) -> list[dict]:
    return json.loads((folder / history_path(result["saved_model_file"])).read_text())["history"]


def _cached_models(folder: Path, model: str) -> list[Path]:
    return sorted((folder / "saved" / "oie" / TINY).glob(f"{model}-*.pth"))


@pytest.fixture(scope="module")
def sasrec_item_emb(tiny_folder):
    return _run(tiny_folder, "SASRec", oie_init="item_emb")


def test_item_emb_transfer_starts_from_the_pretrained_ordered_table(sasrec_item_emb, tiny_folder):
    [cache] = _cached_models(tiny_folder, "SASRec")
    payload = torch.load(cache, weights_only=True)
    pretrained = payload["oie_metrics"]
    assert pretrained["sa"] > 0.5 and pretrained["aae_rel_change"] < -10  # front-negative BCE induced order
    history = _history(sasrec_item_emb, tiny_folder)
    assert [h["stage"] for h in history] == ["init", "valid", "best"]
    assert history[0]["sa"] == pytest.approx(pretrained["sa"])
    assert history[0]["aae"] == pytest.approx(pretrained["aae"])


def test_whole_transfer_reuses_the_cache_and_copies_every_weight(sasrec_item_emb, tiny_folder):
    [cache] = _cached_models(tiny_folder, "SASRec")
    stamp = cache.stat().st_mtime_ns
    result = _run(tiny_folder, "SASRec", oie_init="whole", epochs=0)
    assert _cached_models(tiny_folder, "SASRec") == [cache] and cache.stat().st_mtime_ns == stamp
    # epochs=0: the evaluated model is exactly the pre-trained one
    pretrained = torch.load(cache, weights_only=True)["state_dict"]
    history = _history(result, tiny_folder)
    assert history[0]["stage"] == "init"
    from recbole_llm.config import Config
    from recbole_llm.quick_start import build

    with chdir(tiny_folder), single_thread():
        config = Config("SASRec", TINY, config_dict=tiny_config(tiny_folder, **PRETRAIN, oie_init="whole"))
        model = build(config)[4]
    for name, value in model.state_dict().items():
        assert torch.equal(value.cpu(), pretrained[name]), name


def test_frozen_item_table_stays_pretrained(sasrec_item_emb, tiny_folder):
    result = _run(tiny_folder, "SASRec", oie_init="item_emb", freeze_item_emb=True)
    [cache] = _cached_models(tiny_folder, "SASRec")
    pretrained = torch.load(cache, weights_only=True)["state_dict"]["item_embedding.weight"]
    trained = load_recbole_checkpoint(str(tiny_folder / result["saved_model_file"]))["state_dict"]
    assert torch.equal(trained["item_embedding.weight"], pretrained)
    layer = "trm_encoder.layer.0.feed_forward.dense_1.weight"
    assert not torch.equal(trained[layer], torch.load(cache, weights_only=True)["state_dict"][layer])


def test_bert4rec_pretrains_with_its_own_loss_and_keeps_the_mask_row_out(tiny_folder):
    result = _run(tiny_folder, "BERT4Rec", oie_init="whole", oie_pretrain_epochs=1)
    [cache] = _cached_models(tiny_folder, "BERT4Rec")
    payload = torch.load(cache, weights_only=True)
    n_items = len(payload["item_tokens"])
    assert payload["state_dict"]["item_embedding.weight"].shape[0] == n_items + 1  # + mask row
    assert _history(result, tiny_folder)[0]["sa"] == pytest.approx(payload["oie_metrics"]["sa"])
    assert np.isfinite(result["test_result"]["ndcg@10"])


def test_non_literal_ids_fail_before_pretraining(tmp_path, mini_raw):
    write_lastfm_slice(mini_raw, tmp_path, n_users=20)
    inter = tmp_path / TINY / f"{TINY}.inter"
    header, *rows = inter.read_text().splitlines()
    inter.write_text("\n".join([header] + [r.replace("\t", "\tx", 1) for r in rows]) + "\n")  # tokens 'x1', ...
    with pytest.raises(OIEMappingError, match="not literal"):
        _run(tmp_path, "SASRec", oie_init="item_emb")
    assert not (tmp_path / "saved" / "oie").exists()


def test_freeze_without_oie_init_is_an_error(tmp_path, mini_raw):
    write_lastfm_slice(mini_raw, tmp_path, n_users=20)
    with pytest.raises(ValueError, match="freeze_item_emb needs oie_init"):
        _run(tmp_path, "SASRec", freeze_item_emb=True)
    with pytest.raises(ValueError, match="oie_init must be one of"):
        _run(tmp_path, "SASRec", oie_init="everything")


def test_item_permutation_is_a_seeded_bijection_that_keeps_padding():
    perm = item_permutation(101, seed=7)  # RecBole's n_items: padding 0 + items 1..100
    assert perm[0] == 0 and sorted(perm.tolist()) == list(range(101))
    assert torch.equal(perm, item_permutation(101, seed=7))
    assert not torch.equal(perm, item_permutation(101, seed=8))
    assert (perm[1:] == torch.arange(1, 101)).float().mean() < 0.1  # hardly any item keeps its own row
    with pytest.raises(ValueError, match="at least one item"):
        item_permutation(1, seed=0)


def test_permuted_state_moves_every_item_row_and_leaves_the_rest():
    table = torch.arange(14, dtype=torch.float).view(7, 2)  # BERT4Rec-like: ids 0..5, mask row 6
    bias, other = torch.arange(6, dtype=torch.float), torch.ones(6, 2)
    perm = item_permutation(6, seed=1)
    moved = permute_item_rows({"item_embedding.weight": table, "output_bias": bias, "position": other}, perm)
    assert torch.equal(moved["item_embedding.weight"][:6], table[perm])
    assert torch.equal(moved["item_embedding.weight"][6], table[6])  # the mask row is no item
    assert torch.equal(moved["output_bias"], bias[perm])  # the per-item bias follows its item
    assert moved["position"] is other
    with pytest.raises(RuntimeError, match="fewer than the 6 item ids"):
        permute_item_rows({"output_bias": bias[:3]}, perm)


def test_permute_ids_without_oie_init_is_an_error():
    settings = {"oie_init": None, "freeze_item_emb": False, "oie_permute_ids": True}
    with pytest.raises(ValueError, match="oie_permute_ids needs oie_init"):
        apply_oie_init(settings, model=None, dataset=None)


def test_permuted_transfer_is_a_row_permutation_of_the_unpermuted_one(sasrec_item_emb, tiny_folder):
    from recbole_llm.config import Config
    from recbole_llm.oie import oie_metrics
    from recbole_llm.quick_start import build

    [cache] = _cached_models(tiny_folder, "SASRec")

    def transferred(**extra) -> torch.Tensor:
        with chdir(tiny_folder), single_thread():
            config = Config("SASRec", TINY, config_dict=tiny_config(tiny_folder, **PRETRAIN, **extra))
            return build(config)[4].item_embedding.weight.detach().cpu()

    plain = transferred(oie_init="item_emb")
    permuted = transferred(oie_init="item_emb", oie_permute_ids=True, oie_permute_seed=3)
    assert torch.equal(plain, torch.load(cache, weights_only=True)["state_dict"]["item_embedding.weight"])
    assert torch.equal(permuted, plain[item_permutation(plain.shape[0], seed=3)])
    run_seed = transferred(oie_init="item_emb", oie_permute_ids=True)  # no oie_permute_seed: the run's seed
    assert torch.equal(run_seed, plain[item_permutation(plain.shape[0], seed=2020)])
    assert _cached_models(tiny_folder, "SASRec") == [cache]  # one pre-trained model serves both arms
    # the imprinted order no longer lines up with the ids: sequential alignment falls to about chance (1/3)
    assert oie_metrics(permuted[1:])["sa"] < 0.45 < oie_metrics(plain[1:])["sa"]
