"""Model and trainer lookup: recbole-llm first, RecBole second (RecBole-GNN's pattern)."""
from __future__ import annotations

import difflib
import importlib
import os
import pkgutil
import sys
from functools import lru_cache
from pathlib import Path

from recbole.utils import ModelType
from recbole.utils import get_model as recbole_get_model
from recbole.utils import get_trainer as recbole_get_trainer

MODEL_SUBMODULES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
    "exlib_recommender",
)


class UnknownModelError(ValueError):
    """Raised for a model name found neither in recbole-llm nor in RecBole."""


def properties_dir() -> Path:
    """The folder holding our yaml defaults: the source tree's, else the installed data files."""
    source = Path(__file__).resolve().parent.parent / "properties"
    if source.is_dir():
        return source
    installed = Path(sys.prefix) / "share" / "recbole_llm" / "properties"
    if installed.is_dir():
        return installed
    raise FileNotFoundError(f"recbole-llm properties not found in {source} or {installed}")


def _module_names(package: str) -> list[str]:
    try:
        pkg = importlib.import_module(package)
    except ImportError:
        return []
    return [m.name for m in pkgutil.iter_modules(pkg.__path__)]


@lru_cache(maxsize=None)
def available_models() -> dict[str, str]:
    """Every model name we can resolve, mapped to 'recbole_llm' or 'recbole'."""
    names: dict[str, str] = {}
    for origin in ("recbole", "recbole_llm"):
        for sub in MODEL_SUBMODULES:
            package = f"{origin}.model.{sub}"
            for module_name in _module_names(package):
                try:
                    module = importlib.import_module(f"{package}.{module_name}")
                except ImportError:
                    continue
                for attr in dir(module):
                    if attr.lower() == module_name and isinstance(getattr(module, attr), type):
                        names[attr] = origin
    return names


def get_model(model_name: str) -> type:
    """Return the model class for ``model_name``: ours first, then RecBole's.

    An unknown name raises :class:`UnknownModelError` listing the closest known names.
    """
    file_name = model_name.lower()
    for sub in MODEL_SUBMODULES:
        module_path = f"recbole_llm.model.{sub}.{file_name}"
        if importlib.util.find_spec(f"recbole_llm.model.{sub}") and importlib.util.find_spec(module_path):
            module = importlib.import_module(module_path)
            if hasattr(module, model_name):
                return getattr(module, model_name)
    try:
        return recbole_get_model(model_name)
    except (ValueError, AttributeError, ImportError):
        pass  # not RecBole's either (ImportError: exlib models need lightgbm/xgboost)
    close = difflib.get_close_matches(model_name, list(available_models()), n=5, cutoff=0.4)
    if not close:
        lowered = {name.lower(): name for name in available_models()}
        close = [lowered[n] for n in difflib.get_close_matches(file_name, list(lowered), n=5, cutoff=0.4)]
    hint = f" Closest names: {', '.join(close)}." if close else ""
    raise UnknownModelError(
        f"Unknown model '{model_name}': not a recbole-llm or RecBole model.{hint}"
    )


def get_trainer(model_type: ModelType, model_name: str) -> type:
    """Return ``<Model>Trainer`` from ``recbole_llm/trainer/<model>.py`` if it exists, else RecBole's."""
    module_path = f"recbole_llm.trainer.{model_name.lower()}"
    if importlib.util.find_spec(module_path):
        trainer = getattr(importlib.import_module(module_path), model_name + "Trainer", None)
        if trainer is not None:
            return trainer
    return recbole_get_trainer(model_type, model_name)


def default_workdir_env() -> None:
    """Keep tokenizers/transformers quiet and offline-friendly in child processes."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
