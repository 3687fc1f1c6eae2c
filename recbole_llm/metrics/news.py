"""Per-impression news metrics: the two AUCs, the two MRRs and nDCG@k in use for MIND-style logs.

Two incompatible definitions are in use (see ``../shared/specs/news.md``), so both are offered:

- ``ImpAUC``: ROC AUC of each impression, averaged over impressions (MIND's official scorer and
  microsoft/recommenders ``group_auc``).
- ``GlobalAUC``: one ROC AUC over every candidate of every impression pooled (NewsRecLib and the
  AWRS code: torchmetrics ``AUROC(task="binary")``, which ignores the impression index).
- ``ImpMRR``: mean of 1/rank over *all* clicked items of an impression (recommenders ``mrr_score``).
- ``ImpMRRFirst``: 1/rank of the best-ranked clicked item (torchmetrics ``RetrievalMRR``).
- ``ImpNDCG``: nDCG@k per impression with gains 2^y - 1 and log2 discounts (recommenders ``ndcg_score``).
- ``ImpCategoryDiversity``: Dctg@k of POPK (arXiv 2407.09939) per impression: the normalised category
  entropy of the top-k ranked candidates (``category_field``), averaged over every impression.

Impressions with a single class (no click, or every candidate clicked) have no AUC and make the
ranking metrics degenerate: every per-impression metric skips them, and reports how many it skipped
under ``single_class_impressions``. Ties in AUC count one half (Mann-Whitney); ranking metrics order tied
scores by their position in the impression (first shown first), so results never depend on an
unstable sort.

The evaluation loop of :class:`recbole_llm.news.NewsTrainer` collects ``data.impression`` (the
impression id of every scored candidate) next to RecBole's ``rec.score`` and ``data.label``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from recbole.evaluator.base_metric import AbstractMetric
from recbole.utils import EvaluatorType

from recbole_llm.metrics.category_diversity import ITEM_CATEGORIES, category_entropy

if TYPE_CHECKING:
    from recbole.evaluator.collector import DataStruct

IMPRESSION = "data.impression"
CANDIDATE_ITEM = "data.candidate_item"
#: Result key: impressions every per-impression metric skipped (no click, or all clicked).
SINGLE_CLASS = "single_class_impressions"


@dataclass
class RankedImpressions:
    """Candidates grouped by impression: [n_impressions, longest] matrices, padded at the end."""

    scores: torch.Tensor  # float64, padding = -inf
    labels: torch.Tensor  # float64, 0/1, padding = 0
    valid: torch.Tensor  # bool
    ranked_labels: torch.Tensor  # labels ordered by descending score (ties: position order)
    single_class: torch.Tensor  # bool [n_impressions]
    ranked_items: torch.Tensor | None = None  # item ids in the same order, 0 = padding


def group_by_impression(
    scores: torch.Tensor, labels: torch.Tensor, impressions: torch.Tensor, items: torch.Tensor | None = None
) -> RankedImpressions:
    """Pad each impression's candidates into one row, keeping their order inside the impression."""
    scores = scores.detach().double().view(-1).cpu()
    labels = (labels.detach().view(-1).cpu() > 0).double()
    impressions = impressions.detach().view(-1).cpu()
    if not (len(scores) == len(labels) == len(impressions)):
        raise ValueError(
            f"scores ({len(scores)}), labels ({len(labels)}) and impressions ({len(impressions)}) "
            "must have one value per candidate"
        )
    order = torch.argsort(impressions, stable=True)
    _, counts = torch.unique_consecutive(impressions[order], return_counts=True)
    n, longest = len(counts), int(counts.max()) if len(counts) else 0
    starts = torch.cumsum(counts, 0) - counts
    column = torch.arange(len(order)) - torch.repeat_interleave(starts, counts)
    row = torch.repeat_interleave(torch.arange(n), counts)
    padded_scores = torch.full((n, longest), float("-inf"), dtype=torch.float64)
    padded_labels = torch.zeros((n, longest), dtype=torch.float64)
    valid = torch.zeros((n, longest), dtype=torch.bool)
    padded_scores[row, column] = scores[order]
    padded_labels[row, column] = labels[order]
    valid[row, column] = True
    rank_order = torch.sort(padded_scores, dim=1, descending=True, stable=True).indices
    positives = padded_labels.sum(1)
    ranked_items = None
    if items is not None:
        padded_items = torch.zeros((n, longest), dtype=torch.long)
        padded_items[row, column] = items.detach().view(-1).cpu().long()[order]
        ranked_items = torch.gather(padded_items, 1, rank_order)
    return RankedImpressions(
        padded_scores,
        padded_labels,
        valid,
        torch.gather(padded_labels, 1, rank_order),
        (positives == 0) | (positives == counts.double()),
        ranked_items,
    )


