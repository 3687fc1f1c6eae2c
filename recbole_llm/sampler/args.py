"""Validation and defaults of the POPK keys inside ``train_neg_sample_args``."""

from __future__ import annotations

import difflib
from functools import lru_cache
from typing import Any

import yaml

from recbole_llm.utils import properties_dir
from recbole_llm.validation import ConfigError, load_schema

#: RecBole's own keys of ``train_neg_sample_args`` (filled by RecBole's Config when missing).
RECBOLE_NEG_SAMPLE_KEYS = ("distribution", "sample_num", "alpha", "dynamic", "candidate_num")


@lru_cache(maxsize=1)
def popk_defaults() -> dict[str, Any]:
    """Every key of ``train_neg_sample_args`` for popk and its default (``properties/sampler/popk.yaml``)."""
    return yaml.safe_load((properties_dir() / "sampler" / "popk.yaml").read_text(encoding="utf-8")) or {}


def _choices() -> dict[str, tuple[str, ...]]:
    """The POPK keys with a fixed set of names, from ``properties/schema.yaml``."""
    rules = load_schema().get("keys") or {}
    prefix = "train_neg_sample_args."
    return {k[len(prefix) :]: tuple(r["choices"]) for k, r in rules.items() if k.startswith(prefix) and "choices" in r}


class PopkConfigError(ConfigError):
    """A POPK key of ``train_neg_sample_args`` is unknown or has a bad value."""


def is_popk(neg_sample_args: Any) -> bool:
    """True when ``train_neg_sample_args`` selects the POPK sampler."""
    return isinstance(neg_sample_args, dict) and neg_sample_args.get("distribution") == "popk"


def _positive_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < minimum:
        raise PopkConfigError(f"train_neg_sample_args.{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def normalize_popk_args(neg_sample_args: dict[str, Any]) -> dict[str, Any]:
    """Return ``train_neg_sample_args`` with POPK defaults filled in, or raise :class:`PopkConfigError`.

    Unknown keys, bad choices and impossible combinations (``replace`` with ``popk > sample_num``,
    dynamic sampling) are reported with the key name and the allowed values.
    """
    allowed = set(RECBOLE_NEG_SAMPLE_KEYS) | set(popk_defaults())
    for key in neg_sample_args:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise PopkConfigError(
                f"Unknown key '{key}' in train_neg_sample_args for distribution 'popk'.{hint} "
                f"Allowed keys: {', '.join(sorted(allowed))}."
            )
    args = {**popk_defaults(), **neg_sample_args}
    for name, choices in _choices().items():
        if args[name] not in choices:
            raise PopkConfigError(
                f"train_neg_sample_args.{name} = {args[name]!r} is not allowed; choose one of {', '.join(choices)}."
            )
    args["popk"] = _positive_int("popk", args["popk"], 1)
    args["sample_num"] = _positive_int("sample_num", args["sample_num"], 0 if args["popk_mode"] == "add" else 1)
    args["popk_window"] = _positive_int("popk_window", args["popk_window"], 1)
    bucket = args["popk_bucket"]
    if isinstance(bucket, bool) or not isinstance(bucket, (int, float)) or bucket <= 0:
        raise PopkConfigError(
            f"train_neg_sample_args.popk_bucket must be a positive number (time units), got {bucket!r}."
        )
    if not isinstance(args["popk_leak_free"], bool):
        raise PopkConfigError(
            f"train_neg_sample_args.popk_leak_free must be true or false, got {args['popk_leak_free']!r}."
        )
    if args["popk_mode"] == "replace" and args["popk"] > args["sample_num"]:
        raise PopkConfigError(
            f"train_neg_sample_args: popk_mode 'replace' replaces popk of the sample_num negatives, so popk "
            f"({args['popk']}) must be <= sample_num ({args['sample_num']}); use popk_mode 'add' otherwise."
        )
    if args["dynamic"]:
        raise PopkConfigError("train_neg_sample_args.dynamic must be False with distribution 'popk'.")
    return args


def negatives_per_positive(args: dict[str, Any]) -> int:
    """Number of negatives each positive gets: k + popk (``add``) or k (``replace``)."""
    return args["sample_num"] + args["popk"] if args["popk_mode"] == "add" else args["sample_num"]
