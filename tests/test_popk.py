"""POPK negative sampler: brute-force agreement, train-only popularity, modes, errors, training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recbole_llm.config import Config
from recbole_llm.data import create_dataset, data_preparation
from recbole_llm.sampler import PopkConfigError, PopkSampler, PopkTrainDataLoader, PopularityTable

from conftest import FAST

DAY = 86400


def popk_args(**overrides):
    args = {
        "distribution": "popk",
        "sample_num": 1,
        "popk": 2,
        "popk_metric": "count",
        "popk_logic": "acc",
        "popk_mode": "add",
        "popk_bucket": DAY,
        "popk_leak_free": True,
    }
    args.update(overrides)
    return args


def make_config(model="BPR", **neg_args):
    return Config(
        model, "ml-100k", config_dict={**FAST, "normalize_all": False, "train_neg_sample_args": popk_args(**neg_args)}
    )


@pytest.fixture(scope="module")
def prepared():
    """ml-100k split once; the POPK loaders of the tests reuse its train split."""
    config = make_config()
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    return config, dataset, train_data, valid_data, test_data


def train_frame(train_dataset) -> pd.DataFrame:
    inter = train_dataset.inter_feat
    return pd.DataFrame(
        {
            "user": inter["user_id"].numpy(),
            "item": inter["item_id"].numpy(),
            "time": inter["timestamp"].numpy().astype(np.float64),
        }
    )


def brute_force_popular(
    train: pd.DataFrame, user: int, positive: int, time: float, popk: int, metric: str, logic: str, window: int = 24
) -> list[int]:
    """P(t, popk) from the definition, one row at a time (pandas, no shared code with the sampler)."""
    train = train.assign(bucket=np.floor(train["time"] / DAY).astype(np.int64))
    before = train[train["bucket"] < np.floor(time / DAY)]  # leak-free: completed buckets only
    if before.empty:
        return []
    buckets = np.sort(before["bucket"].unique())
    if logic == "ptb":
        kept = buckets[-(window if metric == "variance" else 1) :]
        before = before[before["bucket"].isin(kept)]
        buckets = kept
    per_bucket = before.groupby(["bucket", "item"]).size().unstack(fill_value=0).reindex(buckets, fill_value=0)
    if metric == "count":
        score = per_bucket.sum(axis=0)
    elif metric == "ratio":
        score = per_bucket.div(per_bucket.sum(axis=1), axis=0).sum(axis=0)
    else:
        score = per_bucket.var(axis=0, ddof=0)
    seen = set(train.loc[train["user"] == user, "item"]) | {positive}
    score = score.round(9)  # equal scores summed in another order stay ties (broken by item id)
    ranked = sorted(((-s, item) for item, s in score.items() if s > 0 and item not in seen))
    return [item for _, item in ranked[:popk]]


@pytest.mark.parametrize(
    "metric,logic", [("count", "acc"), ("count", "ptb"), ("variance", "acc"), ("variance", "ptb"), ("ratio", "acc")]
)
def test_popular_negatives_equal_brute_force(prepared, metric, logic):
    _, _, train_data, _, _ = prepared
    train_dataset = train_data._dataset
    sampler = PopkSampler(
        train_dataset, popk_args(popk=3, popk_metric=metric, popk_logic=logic, popk_window=5), "timestamp"
    )
    train = train_frame(train_dataset)
    rows = train.sample(40, random_state=0)
    got = sampler.popular_negatives(rows["user"].to_numpy(), rows["item"].to_numpy(), rows["time"].to_numpy())
    for (user, item, time), popular in zip(rows[["user", "item", "time"]].itertuples(index=False), got):
        expected = brute_force_popular(train, user, item, time, 3, metric, logic, window=5)
        assert [i for i in popular if i > 0] == expected, (metric, logic, user, item, time)


def test_loader_injects_popular_rows_and_excludes_training_items(prepared):
    config, _, train_data, _, _ = prepared
    assert isinstance(train_data, PopkTrainDataLoader)
    assert train_data.times == 1 + 2  # pairwise, add: k uniform + popk popular rows per positive
    batch = next(iter(train_data))
    n = len(batch) // train_data.times
    users, items = batch["user_id"][:n].numpy(), batch["item_id"][:n].numpy()
    negatives = batch["neg_item_id"].numpy().reshape(train_data.times, n)
    # every block repeats the same positives, RecBole's pairwise layout
    assert (batch["user_id"].numpy().reshape(train_data.times, n) == users).all()
    popular = train_data._sampler.popular_negatives(users, items, batch["timestamp"][:n].numpy()).T
    filled = popular > 0
    assert filled.mean() > 0.9
    assert (negatives[1:][filled] == popular[filled]).all()
    sampler = train_data._sampler
    assert (negatives > 0).all()  # empty popular slots (early buckets) got uniform negatives, not padding
    assert (~filled).any()  # ... and there were such slots in this batch
    assert not sampler.is_used(np.broadcast_to(users, negatives.shape), negatives).any()
    assert (negatives != items).all()


def test_precomputed_rows_equal_lookup_and_wrong_rows_fall_back(prepared):
    _, _, train_data, _, _ = prepared
    sampler = train_data._sampler
    inter = train_data._dataset.inter_feat
    users, items = inter["user_id"].numpy(), inter["item_id"].numpy()
    times = inter["timestamp"].numpy()
    rows = np.random.default_rng(0).permutation(len(users))[:500]
    looked_up = sampler.popular_negatives(users[rows], items[rows], times[rows])
    assert np.array_equal(sampler._row_popular[:, rows].T, looked_up)
    # with row indices the popular blocks come from the precomputed table ...
    negatives = sampler.sample_with_popk(users[rows], items[rows], times[rows], 3, rows=rows).numpy().reshape(3, -1)
    filled = looked_up.T > 0
    assert (negatives[1:][filled] == looked_up.T[filled]).all()
    # ... and indices that do not match the rows (another split, a reordered dataset) are not trusted
    shifted = (rows + 1) % len(users)
    negatives = sampler.sample_with_popk(users[rows], items[rows], times[rows], 3, rows=shifted).numpy().reshape(3, -1)
    assert (negatives[1:][filled] == looked_up.T[filled]).all()


def test_popularity_comes_from_training_rows_only(prepared):
    _, dataset, train_data, valid_data, test_data = prepared
    sampler = train_data._sampler
    train = train_frame(train_data._dataset)
    assert np.array_equal(sampler.table.bucket_ids, np.unique(np.floor(train["time"] / DAY).astype(np.int64)))
    # the newest state of an acc/count table ranks the training counts ...
    last = sampler.table.ranked[-1].numpy()
    counts = train["item"].value_counts()
    expected = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
    assert list(last[:50]) == [item for item, _ in expected[:50]]
    # ... and differs from the ranking with validation and test rows included (the check can fail)
    everything = pd.concat(
        [
            train["item"],
            pd.Series(valid_data._dataset.inter_feat["item_id"].numpy()),
            pd.Series(test_data._dataset.inter_feat["item_id"].numpy()),
        ]
    )
    all_ranked = [item for item, _ in sorted(everything.value_counts().items(), key=lambda p: (-p[1], p[0]))]
    assert list(last[:50]) != all_ranked[:50]


def test_leak_free_never_reads_the_current_bucket():
    items = np.array([5, 5, 7, 7, 7])
    times = np.array([0.0, 10.0, DAY + 1, DAY + 2, DAY + 3])
    leak_free = PopularityTable(items, times, 10, bucket=DAY, leak_free=True, depth=3)
    leaky = PopularityTable(items, times, 10, bucket=DAY, leak_free=False, depth=3)
    query = np.array([DAY + 5.0])
    assert leak_free.top_items(query)[0].tolist() == [5, 0, 0]  # only day 0 is complete
    assert leaky.top_items(query)[0].tolist() == [7, 5, 0]
    assert leak_free.top_items(np.array([1.0]))[0].tolist() == [0, 0, 0]  # nothing before the first bucket


def test_replace_keeps_the_candidate_count(prepared):
    _, _, train_data, _, _ = prepared
    config = make_config(popk_mode="replace", sample_num=3, popk=2)
    loader = PopkTrainDataLoader(
        config, train_data._dataset, PopkSampler(train_data._dataset, config["train_neg_sample_args"], "timestamp")
    )
    assert loader.times == 3
    batch = next(iter(loader))
    n = len(batch) // 3
    negatives = batch["neg_item_id"].numpy().reshape(3, n)
    popular = loader._sampler.popular_negatives(
        batch["user_id"][:n].numpy(), batch["item_id"][:n].numpy(), batch["timestamp"][:n].numpy()
    ).T
    filled = popular > 0
    assert (negatives[1:][filled] == popular[filled]).all()  # the last popk of the 3 negatives


@pytest.mark.parametrize(
    "neg_args,needles",
    [
        ({"popk_metrc": "count"}, ["popk_metrc", "popk_metric"]),
        ({"popk_logic": "hourly"}, ["popk_logic", "acc, ptb"]),
        ({"popk_metric": "clicks"}, ["popk_metric", "count, ratio, variance"]),
        ({"popk_mode": "replace", "sample_num": 1, "popk": 2}, ["replace", "popk (2) must be <= sample_num (1)"]),
        ({"popk": 0}, ["popk", ">= 1"]),
    ],
)
def test_bad_popk_settings_raise_clear_errors(neg_args, needles):
    with pytest.raises(PopkConfigError) as error:
        make_config(**neg_args)
    for needle in needles:
        assert needle in str(error.value)


def test_normalised_timestamps_are_refused():
    # RecBole's default normalize_all scales timestamps, which POPK's day buckets cannot use
    config = Config("BPR", "ml-100k", config_dict={**FAST, "train_neg_sample_args": popk_args()})
    with pytest.raises(ValueError, match="normalize_all: False"):
        data_preparation(config, create_dataset(config))


def test_bpr_trains_with_popk_and_reports_diversity():
    from recbole_llm.quick_start import run_recbole_llm

    result = run_recbole_llm(
        "BPR",
        "ml-100k",
        config_dict={
            **FAST,
            "normalize_all": False,
            "train_neg_sample_args": popk_args(),
            "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "class"]},
            "category_field": "class",
            "metrics": ["Recall", "NDCG", "AveragePopularity", "CategoryDiversity"],
            "topk": [10],
            "valid_metric": "NDCG@10",
            "train_batch_size": 8192,
            "learning_rate": 0.01,
            "epochs": 3,  # ~0.5 s per epoch
            "eval_batch_size": 2_000_000,
        },
        saved=False,
    )
    test = result["test_result"]
    assert 0.0 < test["categorydiversity@10"] <= 1.0
    assert test["ndcg@10"] > 3 * 10 / 1682  # a random top 10 of 1,682 movies: NDCG@10 about 0.006
    assert test["averagepopularity@10"] > 0.0


def _random_recall(train_dataset, uid_field: str) -> float:
    """Expected Recall@10 of a random ranking (about 10 / #candidates per user, at most 1)."""
    n_items = train_dataset.item_num - 1
    history = np.bincount(train_dataset.inter_feat[uid_field].numpy())[1:]
    return float(np.minimum(10 / (n_items - history[history > 0]), 1).mean())


@pytest.mark.parametrize("model_name", ["NGCF", "P4R"])
def test_other_pairwise_models_train_with_popk_unchanged(model_name, tmp_path):
    """The spec's list of models (BPR and LightGCN are covered above and by the benchmark)."""
    from recbole_llm.quick_start import build

    config = Config(
        model_name,
        "ml-100k",
        config_dict={
            **FAST,
            "normalize_all": False,
            "train_neg_sample_args": popk_args(),
            "item_inter_num_interval": "[250,inf)",  # the 69 most rated movies: a few seconds per model
            "metrics": ["Recall", "NDCG"],
            "topk": [10],
            "valid_metric": "NDCG@10",
            "eval_batch_size": 409600,
            "profile_dir": str(tmp_path / "profiles"),
            "text_cache_dir": str(tmp_path / "text_cache"),
        },
    )
    _, train_data, valid_data, test_data, model, trainer = build(config)
    assert isinstance(train_data, PopkTrainDataLoader) and train_data.times == 3
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer.fit(train_data, valid_data, saved=False, show_progress=False)
    assert any(not torch.equal(before[name], p) for name, p in model.named_parameters())
    result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    assert result["recall@10"] > 1.2 * _random_recall(train_data._dataset, model.USER_ID), result


def test_acceptance_command_prints_accuracy_and_diversity(capsys, caplog):
    """`run_recbole_llm.py --model=LightGCN --dataset=ml-100k --config_files=properties/popk.yaml` (1 epoch).

    The command's ``main`` in this process (the script is run by tests/test_foundation.py, and the
    installed wheel's command with popk.yaml by tests/test_packaging.py).
    """
    import logging
    from pathlib import Path

    from recbole_llm.cli import main

    caplog.set_level(logging.INFO)
    project = Path(__file__).resolve().parent.parent
    argv = [
        "--model=LightGCN",
        "--dataset=ml-100k",
        f"--config_files={project / 'properties' / 'popk.yaml'}",
        "--epochs=1",
        "--show_progress=False",
        "--train_batch_size=8192",
    ]
    assert main(argv) == 0
    assert "POPK train sampler" in caplog.text
    test_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("test result"))
    for metric in ("recall@10", "ndcg@10", "averagepopularity@10", "giniindex@10", "categorydiversity@10"):
        assert f"'{metric}'" in test_line, test_line