def _auc_by_row(scores: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mann-Whitney AUC of each row (ties count 1/2); nan for rows with a single class."""
    negatives = torch.where(valid & (labels == 0), scores, torch.full_like(scores, float("inf")))
    negatives = torch.sort(negatives, dim=1).values
    probe = torch.where(valid, scores, torch.zeros_like(scores)).contiguous()
    below = torch.searchsorted(negatives, probe, right=False).double()
    below_or_equal = torch.searchsorted(negatives, probe, right=True).double()
    is_positive = (valid & (labels > 0)).double()
    wins = ((below + 0.5 * (below_or_equal - below)) * is_positive).sum(1)
    n_pos, n_neg = is_positive.sum(1), (valid & (labels == 0)).double().sum(1)
    return wins / (n_pos * n_neg)


def impression_auc(ranked: RankedImpressions) -> torch.Tensor:
    """AUC of every multi-class impression."""
    keep = ~ranked.single_class
    return _auc_by_row(ranked.scores[keep], ranked.labels[keep], ranked.valid[keep])


def pooled_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """One AUC over every candidate (nan when the pool holds a single class)."""
    scores = scores.detach().double().view(1, -1).cpu()
    labels = (labels.detach().view(1, -1).cpu() > 0).double()
    return float(_auc_by_row(scores, labels, torch.ones_like(scores, dtype=torch.bool))[0])


def impression_mrr(ranked: RankedImpressions, first_click_only: bool = False) -> torch.Tensor:
    """Mean reciprocal rank of the clicked items (or of the best-ranked one) per multi-class impression."""
    labels = ranked.ranked_labels[~ranked.single_class]
    reciprocal = 1.0 / torch.arange(1, labels.shape[1] + 1, dtype=torch.float64)
    if first_click_only:
        return reciprocal[torch.argmax(labels, dim=1)]
    return (labels * reciprocal).sum(1) / labels.sum(1)


def impression_ndcg(ranked: RankedImpressions, k: int) -> torch.Tensor:
    """nDCG@k (gains 2^y - 1, discounts log2(rank + 1)) per multi-class impression."""
    labels = ranked.ranked_labels[~ranked.single_class]
    ideal = torch.sort(ranked.labels[~ranked.single_class], dim=1, descending=True).values
    discount = 1.0 / torch.log2(torch.arange(2, labels.shape[1] + 2, dtype=torch.float64))
    dcg = ((2 ** labels[:, :k] - 1) * discount[:k]).sum(1)
    best = ((2 ** ideal[:, :k] - 1) * discount[:k]).sum(1)
    return dcg / best


class _ImpressionMetric(AbstractMetric):
    """Shared plumbing: scores, labels and impression ids of every candidate -> grouped impressions."""

    metric_type = EvaluatorType.VALUE
    metric_need = ("rec.score", "data.label", IMPRESSION)
    smaller = False

    def ranked(self, dataobject: DataStruct) -> RankedImpressions:
        """The batch's scores and labels grouped by impression."""
        return group_by_impression(
            dataobject.get("rec.score"), dataobject.get("data.label"), dataobject.get(IMPRESSION)
        )

    def _mean(self, values: torch.Tensor) -> float:
        return round(float(values.mean()), self.decimal_place) if len(values) else float("nan")

    def _result(self, name: str, values: torch.Tensor, ranked: RankedImpressions) -> dict[str, float]:
        return {name: self._mean(values), SINGLE_CLASS: int(ranked.single_class.sum())}


class ImpAUC(_ImpressionMetric):
    """AUC per impression, averaged over impressions (MIND's official definition)."""

    def calculate_metric(self, dataobject: DataStruct) -> dict[str, float]:
        ranked = self.ranked(dataobject)
        return self._result("impauc", impression_auc(ranked), ranked)


class GlobalAUC(_ImpressionMetric):
    """AUC over every candidate pooled (NewsRecLib / AWRS); single-class impressions are kept."""

    metric_need = ("rec.score", "data.label")

    def calculate_metric(self, dataobject: DataStruct) -> dict[str, float]:
        value = pooled_auc(dataobject.get("rec.score"), dataobject.get("data.label"))
        return {"globalauc": round(value, self.decimal_place)}


class ImpMRR(_ImpressionMetric):
    """Mean of 1/rank over all clicked items of an impression, averaged over impressions (MIND)."""

    def calculate_metric(self, dataobject: DataStruct) -> dict[str, float]:
        ranked = self.ranked(dataobject)
        return self._result("impmrr", impression_mrr(ranked), ranked)


class ImpMRRFirst(_ImpressionMetric):
    """1/rank of the best-ranked clicked item, averaged over impressions (torchmetrics RetrievalMRR)."""

    def calculate_metric(self, dataobject: DataStruct) -> dict[str, float]:
        ranked = self.ranked(dataobject)
        return self._result("impmrrfirst", impression_mrr(ranked, first_click_only=True), ranked)


class ImpNDCG(_ImpressionMetric):
    """nDCG@k per impression for every k in ``topk`` (MIND reports @5 and @10)."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.topk = config["topk"]

    def calculate_metric(self, dataobject: DataStruct) -> dict[str, float]:
        ranked = self.ranked(dataobject)
        result: dict[str, float] = {f"impndcg@{k}": self._mean(impression_ndcg(ranked, k)) for k in self.topk}
        result[SINGLE_CLASS] = int(ranked.single_class.sum())
        return result


class ImpCategoryDiversity(_ImpressionMetric):
    """Dctg@k: normalised category entropy of each impression's top-k candidates, mean over impressions."""

    metric_need = ("rec.score", "data.label", IMPRESSION, CANDIDATE_ITEM, ITEM_CATEGORIES)

    def __init__(self, config) -> None:
        super().__init__(config)
        self.topk = config["topk"]

    def calculate_metric(self, dataobject: DataStruct) -> dict[str, float]:
        ranked = group_by_impression(
            dataobject.get("rec.score"),
            dataobject.get("data.label"),
            dataobject.get(IMPRESSION),
            dataobject.get(CANDIDATE_ITEM),
        )
        categories = dataobject.get(ITEM_CATEGORIES).long()
        return {
            f"impcategorydiversity@{k}": self._mean(category_entropy(ranked.ranked_items, categories, k))
            for k in self.topk
        }


NEWS_METRICS = (ImpAUC, GlobalAUC, ImpMRR, ImpMRRFirst, ImpNDCG, ImpCategoryDiversity)
