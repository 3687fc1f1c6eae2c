"""``MinEpochsMixin``: early stopping that cannot end a run before it has trained ``min_epochs`` epochs."""

from __future__ import annotations


class MinEpochsMixin:
    """Goes in front of a RecBole trainer; reads ``min_epochs`` from the config (unset or 0: no effect).

    Why: a model whose validation score peaks at epoch 0 and dips (a common start for LightGCN at a
    low learning rate on sparse data) is stopped by patience alone with its untrained checkpoint, and
    the comparison then ranks that checkpoint. RecBole's ``fit`` stops when ``early_stopping`` counts
    more than ``stopping_step`` validations without improvement; until ``min_epochs`` epochs are
    trained this mixin keeps that count below the threshold before each validation, so the run goes
    on. The best checkpoint is still the best validation score (it may remain an early epoch; the
    benchmark report flags that).
    """

    def __init__(self, config, model) -> None:
        super().__init__(config, model)
        self.min_epochs = int(config["min_epochs"])
        self._epoch_in_training = 0

    def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        self._epoch_in_training = epoch_idx
        return super()._train_epoch(train_data, epoch_idx, *args, **kwargs)

    def _valid_epoch(self, valid_data, *args, **kwargs):
        if self._epoch_in_training + 1 < self.min_epochs:
            self.cur_step = min(self.cur_step, self.stopping_step - 1)
        return super()._valid_epoch(valid_data, *args, **kwargs)
