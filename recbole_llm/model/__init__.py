"""recbole-llm models, one per file, exported by type from ``recbole_llm/model/<type>/__init__.py``."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], type], Callable[[], list[str]]]:
    """A type package's ``__getattr__`` and ``__dir__``: each class is imported from its file when first asked for.

    Looking up RecBole's own LightGCN must not import PyG and transformers for P4R (seconds per process,
    in every benchmark job and test); ``from recbole_llm.model.general_recommender import P4R`` still works.
    """

    def __getattr__(name: str) -> type:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
