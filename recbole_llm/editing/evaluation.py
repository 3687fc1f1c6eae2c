"""Per-user Hit/NDCG@k of a P5Edit model from RecBole's own metric code (means equal RecBole's evaluator).

The experiment needs per-user values for its paired test, which RecBole's ``Trainer.evaluate`` averages
away; this loop is RecBole's full-sort evaluation (``Trainer._full_sort_batch_eval`` and the
collector's ``rec.topk``) feeding ``recbole.evaluator.metrics.Hit`` / ``NDCG.metric_info``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from recbole.evaluator.metrics import NDCG, Hit
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from recbole.config import Config
    from recbole.data.dataloader import FullSortEvalDataLoader
    from recbole.model.abstract_recommender import AbstractRecommender


@torch.no_grad()
def per_user_metrics(
    model: AbstractRecommender, eval_data: FullSortEvalDataLoader, config: Config
) -> dict[str, np.ndarray]:
    """``{"hit@5": [users], "ndcg@10": [users], ...}`` for ``config["topk"]``, users in loader order."""
    return ranked_lists(model, eval_data, config)[0]


@torch.no_grad()
def ranked_lists(
    model: AbstractRecommender, eval_data: FullSortEvalDataLoader, config: Config
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(per-user metrics as ``per_user_metrics``, each user's top-``max(topk)`` items [users, k])."""
    model.eval()
    topk = list(config["topk"])
    positions, lengths, tops = [], [], []
    batches = tqdm(eval_data, desc="beam search", unit="batch", disable=not config["show_progress"])
    for interaction, history_index, positive_u, positive_i in batches:
        scores = model.full_sort_predict(interaction.to(model.device)).view(len(interaction), -1)
        scores[:, 0] = -np.inf
        if history_index is not None:
            scores[history_index] = -np.inf
        top = torch.topk(scores, max(topk), dim=-1).indices.cpu()
        relevant = torch.zeros_like(scores, dtype=torch.int, device="cpu")
        relevant[positive_u, positive_i] = 1
        positions.append(torch.gather(relevant, 1, top).bool().numpy())
        lengths.append(relevant.sum(dim=1).numpy())
        tops.append(top.numpy())
    pos_index, pos_len = np.concatenate(positions), np.concatenate(lengths)
    hit = Hit(config).metric_info(pos_index)
    ndcg = NDCG(config).metric_info(pos_index, pos_len)
    metrics = {}
    for k in topk:
        metrics[f"hit@{k}"] = hit[:, k - 1].astype(float)
        metrics[f"ndcg@{k}"] = ndcg[:, k - 1].astype(float)
    return metrics, np.concatenate(tops)


def distinct_share(top_items: np.ndarray) -> float:
    """Distinct top-k item sets per user (1 = every user's list differs; 1/users = one list for all).

    A generative recommender trained too briefly learns the item prior and ignores its prompt: it gives
    every user the same items, and its Hit/NDCG are then a popularity ranking's, whatever the arm.
    """
    return len({tuple(sorted(row)) for row in top_items.tolist()}) / max(len(top_items), 1)
