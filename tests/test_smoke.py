"""Smoke test: every model of the package, and RecBole's BPR, LightGCN and SASRec, trains one epoch on the
committed mini data (``tests/data/raw``) through the public entry point ``run_recbole_llm``.

Adding a model adds one line to :data:`CASES`; :func:`test_every_package_model_has_a_smoke_case` fails
until it is there. Text models use a tiny randomly initialised sentence encoder (what is checked here
does not depend on the quality of the text embeddings).
"""

from __future__ import annotations

import importlib
import inspect
import math
import pkgutil

import pytest
import torch
from recbole.model.abstract_recommender import AbstractRecommender
from recbole.utils import init_seed

import recbole_llm.model
from recbole_llm.quick_start import load_data_and_model, run_recbole_llm
from recbole_llm.utils import get_model

from conftest import FAST, save_tiny_encoder

GRAPH_DATA = "amazon-gift-cards"  # mini: 201 users, 143 items, reviews and item metadata
SEQUENCE_DATA = "lastfm-seq"  # mini: the first 120 users of seqrec/LastFM.txt
SEQUENCE = {
    "MAX_ITEM_LIST_LENGTH": 20,
    "hidden_size": 16,
    "inner_size": 32,
    "train_neg_sample_args": None,
    "oie_metrics": False,
}

# News models evaluate whole impressions with the per-impression metrics.
NEWS_DATA = "mind-small-sample"
NEWS = {"metrics": ["ImpAUC", "ImpMRR", "ImpNDCG"], "topk": [5, 10], "valid_metric": "ImpAUC"}

# (model, dataset, settings of its own): one line per model.
CASES = [
    ("BPR", GRAPH_DATA, {}),
    ("LightGCN", GRAPH_DATA, {}),
    ("P4R", GRAPH_DATA, {"embedding_size": 16, "n_layers": 1}),
    ("ReviewGNN", GRAPH_DATA, {}),
    ("ReviewGCN", GRAPH_DATA, {}),
    ("SASRec", SEQUENCE_DATA, SEQUENCE),
    ("BSARec", SEQUENCE_DATA, SEQUENCE),
    (
        "P5Edit",
        SEQUENCE_DATA,
        {
            "backbone": "random-t5",
            "random_backbone": {"d_model": 32, "d_ff": 64, "d_kv": 16, "num_heads": 2, "num_layers": 1},
            "MAX_ITEM_LIST_LENGTH": 5,
            "train_prefixes_per_user": 1,  # one prompt per user and epoch
            "beam_size": 10,
            "beam_batch_size": 128,  # every user's beam search in one call (the search's steps dominate)
            "train_batch_size": 64,
            "oie_metrics": False,
        },
    ),
    ("NRMS", NEWS_DATA, NEWS),
    ("NAML", NEWS_DATA, NEWS),
    ("LSTUR", NEWS_DATA, NEWS),
    ("AWRS", NEWS_DATA, NEWS),
]

COMMON = {
    **FAST,
    "seed": 2020,
    "reproducibility": True,
    "train_batch_size": 256,
    "eval_batch_size": 100_000,
    "learning_rate": 0.01,
    "metrics": ["Recall", "NDCG", "Hit"],
    "topk": [10],
    "valid_metric": "NDCG@10",
    "text_batch_size": 256,
}


def package_models() -> set[str]:
    """Names of the recommender classes in the model-type packages (``recbole_llm/model/<type>/``).

    Shared base classes elsewhere under ``recbole_llm/model/`` (e.g. an abstract_recommender module) are
    not models of their own.
    """
    names = set()
    for package in pkgutil.iter_modules(recbole_llm.model.__path__, "recbole_llm.model."):
        if not package.ispkg:
            continue
        path = importlib.import_module(package.name).__path__
        for module_info in pkgutil.walk_packages(path, package.name + "."):
            module = importlib.import_module(module_info.name)
            for name, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, AbstractRecommender) and cls.__module__.startswith(package.name + "."):
                    names.add(name)
    return names


def test_every_package_model_has_a_smoke_case():
    missing = package_models() - {model for model, _, _ in CASES}
    assert not missing, f"add a line to CASES in tests/test_smoke.py for {sorted(missing)}"


@pytest.fixture(scope="session")
def smoke_dirs(tmp_path_factory) -> dict[str, str]:
    """Shared across cases: converted datasets, text cache, P4R profiles and a tiny sentence encoder."""
    root = tmp_path_factory.mktemp("smoke")
    encoder = root / "tiny_encoder"
    save_tiny_encoder(encoder)
    return {
        "data_path": str(root / "data"),
        "text_cache_dir": str(root / "text_cache"),
        "profile_dir": str(root / "profiles"),
        "text_encoder": str(encoder),
    }


def _initial_and_trained(model_file: str) -> tuple[dict, dict]:
    """Parameters of the model as the run built it (same seed, same data) and as it was saved.

    Parameters only: buffers may change without training (ReviewGNN's adaptive alpha follows validation).
    """
    config, trained, _, train_data, _, _ = load_data_and_model(model_file)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    initial = get_model(config["model"])(config, train_data._dataset)
    return (
        {name: p.detach() for name, p in initial.named_parameters()},
        {name: p.detach() for name, p in trained.named_parameters()},
    )


@pytest.mark.parametrize("model, dataset, settings", CASES, ids=[case[0] for case in CASES])
def test_trains_one_epoch_on_mini_data(model, dataset, settings, smoke_dirs):
    result = run_recbole_llm(model, dataset, config_dict={**COMMON, **smoke_dirs, **settings})

    test = result["test_result"]
    expected = {"impauc", "impmrr", "impndcg@10"} if dataset == NEWS_DATA else {"recall@10", "ndcg@10", "hit@10"}
    assert set(test) >= expected, test
    assert all(math.isfinite(value) and 0.0 <= value <= 1.0 for value in test.values()), test
    assert len(result["epoch_times"]) == 1

    initial, trained = _initial_and_trained(result["saved_model_file"])
    assert initial.keys() == trained.keys()
    assert all(torch.isfinite(value).all() for value in trained.values())
    changed = [name for name, value in trained.items() if not torch.equal(value.cpu(), initial[name].cpu())]
    assert changed, "no parameter changed after one epoch"
