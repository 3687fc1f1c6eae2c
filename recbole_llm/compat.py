"""Compatibility layer between RecBole 1.2.1 and the pinned stack (applied once, on import).

Everything recbole-llm changes inside RecBole lives in this one module, so the full list of
patches is readable in one place (:data:`PATCHES`). Each patch was written against RecBole 1.2.1:
on another version :func:`apply` refuses with one line, and ``tests/test_compat.py`` compares a
hash of the source of every upstream function a patch relies on with the hash recorded here, so
an upstream change fails the test suite instead of silently breaking the patch.

1. ``trainer_torch_load``: PyTorch >= 2.6 made ``torch.load`` weights-only by default. RecBole's
   checkpoints hold the ``Config`` object, so ``Trainer.resume_checkpoint`` and
   ``Trainer.evaluate(load_best_model=True)`` fail. RecBole's trainer module (and only it) gets a
   ``torch`` namespace whose ``load`` reads RecBole's own checkpoints with ``weights_only=False``;
   every other ``torch.load`` keeps safe loading. Our ``load_data_and_model`` uses
   :func:`load_recbole_checkpoint`.
2. ``collector_item_categories``: ``Collector.data_collect`` only knows a fixed list of data
   resources. It also collects ``data.item_categories`` when a registered metric needs it
   (``recbole_llm.metrics.CategoryDiversity``); nothing else changes.
3. ``collector_data_struct``: RecBole 1.2.1's ``Collector.get_data_struct`` calls ``.cpu()`` on every
   collected resource, but ``data.num_items`` is an int and ``data.count_items`` a Counter, so
   ``ItemCoverage``, ``GiniIndex``, ``AveragePopularity`` and ``TailPercentage`` crash. The
   replacement moves only tensors to the CPU; the rest is RecBole's code.
4. ``anomaly_mode_off``: RecBole's ``sine.py`` turns PyTorch's anomaly detection on for the whole
   process when it is imported (any RecBole sequential model imports it): slow backward passes,
   and a NaN gradient anywhere aborts training. It is imported once and anomaly mode turned off.
5. ``metric_registry``: our metrics (:data:`recbole_llm.metrics.METRICS`) are written into RecBole's
   metric registry (``recbole.evaluator.register``), which RecBole builds once from its own module.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import inspect
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

#: The RecBole version every patch below was written for.
RECBOLE_VERSION = "1.2.1"


class RecBoleVersionError(RuntimeError):
    """A patch met a RecBole version other than the one it was written for."""


@dataclass(frozen=True)
class Patch:
    """One change to RecBole: what it relies on upstream (and that source's hash) and how it is installed."""

    name: str
    targets: tuple[str, ...]  # "module:qualified.name" of each upstream object the patch relies on
    source_sha256: str  # first 16 hex digits of sha256 over the targets' concatenated source
    install: Callable[[], None]


_APPLIED = False
_ORIGINALS: dict[str, Any] = {}


def load_recbole_checkpoint(path: str, map_location: Any = None) -> dict:
    """Load a checkpoint written by RecBole's trainer (it pickles the Config object).

    Only use this for files RecBole itself wrote: it turns weights-only loading off for this call.
    """
    return torch.load(path, map_location=map_location, weights_only=False)


def resolve(target: str) -> Any:
    """The object named ``"module:qualified.name"``, as it was before our patches."""
    if target in _ORIGINALS:
        return _ORIGINALS[target]
    module_name, _, qualname = target.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in qualname.split(".") if qualname else ():  # "module:" names the whole module
        value = getattr(value, part)
    return value


def source_hash(patch: Patch) -> str:
    """sha256 (16 hex digits) of the current upstream source of ``patch.targets``."""
    source = "".join(inspect.getsource(resolve(target)) for target in patch.targets)
    return hashlib.sha256(source.encode()).hexdigest()[:16]


class _TorchForRecBoleTrainer(types.ModuleType):
    """``torch`` as seen from ``recbole.trainer.trainer``: identical except ``load``."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    @staticmethod
    def load(f, map_location=None, **kwargs):
        kwargs.setdefault("weights_only", False)
        return torch.load(f, map_location=map_location, **kwargs)


def _install_trainer_torch_load() -> None:
    import recbole.trainer.trainer as recbole_trainer_module

    recbole_trainer_module.torch = _TorchForRecBoleTrainer()


def _install_collector_item_categories() -> None:
    from recbole.evaluator.collector import Collector

    original = Collector.data_collect

    def data_collect(self, train_data):
        original(self, train_data)
        if self.register.need("data.item_categories"):
            from recbole_llm.metrics.category_diversity import item_category_matrix

            self.data_struct.set("data.item_categories", item_category_matrix(self.config, train_data.dataset))

    data_collect.__wrapped__ = original
    Collector.data_collect = data_collect


def _get_data_struct(self):
    """RecBole's ``Collector.get_data_struct``, moving only tensors to the CPU (see item 3)."""
    for key, value in self.data_struct._data_dict.items():
        if isinstance(value, torch.Tensor):
            self.data_struct._data_dict[key] = value.cpu()
    returned_struct = copy.deepcopy(self.data_struct)
    for key in ["rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label"]:
        if key in self.data_struct:
            del self.data_struct[key]
    return returned_struct


def _install_collector_data_struct() -> None:
    from recbole.evaluator.collector import Collector

    Collector.get_data_struct = _get_data_struct


def _install_anomaly_mode_off() -> None:
    """Importing RecBole's sequential models runs ``sine.py``, whose module body calls
    ``torch.autograd.set_detect_anomaly(True)``: every later backward pass of the process is traced
    (several times slower) and any NaN gradient aborts training. Import it once here, then switch
    anomaly mode back off."""
    importlib.import_module("recbole.model.sequential_recommender")
    torch.autograd.set_detect_anomaly(False)


def _install_metric_registry() -> None:
    """Make our metrics usable by name in ``metrics: [...]``: RecBole's Config, Register and Evaluator
    read the same registry dicts, so adding entries in place is enough."""
    from recbole.evaluator import register

    from recbole_llm.metrics import METRICS

    for metric in METRICS:
        name = metric.__name__.lower()
        register.metrics_dict[name] = metric
        register.metric_information[name] = metric.metric_need
        register.metric_types[name] = metric.metric_type
        if metric.smaller and name not in register.smaller_metrics:
            register.smaller_metrics.append(name)


PATCHES: tuple[Patch, ...] = (
    Patch(
        "trainer_torch_load",
        ("recbole.trainer.trainer:Trainer.resume_checkpoint", "recbole.trainer.trainer:Trainer.evaluate"),
        "9960d4e41af98172",
        _install_trainer_torch_load,
    ),
    Patch(
        "collector_item_categories",
        ("recbole.evaluator.collector:Collector.data_collect",),
        "d8a344993f87aca4",
        _install_collector_item_categories,
    ),
    Patch(
        "collector_data_struct",
        ("recbole.evaluator.collector:Collector.get_data_struct",),
        "b8062da76dd83758",
        _install_collector_data_struct,
    ),
    Patch(
        "anomaly_mode_off",
        ("recbole.model.sequential_recommender.sine:",),
        "16277f215552e1e1",
        _install_anomaly_mode_off,
    ),
    Patch(
        "metric_registry",
        ("recbole.evaluator.register:cluster_info", "recbole.evaluator.register:Register"),
        "021c249c92638c3d",
        _install_metric_registry,
    ),
)


def check_version(patch: Patch) -> None:
    """Refuse (one line) to install ``patch`` on a RecBole other than :data:`RECBOLE_VERSION`."""
    import recbole

    found = getattr(recbole, "__version__", "unknown")
    if found != RECBOLE_VERSION:
        raise RecBoleVersionError(
            f"recbole-llm patch '{patch.name}' was written for RecBole {RECBOLE_VERSION}, found {found}: "
            f"install recbole=={RECBOLE_VERSION} (see recbole_llm/compat.py)."
        )


def apply() -> None:
    """Install every patch once (calling again is a no-op), each after its version check."""
    global _APPLIED
    if _APPLIED:
        return
    for patch in PATCHES:
        check_version(patch)
    for patch in PATCHES:
        for target in patch.targets:
            _ORIGINALS.setdefault(target, resolve(target))
        patch.install()
    _APPLIED = True
