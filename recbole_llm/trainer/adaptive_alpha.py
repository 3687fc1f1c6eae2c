"""ReviewGNN's adaptive MSE weight (arXiv 2504.02195 v1), as a trainer mixin.

After each validation the model's ``alpha`` is updated from the validation metric
(``alpha_valid_metric``, default ``hit@10`` in ``properties/model/ReviewGNN.yaml``) by the spec's
rule, and alpha is logged every epoch. Alpha is a model buffer, so RecBole's checkpoints save and
restore it with the weights. A model asks for this mixin with ``trainer_mixins = (AdaptiveAlphaMixin,)``.
"""

from __future__ import annotations

from recbole.utils import set_color

from recbole_llm.config import setting


class AdaptiveAlphaMixin:
    """Feeds each validation result to ``model.update_alpha`` (models with ``use_reviews``)."""

    snapshot_attributes = ("alpha_history",)  # alpha itself is a model buffer, in the weights

    def __init__(self, config, model) -> None:
        super().__init__(config, model)
        self.alpha_valid_metric: str = str(setting(config, "alpha_valid_metric")).lower()
        #: (epoch, alpha used for that epoch's training) for every trained epoch
        self.alpha_history: list[tuple[int, float]] = []

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        alpha = float(self.model.alpha)
        self.alpha_history.append((epoch_idx, alpha))
        if self.model.use_reviews:
            self.logger.info(set_color(f"epoch {epoch_idx} alpha", "blue") + f": {alpha:.6f}")
        return super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)

    def _valid_epoch(self, valid_data, show_progress=False):
        valid_score, valid_result = super()._valid_epoch(valid_data, show_progress=show_progress)
        if self.model.use_reviews:
            if self.alpha_valid_metric not in valid_result:
                raise KeyError(
                    f"ReviewGNN's adaptive alpha needs '{self.alpha_valid_metric}' in the validation "
                    f"result, which has {sorted(valid_result)}: add its metric to `metrics` and its "
                    "cut-off to `topk`, or set alpha_valid_metric / alpha_mode: fixed."
                )
            alpha = self.model.update_alpha(float(valid_result[self.alpha_valid_metric]))
            self.logger.info(
                set_color("alpha after validation", "blue")
                + f": {alpha:.6f} ({self.alpha_valid_metric}={valid_result[self.alpha_valid_metric]:.4f}, "
                f"best={float(self.model.alpha_best_valid):.4f}, mode={self.model.alpha_mode})"
            )
        return valid_score, valid_result
