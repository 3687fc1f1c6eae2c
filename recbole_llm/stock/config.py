"""The configuration of a stock run: yaml defaults in ``properties/stock/``, then the user's files and flags.

Precedence, lowest first (RecBole's order): ``properties/stock/overall.yaml``; the yaml of each stock
model class in the model's MRO, base first (``properties/stock/<Model>.yaml``);
``properties/stock/dataset/<dataset>.yaml``; the user's config files < ``config_dict`` < command-line
``--key=value`` (read with RecBole's yaml loader, so ``--split=[30,15,15]`` is a list). A key that no
default has is refused (one line, with the closest known key); values are checked against the
project's rules (``properties/schema.yaml``, models ``StockModel`` and below) by
:func:`recbole_llm.validation.check_config_values`, so a stock mistake reads like any other.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from recbole.config import Config as RecBoleConfig

from recbole_llm.utils import properties_dir
from recbole_llm.validation import ConfigError, check_config_files, check_config_values


def stock_properties() -> Path:
    return properties_dir() / "stock"


def known_stock_datasets() -> list[str]:
    return sorted(p.stem for p in (stock_properties() / "dataset").glob("*.yaml"))


def get_stock_model(name: str) -> type:
    """The stock model class called ``name`` (one line naming the known ones otherwise)."""
    from recbole_llm.stock.models import STOCK_MODELS

    if name not in STOCK_MODELS:
        close = difflib.get_close_matches(name, list(STOCK_MODELS), n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise ConfigError(f"unknown stock model '{name}' (known: {', '.join(STOCK_MODELS)}).{hint}")
    return STOCK_MODELS[name]


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    loader = RecBoleConfig._build_yaml_loader(None)  # reads 1e-3 as a float, like RecBole's config files
    return yaml.load(path.read_text(encoding="utf-8"), Loader=loader) or {}


def parse_flag(arg: str) -> tuple[str, Any]:
    """``--key=value`` -> ``(key, value)``, the value read as yaml (numbers, lists, ~)."""
    if not arg.startswith("--") or "=" not in arg:
        raise ConfigError(f"unrecognised argument {arg}: config overrides take the form --key=value")
    key, text = arg[2:].split("=", 1)
    try:
        return key, yaml.load(text, Loader=RecBoleConfig._build_yaml_loader(None)) if text else None
    except yaml.YAMLError:
        return key, text


class StockConfig:
    """Merged settings of one stock run; ``config[key]`` raises ``KeyError`` for a key no default has."""

    def __init__(
        self,
        model: str,
        dataset: str | None = None,
        config_file_list: Sequence[str] | None = None,
        config_dict: dict[str, Any] | None = None,
        cmd_args: Sequence[str] | None = None,
    ) -> None:
        self.model_class = get_stock_model(model)
        check_config_files(config_file_list)
        self.file_config_dict: dict[str, Any] = {}
        for name in config_file_list or ():
            self.file_config_dict.update(_read_yaml(Path(name)))
        self.external_config_dict = {**self.file_config_dict, **dict(config_dict or {})}
        self.external_config_dict.update(parse_flag(arg) for arg in cmd_args or ())
        self.external_config_dict.pop("model", None)  # a best.yaml names them; the command line decides
        dataset = dataset or self.external_config_dict.pop("dataset", None) or "nasdaq"
        self.external_config_dict.pop("dataset", None)
        self.internal_config_dict: dict[str, Any] = _read_yaml(stock_properties() / "overall.yaml")
        for cls in reversed(self.model_class.__mro__):
            self.internal_config_dict.update(_read_yaml(stock_properties() / f"{cls.__name__}.yaml"))
        self.internal_config_dict.update(_read_yaml(stock_properties() / "dataset" / f"{dataset}.yaml"))
        self._check_keys()
        self.final_config_dict = {**self.internal_config_dict, **self.external_config_dict}
        self.final_config_dict.update(model=model, dataset=dataset)
        if self.final_config_dict.get("panel_path") is None:
            raise ConfigError(
                f"unknown stock dataset '{dataset}' (known: {', '.join(known_stock_datasets())}); for your own data "
                "pass --panel_path=<file.csv> (columns date,ticker,open,high,low,close,volume) --panel_format=csv"
            )
        check_config_values(self, self.model_class)
        self._check_metric_names()

    def _check_metric_names(self) -> None:
        final = self.final_config_dict
        names = ["ic", "rank_ic", "icir", f"prec@{final['precision_at']}", f"sharpe@{final['portfolio_size']}"]
        for key in ("valid_metric", "ensemble_metric"):
            allowed = names + (["loss"] if key == "valid_metric" else [])
            if key in final and final[key] not in allowed:
                raise ConfigError(f"{key} = {final[key]!r} is not allowed: expected one of {', '.join(allowed)}.")

    def _check_keys(self) -> None:
        known = set(self.internal_config_dict)
        for key in self.external_config_dict:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f" Did you mean --{close[0]}?" if close else ""
                raise ConfigError(f"unknown option --{key}: no stock default (properties/stock/) has this key.{hint}")

    def __getitem__(self, key: str) -> Any:
        if key not in self.final_config_dict:
            close = difflib.get_close_matches(key, list(self.final_config_dict), n=3)
            raise KeyError(f"Unknown setting '{key}'. Closest: {', '.join(close) or 'none'}.")
        return self.final_config_dict[key]

    def __contains__(self, key: str) -> bool:
        return key in self.final_config_dict

    def __setitem__(self, key: str, value: Any) -> None:
        self.final_config_dict[key] = value

    def __repr__(self) -> str:
        return "\n".join(f"{k}: {v!r}" for k, v in sorted(self.final_config_dict.items()))
