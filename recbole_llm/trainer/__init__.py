"""Trainer selection, in one place: RecBole's trainer for the model, composed with mixins.

``get_trainer(config, model_class)`` returns ``<Model>Trainer``, a class built from (outermost first):
:class:`EpochTimingMixin` (``trainer.epoch_times``); in a multi-process run (``--nproc``)
:class:`~recbole_llm.distributed.DistributedEvalMixin` (metrics from every process's gathered
evaluation data, one checkpoint name); the caller's ``extra_mixins`` (e.g. Ray Tune
reporting); the mixins the model class declares in ``trainer_mixins`` (ReviewGNN: :class:`AdaptiveAlphaMixin`);
:class:`MinEpochsMixin` when ``min_epochs`` > 0 (early stopping waits that many epochs);
``OIEMetricsMixin`` when ``oie_metrics``
is on and the model is sequential (it switches itself off for a model without ``item_embedding``);
and the model class's ``trainer_base`` (news models: ``NewsTrainer``), else RecBole's trainer for the
model (``recbole.utils.get_trainer``). There are no per-model trainer files.
:mod:`recbole_llm.trainer.snapshot` keeps a run's training state after a validation (mixins list the
attributes that belong to it in ``snapshot_attributes``), so a killed run or trial goes on from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

from recbole.utils import ModelType
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_llm.trainer.adaptive_alpha import AdaptiveAlphaMixin
from recbole_llm.trainer.min_epochs import MinEpochsMixin
from recbole_llm.trainer.timing import EpochTimingMixin

if TYPE_CHECKING:
    from recbole.config import Config

__all__ = ["AdaptiveAlphaMixin", "EpochTimingMixin", "MinEpochsMixin", "get_trainer", "trainer_mixins"]


def trainer_mixins(config: Config, model_class: type, extra_mixins: Sequence[type] = ()) -> tuple[type, ...]:
    """The mixins of ``model_class``'s trainer, outermost first (see the module docstring)."""
    from recbole_llm.distributed import DistributedEvalMixin, is_distributed
    from recbole_llm.oie.trainer import OIEMetricsMixin

    mixins: list[type] = [EpochTimingMixin]
    if is_distributed(config):
        mixins.append(DistributedEvalMixin)
    mixins += [*extra_mixins, *getattr(model_class, "trainer_mixins", ())]
    if config["min_epochs"]:
        mixins.append(MinEpochsMixin)
    if config["oie_metrics"] and model_class.type == ModelType.SEQUENTIAL:
        mixins.append(OIEMetricsMixin)
    return tuple(dict.fromkeys(mixins))


@cache
def _compose(name: str, bases: tuple[type, ...]) -> type:
    """One class per combination, so repeated runs get the identical trainer class."""
    mixins = ", ".join(b.__name__ for b in bases[:-1])
    return type(name, bases, {"__doc__": f"RecBole's {bases[-1].__name__} with {mixins}."})


def get_trainer(config: Config, model_class: type, extra_mixins: Sequence[type] = ()) -> type:
    """The trainer class for ``model_class``: RecBole's trainer for it, composed with the chosen mixins."""
    base = getattr(model_class, "trainer_base", None) or recbole_get_trainer(config["MODEL_TYPE"], config["model"])
    return _compose(f"{model_class.__name__}Trainer", (*trainer_mixins(config, model_class, extra_mixins), base))
