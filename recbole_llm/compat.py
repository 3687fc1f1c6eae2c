"""Compatibility layer between RecBole 1.2.1 and the pinned stack (applied once, on import).

Everything recbole-llm changes inside RecBole lives in this one module, so the full list of
shims is readable in one place:

1. PyTorch >= 2.6 made ``torch.load`` weights-only by default. RecBole's checkpoints hold the
   ``Config`` object, so ``Trainer.resume_checkpoint`` and ``Trainer.evaluate(load_best_model=True)``
   fail. We give RecBole's trainer module (and only it) a ``torch`` namespace whose ``load``
   reads RecBole's own checkpoints with ``weights_only=False``; every other ``torch.load`` in the
   process keeps safe loading. Our own ``load_data_and_model`` uses :func:`load_recbole_checkpoint`.
2. RecBole's ``Collector.data_collect`` only knows a fixed list of data resources. It is extended
   to also collect ``data.item_categories`` (the train dataset's ``category_field``) when a
   registered metric needs it (``recbole_llm.metrics.CategoryDiversity``); nothing else changes.
3. RecBole 1.2.1's ``Collector.get_data_struct`` calls ``.cpu()`` on every collected resource,
   but ``data.num_items`` is an int and ``data.count_items`` a Counter, so ``ItemCoverage``,
   ``GiniIndex``, ``AveragePopularity`` and ``TailPercentage`` crash ("'int' object has no
   attribute 'cpu'"). The replacement moves only tensors to the CPU; the rest is RecBole's code.
"""
from __future__ import annotations

import types
from typing import Any

import torch

_APPLIED = False


def load_recbole_checkpoint(path: str, map_location: Any = None) -> dict:
    """Load a checkpoint written by RecBole's trainer (it pickles the Config object).

    Only use this for files RecBole itself wrote: it turns weights-only loading off for this call.
    """
    return torch.load(path, map_location=map_location, weights_only=False)


class _TorchForRecBoleTrainer(types.ModuleType):
    """``torch`` as seen from ``recbole.trainer.trainer``: identical except ``load``."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    @staticmethod
    def load(f, map_location=None, **kwargs):  # noqa: D401 - mirrors torch.load
        kwargs.setdefault("weights_only", False)
        return torch.load(f, map_location=map_location, **kwargs)


def _collect_item_categories(original):
    """Wrap ``Collector.data_collect`` so metrics can ask for ``data.item_categories``."""

    def data_collect(self, train_data):
        original(self, train_data)
        if self.register.need("data.item_categories"):
            from recbole_llm.metrics.category_diversity import item_category_matrix

            self.data_struct.set("data.item_categories", item_category_matrix(self.config, train_data.dataset))

    data_collect.__wrapped__ = original
    return data_collect


def _get_data_struct(self):
    """RecBole's ``Collector.get_data_struct``, moving only tensors to the CPU (see item 3)."""
    import copy

    for key, value in self.data_struct._data_dict.items():
        if isinstance(value, torch.Tensor):
            self.data_struct._data_dict[key] = value.cpu()
    returned_struct = copy.deepcopy(self.data_struct)
    for key in ["rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label"]:
        if key in self.data_struct:
            del self.data_struct[key]
    return returned_struct


def apply() -> None:
    """Install the shims once; calling again is a no-op."""
    global _APPLIED
    if _APPLIED:
        return
    import recbole.trainer.trainer as recbole_trainer_module

    recbole_trainer_module.torch = _TorchForRecBoleTrainer()
    from recbole.evaluator.collector import Collector

    Collector.data_collect = _collect_item_categories(Collector.data_collect)
    Collector.get_data_struct = _get_data_struct
    _APPLIED = True
