"""Quick start: train and evaluate any recbole-llm or RecBole model (RecBole's ``run_recbole``)."""

from __future__ import annotations

import logging
import resource
import sys
from collections.abc import Sequence
from logging import getLogger
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from recbole.utils import init_logger, init_seed, set_color

from recbole_llm.compat import hold_lightgcn_adjacency_in_csr, load_recbole_checkpoint
from recbole_llm.config import Config
from recbole_llm.data import create_dataset, data_preparation
from recbole_llm.oie.pretrain import apply_oie_init
from recbole_llm.trainer import get_trainer
from recbole_llm.trainer.snapshot import TrainingSnapshot
from recbole_llm.utils import get_model

if TYPE_CHECKING:
    from collections.abc import Callable

    from recbole.config import Config as RecBoleConfig
    from recbole.data.dataloader import AbstractDataLoader, KnowledgeBasedDataLoader
    from recbole.data.dataset import Dataset
    from recbole.model.abstract_recommender import AbstractRecommender
    from recbole.trainer.trainer import AbstractTrainer


def _peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this run: CUDA allocator peak on GPU, process peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_model(
    config: Config, train_data: AbstractDataLoader | KnowledgeBasedDataLoader, dataset: Dataset
) -> AbstractRecommender:
    """The model for ``config``, seeded like RecBole, built on the train split, then the model-build hooks.

    Hook: with ``oie_init`` set, the model is pre-trained on the synthetic ordered dataset (or the
    cached pre-training is reused) and its weights are transferred in (recbole_llm.oie.pretrain).
    """
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model_class = getattr(config, "model_class", None) or get_model(config["model"])
    model = model_class(config, train_data._dataset).to(config["device"])
    hold_lightgcn_adjacency_in_csr(model)  # RecBole's LightGCN on the CPU: same results, faster (compat.py)
    apply_oie_init(config, model, dataset)  # no-op unless `oie_init` is set
    return model


def log_dataset_check(
    config: Config, dataset: Dataset, splits: Sequence[AbstractDataLoader | KnowledgeBasedDataLoader]
) -> None:
    """Size and split trust numbers (unseen and dominant targets), as a warning when they pass the threshold."""
    from recbole_llm.data.inspect import dataset_summary

    summary = dataset_summary(config, dataset, splits)
    getLogger().log(logging.WARNING if "\n" in summary else logging.INFO, summary)


def build(
    config: Config, extra_mixins: Sequence[type] = ()
) -> tuple[
    Dataset,
    AbstractDataLoader | KnowledgeBasedDataLoader,
    AbstractDataLoader,
    AbstractDataLoader,
    AbstractRecommender,
    AbstractTrainer,
]:
    """Dataset, dataloaders, model and trainer for ``config`` (seeded like RecBole).

    ``extra_mixins``: trainer mixins added by the caller (e.g. Ray Tune's per-epoch reporting).
    """
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    getLogger().info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    log_dataset_check(config, dataset, (train_data, valid_data, test_data))
    model = build_model(config, train_data, dataset)
    getLogger().info(model)
    trainer = get_trainer(config, type(model), extra_mixins)(config, model)
    return dataset, train_data, valid_data, test_data, model, trainer


def _run_result(
    config: Config, trainer: AbstractTrainer, best_valid: tuple, test_result: dict, test_data, saved: bool
) -> dict[str, Any]:
    """What :func:`run_recbole_llm` returns (see there)."""
    from recbole_llm.data.inspect import consecutive_target_share

    best_valid_score, best_valid_result = best_valid
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "seed": config["seed"],
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": dict(best_valid_result or {}),
        "test_result": dict(test_result),
        "epoch_times": list(trainer.epoch_times),
        "peak_memory_mb": _peak_memory_mb(config["device"]),
        "saved_model_file": trainer.saved_model_file if saved else None,
        "test_consecutive_share": consecutive_target_share(config, test_data),
    }


def run_recbole_llm(
    model: str | type | None = None,
    dataset: str | None = None,
    config_file_list: Sequence[str] | None = None,
    config_dict: dict[str, Any] | None = None,
    saved: bool = True,
    cmd_args: Sequence[str] | None = None,
    callback_fn: Callable[[int, float], None] | None = None,
    trainer_mixins: Sequence[type] = (),
    snapshot_file: str | Path | None = None,
    snapshot_interval_s: float = 60.0,
) -> dict[str, Any]:
    """Train ``model`` on ``dataset``, evaluate the best checkpoint on the test split.

    Returns RecBole's result dict (``best_valid_score``, ``valid_score_bigger``,
    ``best_valid_result``, ``test_result``) plus ``epoch_times`` (seconds per training epoch),
    ``peak_memory_mb``, ``saved_model_file`` and ``test_consecutive_share`` (sequential data: the
    share of test targets whose id is the previous item's id + 1; None otherwise).
    ``snapshot_file``: the run keeps its training state there (``recbole_llm.trainer.snapshot``, at most
    every ``snapshot_interval_s`` seconds) and goes on from it when called again after a kill (the result
    then has ``resumed_at_epoch`` and ``resumed_seconds``; ``callback_fn`` sees the earlier validations first).
    """

    config = Config(model, dataset, config_file_list, config_dict, cmd_args=cmd_args)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)

    _, train_data, valid_data, test_data, _, trainer = build(config, trainer_mixins)
    if config["device"].type == "cuda":
        torch.cuda.reset_peak_memory_stats(config["device"])
    snapshot = None
    if snapshot_file is not None:
        snapshot = TrainingSnapshot(Path(snapshot_file), train_data, snapshot_interval_s)
        snapshot.restore(trainer, callback_fn, saved=saved)
        callback_fn = snapshot.callback(trainer, callback_fn)
    best_valid_score, best_valid_result = trainer.fit(
        train_data,
        valid_data,
        saved=saved,
        show_progress=config["show_progress"],
        callback_fn=callback_fn,
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    result = _run_result(config, trainer, (best_valid_score, best_valid_result), test_result, test_data, saved)
    if snapshot is not None:
        if snapshot.resumed_at_epoch is not None:
            result.update(resumed_at_epoch=snapshot.resumed_at_epoch, resumed_seconds=snapshot.resumed_seconds)
        snapshot.discard()
    return result


def objective_function(
    config_dict: dict[str, Any] | None = None,
    config_file_list: Sequence[str] | None = None,
    saved: bool = False,
) -> dict[str, Any]:
    """One training run for hyperparameter search: RecBole's objective, for our models too."""
    config = Config(config_dict=config_dict, config_file_list=config_file_list)
    init_seed(config["seed"], config["reproducibility"])
    logging.basicConfig(level=logging.ERROR)
    _, train_data, valid_data, test_data, _, trainer = build(config)
    best_valid_score, best_valid_result = trainer.fit(train_data, valid_data, verbose=False, saved=saved)
    test_result = trainer.evaluate(test_data, load_best_model=saved)
    return {
        "model": config["model"],
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
    }


def load_data_and_model(
    model_file: str,
) -> tuple[
    RecBoleConfig,
    AbstractRecommender,
    Dataset,
    AbstractDataLoader | KnowledgeBasedDataLoader,
    AbstractDataLoader,
    AbstractDataLoader,
]:
    """Rebuild config, dataset, dataloaders and the trained model from a RecBole checkpoint.

    Works for recbole-llm and RecBole models, under PyTorch's weights-only default.
    """
    checkpoint = load_recbole_checkpoint(model_file, map_location="cpu")
    config = checkpoint["config"]
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"], config["model_packages"])(config, train_data._dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data
