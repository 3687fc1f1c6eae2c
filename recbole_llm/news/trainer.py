"""Trainer for the news models: RecBole's ``fit`` and early stopping, impression-wise evaluation.

RecBole's labeled evaluation scores one row at a time and knows nothing of impressions. Here each
evaluation batch holds whole impressions; the model scores every candidate, and the scores, labels
and impression ids of the real (unpadded) candidates go to RecBole's ``Evaluator`` as ``rec.score``,
``data.label`` and ``data.impression``, with the candidates' item ids (``data.candidate_item``) and, for
``ImpCategoryDiversity``, the item categories (read by :mod:`recbole_llm.metrics.news`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from recbole.evaluator.collector import DataStruct
from recbole.trainer import Trainer
from recbole.utils import set_color
from tqdm import tqdm

from recbole_llm.metrics.category_diversity import ITEM_CATEGORIES, item_category_matrix
from recbole_llm.metrics.news import CANDIDATE_ITEM, IMPRESSION
from recbole_llm.news.data import CANDIDATE_LABEL, CANDIDATE_MASK, CANDIDATES, IMPRESSION_ID

if TYPE_CHECKING:
    from recbole_llm.news.data import ImpressionEvalDataLoader


class NewsTrainer(Trainer):
    """RecBole's Trainer whose ``evaluate`` scores whole impressions."""

    def _load_best(self, model_file: str | None) -> None:
        from recbole_llm.compat import load_recbole_checkpoint

        checkpoint_file = model_file or self.saved_model_file
        checkpoint = load_recbole_checkpoint(checkpoint_file, map_location=self.device)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")

    @torch.no_grad()
    def collect_scores(self, eval_data: ImpressionEvalDataLoader, show_progress: bool = False) -> DataStruct:
        """Scores, labels and impression ids of every real candidate of ``eval_data``."""
        scores, labels, impressions, items = [], [], [], []
        batches = (
            tqdm(eval_data, total=len(eval_data), ncols=100, desc=set_color("Evaluate   ", "pink"))
            if show_progress
            else eval_data
        )
        for interaction in batches:
            interaction = interaction.to(self.device)
            batch_scores = self.model.predict(interaction)
            mask = interaction[CANDIDATE_MASK]
            scores.append(batch_scores[mask].float().cpu())
            labels.append(interaction[CANDIDATE_LABEL][mask].float().cpu())
            ids = interaction[IMPRESSION_ID][:, None].expand_as(mask)
            impressions.append(ids[mask].cpu())
            items.append(interaction[CANDIDATES][mask].cpu())
        struct = DataStruct()
        struct.set("rec.score", torch.cat(scores))
        struct.set("data.label", torch.cat(labels))
        struct.set(IMPRESSION, torch.cat(impressions))
        struct.set(CANDIDATE_ITEM, torch.cat(items))
        if self.eval_collector.register.need(ITEM_CATEGORIES):
            struct.set(ITEM_CATEGORIES, item_category_matrix(self.config, eval_data._dataset))
        return struct

    def evaluate(
        self,
        eval_data: ImpressionEvalDataLoader | None,
        load_best_model: bool = True,
        model_file: str | None = None,
        show_progress: bool = False,
    ) -> dict[str, float] | None:
        """Per-impression metrics of ``config['metrics']`` on ``eval_data`` (RecBole's signature)."""
        if not eval_data:
            return None
        if load_best_model:
            self._load_best(model_file)
        self.model.eval()
        result = self.evaluator.evaluate(self.collect_scores(eval_data, show_progress))
        self.wandblogger.log_eval_metrics(result, head="eval")
        return result
