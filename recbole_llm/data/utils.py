"""``create_dataset`` / ``data_preparation`` with recbole-llm's lookups, falling back to RecBole."""
from __future__ import annotations

import importlib

from recbole.data import create_dataset as recbole_create_dataset
from recbole.data import data_preparation as recbole_data_preparation

from recbole_llm.data import named_datasets
from recbole_llm.data.named_datasets import DatasetNotFoundError


def _missing_dataset_message(config) -> str:
    dataset = config["dataset"]
    names = named_datasets.known_dataset_names()
    named = f" Named datasets: {', '.join(names)} (set raw_data_path or RECBOLE_LLM_RAW_DATA)." if names else ""
    return (
        f"Dataset '{dataset}' not found: looked for {config['data_path']}/{dataset}.inter. "
        f"Put RecBole atomic files there (or set --data_path=<folder containing {dataset}/>), "
        f"or convert raw files with `python -m dataset_converters.<format>`.{named}"
    )


def create_dataset(config):
    """Create ``<Model>Dataset`` from ``recbole_llm.data.dataset`` if defined, else RecBole's.

    Named datasets are converted from raw files first when their atomic files are missing; a
    dataset that cannot be found raises :class:`DatasetNotFoundError` instead of RecBole's
    attempt to download it.
    """
    if not named_datasets.prepare_named_dataset(config):
        raise DatasetNotFoundError(_missing_dataset_message(config))
    dataset_module = importlib.import_module("recbole_llm.data.dataset")
    dataset_class = getattr(dataset_module, config["model"] + "Dataset", None)
    if dataset_class is not None:
        return dataset_class(config)
    return recbole_create_dataset(config)


def data_preparation(config, dataset):
    """Split and build the train/valid/test dataloaders (RecBole's, plus our sampler hooks).

    ``train_neg_sample_args: {distribution: popk, ...}`` installs the POPK train sampler.
    """
    from recbole_llm.sampler import is_popk, popk_data_preparation

    if is_popk(config["train_neg_sample_args"]):
        return popk_data_preparation(config, dataset)
    return recbole_data_preparation(config, dataset)
