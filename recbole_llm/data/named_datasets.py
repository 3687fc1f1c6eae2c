"""Named datasets: atomic files in ``data_path`` if present, else converted from raw files.

(Foundation stub: the data issue adds the registry of named datasets and their converters.)
"""
from __future__ import annotations

from pathlib import Path


def atomic_files_present(data_path: str | Path, dataset: str, config=None) -> bool:
    """True when RecBole will find this dataset's interactions in ``data_path``."""
    folder = Path(data_path)
    if (folder / f"{dataset}.inter").is_file():
        return True
    benchmark = config["benchmark_filename"] if config is not None else None
    if benchmark:
        return all((folder / f"{dataset}.{part}.inter").is_file() for part in benchmark)
    return False


def prepare_named_dataset(config) -> bool:
    """Make the atomic files of a named dataset appear in ``config['data_path']``.

    Returns True when the files are present afterwards.
    """
    return atomic_files_present(config["data_path"], config["dataset"], config)


def known_dataset_names() -> list[str]:
    return []
