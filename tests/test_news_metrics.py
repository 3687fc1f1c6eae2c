"""News metrics against impressions computed by hand (ties, single-class impressions, both AUCs and MRRs)."""

from __future__ import annotations

import math

import pytest
import torch
from recbole.evaluator import Evaluator
from recbole.evaluator.collector import DataStruct

from recbole_llm.metrics import register_metrics
from recbole_llm.metrics.category_diversity import ITEM_CATEGORIES
from recbole_llm.metrics.news import (
    CANDIDATE_ITEM,
    IMPRESSION,
    SINGLE_CLASS,
    group_by_impression,
    impression_auc,
)

# (scores, labels) of six impressions; C (no click) and D (all clicked) have a single class.
IMPRESSIONS = {
    "A": ([0.9, 0.1, 0.5, 0.3], [1, 0, 0, 1]),
    "B": ([0.2, 0.2, 0.8], [1, 0, 0]),  # the click ties with a non-click
    "C": ([0.4, 0.6], [0, 0]),
    "D": ([0.3, 0.7], [1, 1]),
    "E": ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0, 0, 0, 0, 0, 1]),
    "F": ([0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05], [0, 0, 0, 0, 0, 1, 1]),
}


def _log2(x: float) -> float:
    return math.log2(x)


# By hand. A: ranking 0.9(c) 0.5 0.3(c) 0.1 -> clicks at ranks 1 and 3; pairs (pos>neg): 3 of 4.
# B: ranking 0.8, 0.2(c, shown first), 0.2 -> click at rank 2; AUC pairs: tie 1/2, loss -> 0.25.
# E: click at rank 1. F: clicks at ranks 6 and 7, every pair lost.
HAND = {
    "auc": {"A": 3 / 4, "B": 0.5 / 2, "E": 1.0, "F": 0.0},
    "mrr": {"A": (1 + 1 / 3) / 2, "B": 1 / 2, "E": 1.0, "F": (1 / 6 + 1 / 7) / 2},
    "mrr_first": {"A": 1.0, "B": 1 / 2, "E": 1.0, "F": 1 / 6},
    "ndcg@5": {"A": (1 + 1 / _log2(4)) / (1 + 1 / _log2(3)), "B": 1 / _log2(3), "E": 1.0, "F": 0.0},
    "ndcg@10": {
        "A": (1 + 1 / _log2(4)) / (1 + 1 / _log2(3)),
        "B": 1 / _log2(3),
        "E": 1.0,
        "F": (1 / _log2(7) + 1 / _log2(8)) / (1 + 1 / _log2(3)),
    },
}


def _flat(names=IMPRESSIONS):
    scores, labels, impressions = [], [], []
    for number, name in enumerate(names):
        s, y = IMPRESSIONS[name]
        scores += s
        labels += y
        impressions += [100 - number] * len(s)  # ids need not be sorted or contiguous
    return torch.tensor(scores), torch.tensor(labels, dtype=torch.float), torch.tensor(impressions)


def _evaluate(metrics, scores, labels, impressions, topk=(5, 10)):
    register_metrics()
    config = {"metrics": metrics, "topk": list(topk), "metric_decimal_place": 10}
    struct = DataStruct()
    struct.set("rec.score", scores)
    struct.set("data.label", labels)
    struct.set(IMPRESSION, impressions)
    return Evaluator(config).evaluate(struct)


def _mean(key: str) -> float:
    return sum(HAND[key].values()) / len(HAND[key])


def test_metrics_match_hand_computation_and_skip_single_class():
    result = _evaluate(["ImpAUC", "ImpMRR", "ImpMRRFirst", "ImpNDCG"], *_flat())
    assert result["impauc"] == pytest.approx(_mean("auc"))
    assert result["impmrr"] == pytest.approx(_mean("mrr"))
    assert result["impmrrfirst"] == pytest.approx(_mean("mrr_first"))
    assert result["impndcg@5"] == pytest.approx(_mean("ndcg@5"))
    assert result["impndcg@10"] == pytest.approx(_mean("ndcg@10"))
    assert result[SINGLE_CLASS] == 2


def test_the_two_mrr_definitions_differ_with_several_clicks():
    result = _evaluate(["ImpMRR", "ImpMRRFirst"], *_flat(["A"]))
    assert result["impmrr"] == pytest.approx(2 / 3)
    assert result["impmrrfirst"] == pytest.approx(1.0)


def test_pooled_auc_by_hand_keeps_single_class_impressions():
    # A + B + C pooled. Positives 0.9, 0.3, 0.2; negatives 0.1, 0.5, 0.2, 0.8, 0.4, 0.6.
    # 0.9 beats all 6; 0.3 beats 0.1 and 0.2; 0.2 beats 0.1 and ties 0.2 -> (6 + 2 + 1.5) / 18.
    result = _evaluate(["GlobalAUC", "ImpAUC"], *_flat(["A", "B", "C"]))
    assert result["globalauc"] == pytest.approx(9.5 / 18)
    assert result["impauc"] == pytest.approx((3 / 4 + 1 / 4) / 2)


def test_grouping_ignores_row_order_across_impressions():
    ordered = _evaluate(["ImpAUC", "ImpMRR", "ImpNDCG"], *_flat())
    scores, labels, impressions = _flat()
    order = torch.argsort(torch.arange(len(scores)) % 4, stable=True)  # interleave, keep order inside
    shuffled = _evaluate(["ImpAUC", "ImpMRR", "ImpNDCG"], scores[order], labels[order], impressions[order])
    assert shuffled == pytest.approx(ordered)


def test_per_impression_auc_matches_sklearn_with_ties():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (300,), generator=generator).double()  # many ties
    labels = (torch.rand(300, generator=generator) < 0.3).double()
    impressions = torch.randint(0, 20, (300,), generator=generator)
    ranked = group_by_impression(scores, labels, impressions)
    expected = []
    for imp in torch.unique(impressions):
        y, s = labels[impressions == imp], scores[impressions == imp]
        if 0 < y.sum() < len(y):
            expected.append(sklearn_metrics.roc_auc_score(y.numpy(), s.numpy()))
    assert impression_auc(ranked).tolist() == pytest.approx(expected)
    pooled = _evaluate(["GlobalAUC"], scores, labels, impressions)["globalauc"]
    assert pooled == pytest.approx(sklearn_metrics.roc_auc_score(labels.numpy(), scores.numpy()))


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="one value per candidate"):
        group_by_impression(torch.zeros(3), torch.zeros(3), torch.zeros(2))


def test_category_diversity_of_each_impressions_top_k_by_hand():
    # items 1, 2 are category 1, item 3 category 2. Impression 1 ranks 1, 2, 3; impression 2 ranks 3, 1.
    register_metrics()
    struct = DataStruct()
    struct.set("rec.score", torch.tensor([0.9, 0.5, 0.1, 0.8, 0.2]))
    struct.set("data.label", torch.tensor([1.0, 0, 0, 0, 1]))
    struct.set(IMPRESSION, torch.tensor([1, 1, 1, 2, 2]))
    struct.set(CANDIDATE_ITEM, torch.tensor([1, 2, 3, 3, 1]))
    struct.set(ITEM_CATEGORIES, torch.tensor([[0], [1], [1], [2]]))
    config = {"metrics": ["ImpCategoryDiversity"], "topk": [2, 3], "metric_decimal_place": 10}
    result = Evaluator(config).evaluate(struct)
    three_mixed = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)) / math.log(2)
    assert result["impcategorydiversity@2"] == pytest.approx((0.0 + 1.0) / 2)
    assert result["impcategorydiversity@3"] == pytest.approx((three_mixed + 1.0) / 2)
