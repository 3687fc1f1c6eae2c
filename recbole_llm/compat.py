"""Compatibility layer between RecBole 1.2.1 and the pinned stack (applied once, on import).

Everything recbole-llm changes inside RecBole lives in this one module, so the full list of
shims is readable in one place:

1. PyTorch >= 2.6 made ``torch.load`` weights-only by default. RecBole's checkpoints hold the
   ``Config`` object, so ``Trainer.resume_checkpoint`` and ``Trainer.evaluate(load_best_model=True)``
   fail. We give RecBole's trainer module (and only it) a ``torch`` namespace whose ``load``
   reads RecBole's own checkpoints with ``weights_only=False``; every other ``torch.load`` in the
   process keeps safe loading. Our own ``load_data_and_model`` uses :func:`load_recbole_checkpoint`.
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


def apply() -> None:
    """Install the shims once; calling again is a no-op."""
    global _APPLIED
    if _APPLIED:
        return
    import recbole.trainer.trainer as recbole_trainer_module

    recbole_trainer_module.torch = _TorchForRecBoleTrainer()
    _APPLIED = True
