"""Model lookup: recbole-llm's model packages, extra model packages, then RecBole (RecBole-GNN's pattern).

Every recbole-llm model class is imported in ``recbole_llm/model/<type>/__init__.py``, so a model is
found by importing those packages and reading the attribute. Extra model packages (a research
model living outside this repository) are listed in the config key ``model_packages`` or in the
environment variable ``RECBOLE_LLM_MODEL_PATH`` (``os.pathsep``-separated). Each entry is either an
importable package name (``my_lab.models``) or a folder of model files (``/path/to/models``); in both
cases the model ``Foo`` is the class ``Foo`` of the module ``foo`` (RecBole's file naming) or of the
package itself. Its yaml defaults sit beside the model file (``foo.py`` + ``Foo.yaml``) or in a
``properties/model/`` folder next to it (see :func:`model_yaml_files`).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import os
import pkgutil
import sys
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from types import ModuleType

from recbole.utils import get_model as recbole_get_model

#: recbole-llm's model packages, one per RecBole model type folder.
MODEL_SUBMODULES = ("general_recommender", "sequential_recommender", "news_recommender")
#: RecBole's model type folders (for closest-name suggestions).
RECBOLE_MODEL_SUBMODULES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
    "exlib_recommender",
)
#: Environment variable listing extra model packages or folders.
MODEL_PATH_ENV = "RECBOLE_LLM_MODEL_PATH"


class UnknownModelError(ValueError):
    """Raised for a model name found neither in recbole-llm, an extra model package, nor RecBole."""


class ModelImportError(ImportError):
    """A model package or module of recbole-llm (or an extra package) failed to import."""


def properties_dir() -> Path:
    """The yaml defaults, prompts and search spaces shipped inside the package (``recbole_llm/properties``)."""
    folder = Path(__file__).resolve().parent / "properties"
    if not folder.is_dir():
        raise FileNotFoundError(f"recbole-llm properties folder missing: {folder} (broken installation).")
    return folder


def _import(module_name: str) -> ModuleType:
    """Import one of our model modules; its own ImportError is reported as such, naming the module."""
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelImportError(f"Model module '{module_name}' failed to import: {exc}") from exc


def _folder_package(folder: Path) -> str:
    """Make a folder of model files importable as a package named after the folder; return that name."""
    folder = folder.resolve()
    parent = str(folder.parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    return folder.name


def extra_model_packages(config_packages: Iterable[str] | str | None = None) -> list[str]:
    """Importable package names of the extra model packages (config ``model_packages``, then the env var)."""
    entries: list[str] = []
    if isinstance(config_packages, str):
        config_packages = [config_packages]
    entries += [str(e) for e in config_packages or []]
    entries += [e for e in os.environ.get(MODEL_PATH_ENV, "").split(os.pathsep) if e]
    return [_folder_package(Path(e)) if os.path.isdir(e) else e for e in entries]


def _model_packages(extra: Sequence[str]) -> list[str]:
    return [f"recbole_llm.model.{sub}" for sub in MODEL_SUBMODULES] + list(extra)


def _find_in_package(package_name: str, model_name: str) -> type | None:
    package = _import(package_name)
    found = getattr(package, model_name, None)
    if isinstance(found, type):
        return found
    module_name = f"{package_name}.{model_name.lower()}"
    if hasattr(package, "__path__") and importlib.util.find_spec(module_name) is not None:
        found = getattr(_import(module_name), model_name, None)
        if isinstance(found, type):
            return found
    return None


def get_model(model_name: str, model_packages: Iterable[str] | str | None = None) -> type:
    """Return the model class for ``model_name``: ours first, then extra model packages, then RecBole's.

    An unknown name raises :class:`UnknownModelError` listing the closest known names; an import
    failure inside one of our (or an extra) model modules raises :class:`ModelImportError`.
    """
    for package_name in _model_packages(extra_model_packages(model_packages)):
        found = _find_in_package(package_name, model_name)
        if found is not None:
            return found
    try:
        return recbole_get_model(model_name)
    except (ValueError, AttributeError, ImportError):
        pass  # not RecBole's either (ImportError: exlib models need lightgbm/xgboost)
    known = available_models(tuple(extra_model_packages(model_packages)))
    close = difflib.get_close_matches(model_name, known, n=5, cutoff=0.4)
    if not close:
        lowered = {name.lower(): name for name in known}
        close = [lowered[n] for n in difflib.get_close_matches(model_name.lower(), list(lowered), n=5, cutoff=0.4)]
    hint = f" Closest names: {', '.join(close)}." if close else ""
    raise UnknownModelError(f"Unknown model '{model_name}': not a recbole-llm or RecBole model.{hint}")


@cache
def available_models(extra: tuple[str, ...] = ()) -> list[str]:
    """Every model name we can resolve (ours, extra packages', RecBole's), for suggestions."""
    names: list[str] = []
    for package_name in _model_packages(extra):
        package = _import(package_name)
        names += list(getattr(package, "__all__", []))  # our type packages export their classes lazily
        names += [n for n, v in vars(package).items() if inspect.isclass(v) and hasattr(v, "calculate_loss")]
        for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
            names.append(info.name)
    for sub in RECBOLE_MODEL_SUBMODULES:
        try:
            package = importlib.import_module(f"recbole.model.{sub}")
        except ImportError:
            continue
        names += [n for n, v in vars(package).items() if inspect.isclass(v)]
    return sorted(set(names))


def model_yaml_files(model_class: type) -> list[Path]:
    """The yaml defaults of every non-RecBole class in ``model_class``'s MRO, base classes first.

    For each class: ``properties/model/<Class>.yaml`` of recbole-llm (our own models), or, for a
    model of an extra package, ``<Class>.yaml`` beside its module or in ``properties/model/`` next to it.
    """
    files: list[Path] = []
    for cls in reversed(model_class.__mro__):
        module = cls.__module__
        if module.split(".")[0] in ("builtins", "recbole", "torch"):
            continue
        candidates = [properties_dir() / "model" / f"{cls.__name__}.yaml"]
        source = getattr(sys.modules.get(module), "__file__", None)
        if source and not module.startswith("recbole_llm."):
            here = Path(source).resolve().parent
            candidates = [here / f"{cls.__name__}.yaml", here / "properties" / "model" / f"{cls.__name__}.yaml"]
        files += [path for path in candidates if path.is_file()][:1]
    return files


def default_workdir_env() -> None:
    """Keep tokenizers/transformers quiet and offline-friendly in child processes."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
