"""Trainer hook: AAE/SA of the item table at every evaluation, saved as a JSON history.

``OIEMetricsMixin`` goes in front of RecBole's ``Trainer``; :func:`recbole_llm.trainer.get_trainer`
adds it for sequential models when ``oie_metrics`` is on (``properties/oie.yaml``; off with
``oie_metrics: False``). History entries: ``stage`` = ``init`` (before training, after any OIE
transfer), ``valid`` (after each evaluation; ``epoch`` = epochs trained), ``best`` (the checkpoint
loaded for the test evaluation). Written to ``<checkpoint>.oie.json`` (or ``saved/<model>-oie.json``).
"""

from __future__ import annotations

import json
import os
from logging import getLogger
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recbole.utils import set_color

from recbole_llm.config import setting
from recbole_llm.oie.metrics import item_embedding_table, oie_metrics

if TYPE_CHECKING:
    from recbole.data.dataloader import AbstractDataLoader


def history_path(saved_model_file: str) -> Path:
    """Where the OIE history of a checkpoint is written."""
    return Path(saved_model_file).with_suffix(".oie.json")


class OIEMetricsMixin:
    """Adds ``self.oie_history`` (list of dicts) to a RecBole trainer; see the module docstring."""

    snapshot_attributes = ("oie_history", "_oie_epochs_trained")

    def __init__(self, config, model) -> None:
        super().__init__(config, model)
        self.oie_history: list[dict] = []
        self.oie_enabled = bool(setting(config, "oie_metrics")) and hasattr(model, "item_embedding")
        self._oie_epochs_trained = 0

    def record_oie(self, stage: str) -> dict | None:
        if not self.oie_enabled:
            return None
        entry = {"stage": stage, "epoch": self._oie_epochs_trained, **oie_metrics(item_embedding_table(self.model))}
        self.oie_history.append(entry)
        getLogger().info(
            set_color(f"OIE {stage} epoch {entry['epoch']}", "blue")
            + f": AAE {entry['aae']:.4f} ({entry['aae_rel_change']:+.1f}% vs random), "
            f"SA {entry['sa']:.4f} ({entry['sa_rel_change']:+.1f}% vs random)"
        )
        self.save_oie_history()
        return entry

    def save_oie_history(self) -> Path | None:
        """Write the history (rank 0 only in a multi-process run: every process holds the same table)."""
        from recbole_llm.distributed import is_main_process

        if not self.oie_enabled or not is_main_process(self.config):
            return None
        path = history_path(self.saved_model_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".tmp{os.getpid()}")
        temporary.write_text(
            json.dumps(
                {"model": self.config["model"], "dataset": self.config["dataset"], "history": self.oie_history},
                indent=1,
            ),
            encoding="utf-8",
        )
        os.replace(temporary, path)
        return path

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        result = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        self._oie_epochs_trained = epoch_idx + 1
        return result

    def fit(
        self, train_data: AbstractDataLoader, valid_data: AbstractDataLoader | None = None, *args: Any, **kwargs: Any
    ) -> tuple[float, dict[str, float] | None]:
        if self.start_epoch == 0:  # a run resumed from a snapshot has its "init" entry already
            self.record_oie("init")
        return super().fit(train_data, valid_data, *args, **kwargs)

    def _valid_epoch(self, valid_data, show_progress=False):
        result = super()._valid_epoch(valid_data, show_progress=show_progress)
        self.record_oie("valid")
        return result

    def evaluate(
        self,
        eval_data: AbstractDataLoader | None,
        load_best_model: bool = True,
        model_file: str | None = None,
        show_progress: bool = False,
    ) -> dict[str, float] | None:
        result = super().evaluate(
            eval_data, load_best_model=load_best_model, model_file=model_file, show_progress=show_progress
        )
        if load_best_model:
            self.record_oie("best")
        return result
