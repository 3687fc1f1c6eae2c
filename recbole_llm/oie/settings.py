"""OIE settings: ``properties/oie.yaml`` defaults, overridden by any value set in the RecBole config."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import yaml

from recbole_llm.utils import properties_dir

TRANSFER_MODES = ("item_emb", "whole")


@lru_cache(maxsize=1)
def oie_defaults() -> dict[str, Any]:
    with open(properties_dir() / "oie.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def oie_setting(config, key: str) -> Any:
    """``config[key]`` when set, else the default from ``properties/oie.yaml``."""
    if key not in oie_defaults():
        raise KeyError(f"Unknown OIE setting '{key}'. Known: {', '.join(sorted(oie_defaults()))}.")
    value = config[key]
    return oie_defaults()[key] if value is None else value


def oie_init_mode(config) -> str | None:
    """The transfer mode, validated: None (vanilla), 'item_emb' or 'whole'."""
    mode = oie_setting(config, "oie_init")
    if mode in (None, False, "", "none", "None", "vanilla"):
        return None
    if mode not in TRANSFER_MODES:
        raise ValueError(f"oie_init must be one of {TRANSFER_MODES} or empty, got {mode!r}.")
    return mode
