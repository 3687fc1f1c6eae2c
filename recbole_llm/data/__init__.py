"""Dataset creation, named datasets and data preparation with recbole-llm's hooks."""

from recbole_llm.data.utils import DatasetNotFoundError, create_dataset, data_preparation

__all__ = ["DatasetNotFoundError", "create_dataset", "data_preparation"]
