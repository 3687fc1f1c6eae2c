"""Configuration checks run at the entry point, before any data is loaded.

A configuration mistake (a wrong type, a value out of range, a name not among its choices, an
unknown key, model or dataset, a missing or malformed config file) raises :class:`ConfigError`
whose message is one line naming the key, the value and what is allowed; the command line turns it
into exit status 2. The rules are data (``properties/schema.yaml``), not code per key: a model
class may add its own rules with a ``config_schema`` class attribute of the same form.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from recbole_llm.utils import properties_dir

if TYPE_CHECKING:
    from recbole.config import Config as RecBoleConfig

    from recbole_llm.config import Config
    from recbole_llm.stock.config import StockConfig

_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "int": ((int,), "an integer"),
    "float": ((int, float), "a number"),
    "bool": ((bool,), "true or false"),
    "str": ((str,), "a text"),
    "list": ((list, tuple), "a list"),
    "dict": ((dict,), "a mapping"),
}


class ConfigError(ValueError):
    """A configuration mistake, reported as one line (key, value, what is allowed)."""


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """``properties/schema.yaml``: ``{"keys": {key: rule}, "models": {Model: {key: rule}}}``."""
    return yaml.safe_load((properties_dir() / "schema.yaml").read_text(encoding="utf-8")) or {}


def rules_for(model_class: type | None) -> dict[str, dict[str, Any]]:
    """The rules for a run of ``model_class``: shared rules, then each class's rules in its MRO (base first)."""
    schema = load_schema()
    rules = dict(schema.get("keys") or {})
    for cls in reversed(getattr(model_class, "__mro__", ())):
        rules.update((schema.get("models") or {}).get(cls.__name__) or {})
        rules.update(vars(cls).get("config_schema") or {})
    return rules


def _allowed(rule: dict[str, Any]) -> str:
    parts = []
    if "type" in rule:
        parts.append(_TYPES[rule["type"]][1])
    if "choices" in rule:
        parts.append("one of " + ", ".join(str(c) for c in rule["choices"]))
    for bound, sign in (("min", ">="), ("min_exclusive", ">"), ("max", "<=")):
        if bound in rule:
            parts.append(f"{sign} {rule[bound]}")
    return " ".join(parts) + (" (or None)" if rule.get("nullable") else "")


def _breaks(rule: dict[str, Any], value: Any) -> bool:
    if value is None:
        return not rule.get("nullable", False) and ("type" in rule or "choices" in rule)
    if "type" in rule:
        types = _TYPES[rule["type"]][0]
        if not isinstance(value, types) or (isinstance(value, bool) and rule["type"] != "bool"):
            return True
    if "choices" in rule:
        folded = {str(c).lower() for c in rule["choices"]}
        if not isinstance(value, (str, int, float, bool)) or str(value).lower() not in folded:
            return True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if ("min" in rule and value < rule["min"]) or ("max" in rule and value > rule["max"]):
            return True
        if "min_exclusive" in rule and value <= rule["min_exclusive"]:
            return True
    return False


def check_value(key: str, value: Any, rule: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` when ``value`` breaks ``rule``."""
    if _breaks(rule, value):
        raise ConfigError(f"{key} = {value!r} is not allowed: expected {_allowed(rule)}.")


def _lookup(values: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    head, _, rest = dotted.partition(".")
    if not isinstance(values, dict) or head not in values:
        return False, None
    return (True, values[head]) if not rest else _lookup(values[head], rest)


def check_config_values(config: RecBoleConfig | StockConfig, model_class: type | None = None) -> None:
    """Check every rule of the run's schema, then the types of user values against their yaml defaults."""
    final = config.final_config_dict
    for key, rule in rules_for(model_class or getattr(config, "model_class", None)).items():
        present, value = _lookup(final, key)
        if present:
            check_value(key, value, rule)
    for key, value in config.external_config_dict.items():
        default = config.internal_config_dict.get(key)
        if isinstance(value, str) and isinstance(default, (bool, int, float)):
            kind = "bool" if isinstance(default, bool) else "float" if isinstance(default, float) else "int"
            check_value(key, value, {"type": kind})


def check_config_files(config_files: Sequence[str] | None) -> None:
    """Each config file exists and holds a yaml mapping."""
    for name in config_files or ():
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"config file '{name}' not found (--config_files takes space-separated yaml paths).")
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "malformed"
            raise ConfigError(f"config file '{name}' is not valid YAML{where}: {problem}.") from exc
        if values is not None and not isinstance(values, dict):
            raise ConfigError(f"config file '{name}' must hold key: value pairs, not a {type(values).__name__}.")


@lru_cache(maxsize=1)
def _yaml_keys() -> frozenset[str]:
    """Every key of every yaml default (RecBole's and ours) and every key RecBole lists as a parameter."""
    import recbole
    from recbole.utils import argument_list

    keys: set[str] = set(load_schema().get("keys") or {})
    for folder in (Path(recbole.__file__).parent / "properties", properties_dir()):
        for path in folder.rglob("*.yaml"):
            if path.parent.name == "search" or path.name == "schema.yaml" or "stock" in path.relative_to(folder).parts:
                continue
            try:
                keys.update(str(k) for k in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}))
            except (yaml.YAMLError, AttributeError, TypeError):
                continue
    for name in ("general_arguments", "training_arguments", "evaluation_arguments", "dataset_arguments"):
        keys.update(getattr(argument_list, name))
    return frozenset(keys)


def check_override_keys(overrides: Sequence[str], config: RecBoleConfig) -> None:
    """Every ``--key=value`` override names a key some yaml default, RecBole or this run's config knows."""
    given_only_here = set(config.external_config_dict) - set(config.file_config_dict)
    known = set(_yaml_keys()) | set(config.internal_config_dict) | (set(config.final_config_dict) - given_only_here)
    for arg in overrides:
        key = arg[2:].split("=", 1)[0]
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" Did you mean --{close[0]}?" if close else ""
            raise ConfigError(f"unknown option --{key}: no yaml default or RecBole setting has this key.{hint}")


def check_dataset(config: RecBoleConfig) -> None:
    """The dataset's atomic files exist, or it is a named dataset recbole-llm can convert."""
    from recbole_llm.data.named_datasets import atomic_files_present, known_dataset_names
    from recbole_llm.data.utils import missing_dataset_message

    dataset = config["dataset"]
    if dataset in known_dataset_names() or atomic_files_present(config["data_path"], dataset, config):
        return
    raise ConfigError(missing_dataset_message(config))


def validate_run(
    model: str | type, dataset: str | None, config_files: Sequence[str] | None, overrides: Sequence[str] = ()
) -> Config:
    """Build and check the config of one run; raise :class:`ConfigError` (one line) on any mistake.

    An import failure inside a model module is not a configuration mistake: it propagates as
    :class:`~recbole_llm.utils.ModelImportError`.
    """
    from recbole_llm.config import Config
    from recbole_llm.utils import UnknownModelError

    check_config_files(config_files)
    try:
        config = Config(model, dataset, config_files, cmd_args=list(overrides))
    except ImportError:
        raise
    except (UnknownModelError, ConfigError) as exc:
        raise ConfigError(str(exc)) from exc
    except (ValueError, KeyError, TypeError, SyntaxError) as exc:
        raise ConfigError(f"invalid configuration: {str(exc).strip(chr(34) + chr(39))}") from exc
    check_override_keys(overrides, config)
    check_config_values(config)
    check_dataset(config)
    return config
