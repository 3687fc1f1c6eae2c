"""Trainer mixin of P5Edit: train on each user's most recent prefixes only (a CPU budget).

RecBole's sequential datasets hold every prefix of every user's training sequence (OpenP5 trains on all
of them). A generative LM costs about one forward-backward pass of the whole prompt per row, so on a
CPU the yaml key ``train_prefixes_per_user`` (an int k) keeps each user's last k rows; ``~`` keeps all.
The model asks for the mixin with ``trainer_mixins = (PrefixBudgetMixin,)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from recbole.data.dataloader import TrainDataLoader

if TYPE_CHECKING:
    from recbole.config import Config


def last_rows_per_user(user_ids: np.ndarray, k: int) -> np.ndarray:
    """Positions of each user's last ``k`` rows, in their original order (rows are in time order per user)."""
    rank_from_end = pd.Series(user_ids).groupby(user_ids, sort=False).cumcount(ascending=False).to_numpy()
    return np.flatnonzero(rank_from_end < k)


def budget_train_data(config: Config, train_data: TrainDataLoader) -> TrainDataLoader:
    """``train_data`` itself, or a shuffled loader over each user's last ``train_prefixes_per_user`` rows."""
    k = config["train_prefixes_per_user"]
    if k is None:
        return train_data
    if int(k) < 1:
        raise ValueError(f"train_prefixes_per_user must be a positive int or ~ (all rows), got {k}")
    dataset = train_data._dataset
    keep = last_rows_per_user(dataset.inter_feat[config["USER_ID_FIELD"]].numpy(), int(k))
    subset = dataset.copy(dataset.inter_feat[keep])
    return TrainDataLoader(config, subset, None, shuffle=config["shuffle"])


class PrefixBudgetMixin:
    """Fits on :func:`budget_train_data` of the given training data (built once per ``fit``)."""

    def fit(self, train_data: TrainDataLoader, *args: Any, **kwargs: Any) -> tuple[float, dict[str, float] | None]:
        return super().fit(budget_train_data(self.config, train_data), *args, **kwargs)
