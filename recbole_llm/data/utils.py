"""``create_dataset`` / ``data_preparation``: RecBole's, plus recbole-llm's data hooks, all in this module.

The hooks of the data step, in order: named datasets are converted from raw files when their atomic
files are missing (:func:`create_dataset`); after RecBole's split, the POPK train loader replaces
RecBole's when ``train_neg_sample_args.distribution`` is popk; then the model class's
``prepare_data(config, train_dataset)`` runs when the model defines it (P4R attaches its item
profiles to the train dataset there), before the model is built from ``train_data._dataset``.
"""

from __future__ import annotations

import copy
import importlib
import logging
from typing import TYPE_CHECKING

from recbole.data import create_dataset as recbole_create_dataset
from recbole.data import data_preparation as recbole_data_preparation
from recbole.data.dataloader import TrainDataLoader
from recbole.data.utils import get_dataloader, save_split_dataloaders
from recbole.utils import ModelType

from recbole_llm.data import named_datasets
from recbole_llm.data.named_datasets import DatasetNotFoundError

if TYPE_CHECKING:
    from recbole.config import Config
    from recbole.data.dataloader import AbstractDataLoader, KnowledgeBasedDataLoader
    from recbole.data.dataset import Dataset

logger = logging.getLogger(__name__)


def missing_dataset_message(config: Config) -> str:
    """One line: where the dataset was looked for and how to provide it."""
    dataset = config["dataset"]
    names = named_datasets.known_dataset_names()
    named = f" Named datasets: {', '.join(names)} (set raw_data_path or RECBOLE_LLM_RAW_DATA)." if names else ""
    return (
        f"Dataset '{dataset}' not found: looked for {config['data_path']}/{dataset}.inter. "
        f"Put RecBole atomic files there (or set --data_path=<folder containing {dataset}/>), "
        f"or convert raw files with `python -m dataset_converters.<format>`.{named}"
    )


def create_dataset(config: Config) -> Dataset:
    """Create ``<Model>Dataset`` from ``recbole_llm.data.dataset`` if defined, else RecBole's.

    Named datasets are converted from raw files first when their atomic files are missing; a
    dataset that cannot be found raises :class:`DatasetNotFoundError` instead of RecBole's
    attempt to download it.
    """
    if not named_datasets.prepare_named_dataset(config):
        raise DatasetNotFoundError(missing_dataset_message(config))
    dataset_module = importlib.import_module("recbole_llm.data.dataset")
    dataset_class = getattr(dataset_module, config["model"] + "Dataset", None)
    if dataset_class is not None:
        return dataset_class(config)
    return recbole_create_dataset(config)


def _uniform_copy(config):
    """A copy of ``config`` whose train negatives are uniform (RecBole rejects popk); the original is untouched."""
    uniform = copy.copy(config)
    uniform.final_config_dict = dict(config.final_config_dict)
    uniform["train_neg_sample_args"] = {**config["train_neg_sample_args"], "distribution": "uniform"}
    uniform["save_dataloaders"] = False  # the POPK loaders are saved below, once they are in place
    return uniform


def _popk_data_preparation(config, dataset):
    """RecBole's split and valid/test loaders, with the POPK train sampler and loader swapped in."""
    from recbole_llm.sampler.popk import PopkSampler, PopkTrainDataLoader

    if config["MODEL_TYPE"] == ModelType.KNOWLEDGE or get_dataloader(config, "train") is not TrainDataLoader:
        raise ValueError(
            f"train_neg_sample_args.distribution 'popk' needs a model trained by RecBole's TrainDataLoader "
            f"with sampled negatives; {config['model']} uses {get_dataloader(config, 'train').__name__}."
        )
    train_data, valid_data, test_data = recbole_data_preparation(_uniform_copy(config), dataset)
    if isinstance(train_data, PopkTrainDataLoader):  # loaded from RecBole's saved dataloaders
        return train_data, valid_data, test_data
    train_dataset = train_data._dataset
    sampler = PopkSampler(
        train_dataset,
        config["train_neg_sample_args"],
        config["TIME_FIELD"],
        show_progress=bool(config["show_progress"]),
    )
    train_data = PopkTrainDataLoader(config, train_dataset, sampler, shuffle=config["shuffle"])
    if config["save_dataloaders"]:
        save_split_dataloaders(config, dataloaders=(train_data, valid_data, test_data))
    logger.info("POPK train sampler: %s", {k: v for k, v in sampler.args.items() if k != "distribution"})
    return train_data, valid_data, test_data


def data_preparation(
    config: Config, dataset: Dataset
) -> tuple[AbstractDataLoader | KnowledgeBasedDataLoader, AbstractDataLoader, AbstractDataLoader]:
    """Split and build the train/valid/test dataloaders (RecBole's), then run the data hooks.

    A model class with a ``build_dataloaders(config, dataset)`` classmethod builds its own loaders
    instead (news models: impressions); ``train_neg_sample_args: {distribution: popk, ...}`` installs
    the POPK train sampler; a model class with a ``prepare_data(config, train_dataset)`` classmethod
    gets to prepare its side data.
    """
    from recbole_llm.sampler import is_popk

    model_class = getattr(config, "model_class", None)
    own_loaders = getattr(model_class, "build_dataloaders", None)
    if callable(own_loaders):
        return own_loaders(config, dataset)
    if is_popk(config["train_neg_sample_args"]):
        train_data, valid_data, test_data = _popk_data_preparation(config, dataset)
    else:
        train_data, valid_data, test_data = recbole_data_preparation(config, dataset)
    prepare = getattr(model_class, "prepare_data", None)
    if callable(prepare):
        prepare(config, train_data._dataset)
    return train_data, valid_data, test_data
