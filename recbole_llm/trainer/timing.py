"""Seconds per training epoch, recorded by the trainer itself (``trainer.epoch_times``)."""

from __future__ import annotations

import time


class EpochTimingMixin:
    """Times every call of ``_train_epoch`` (the whole chain of mixins below it) into ``self.epoch_times``."""

    snapshot_attributes = ("epoch_times",)  # a resumed run keeps the times of its epochs before the snapshot

    def __init__(self, config, model) -> None:
        super().__init__(config, model)
        self.epoch_times: list[float] = []

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        start = time.perf_counter()
        try:
            return super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        finally:
            self.epoch_times.append(time.perf_counter() - start)
