"""Search spaces: reading the yaml, checking it against the model's config, turning it into Ray domains.

Everything here runs before Ray starts, so a mistake in a space costs seconds, not a cluster.
"""

from __future__ import annotations

import contextlib
import difflib
import itertools
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml
from recbole.config import Config as RecBoleConfig

from recbole_llm.config import PLACEMENT_KEYS
from recbole_llm.utils import UnknownModelError

if TYPE_CHECKING:
    from recbole_llm.config import Config

# Distribution name -> number of arguments it takes (None: a non-empty list of values).
DISTRIBUTIONS: dict[str, int | None] = {
    "choice": None,
    "grid": None,
    "uniform": 2,
    "quniform": 3,
    "loguniform": 2,
    "randint": 2,
}
# Keys a search may not vary: they select what is run and where, not how it is trained.
NOT_SEARCHABLE = PLACEMENT_KEYS | {
    "model",
    "dataset",
    "valid_metric",
    "metrics",
    "eval_args",
}


class SearchSpaceError(ValueError):
    """The search space (or a tuning option) is invalid; raised before any trial starts."""


class SearchSpace(dict):
    """``{key: (distribution, args)}`` plus ``fixed``: constant settings shipped with the space."""

    def __init__(self, distributions: Mapping[str, tuple[str, Any]], fixed: Mapping[str, Any] | None = None) -> None:
        super().__init__(distributions)
        self.fixed: dict[str, Any] = dict(fixed or {})


def plain(value: Any) -> Any:
    """numpy scalars (what Ray samples) as Python values, so configs and yaml stay clean."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_numeric_args(where: str, name: str, args: Any) -> None:
    """Bounds of ``uniform``/``quniform``/``loguniform``/``randint``: numbers, low < high, and per-kind rules."""
    arity = DISTRIBUTIONS[name]
    if not isinstance(args, list) or len(args) != arity or not all(_is_number(a) for a in args):
        shape = "[low, high, q]" if arity == 3 else "[low, high]"
        raise SearchSpaceError(f"{where}: '{name}' needs {shape} numbers, got {args!r}")
    low, high = args[0], args[1]
    if not low < high:
        raise SearchSpaceError(f"{where}: '{name}' needs low < high, got {args!r}")
    if name == "loguniform" and low <= 0:
        raise SearchSpaceError(f"{where}: 'loguniform' needs 0 < low, got {args!r}")
    if name == "randint" and not all(isinstance(a, (int, np.integer)) for a in args):
        raise SearchSpaceError(f"{where}: 'randint' needs integer bounds [low, high) , got {args!r}")
    if name == "quniform" and not args[2] > 0:
        raise SearchSpaceError(f"{where}: 'quniform' needs q > 0, got {args!r}")


def _check_distribution(key: str, spec: Any) -> tuple[str, Any]:
    """Validate one ``key: {distribution: args}`` entry and return ``(distribution, args)``."""
    where = f"search space key '{key}'"
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise SearchSpaceError(
            f"{where}: expected one distribution such as {{choice: [..]}} or {{loguniform: [low, high]}}, "
            f"got {spec!r}. Fixed values belong in --config_files or --{key}=value."
        )
    ((name, args),) = spec.items()
    if name not in DISTRIBUTIONS:
        close = difflib.get_close_matches(str(name), list(DISTRIBUTIONS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise SearchSpaceError(f"{where}: unknown distribution '{name}' (known: {', '.join(DISTRIBUTIONS)}).{hint}")
    if DISTRIBUTIONS[name] is None:
        if not isinstance(args, list) or not args:
            raise SearchSpaceError(f"{where}: '{name}' needs a non-empty list of values, got {args!r}")
    else:
        _check_numeric_args(where, name, args)
    return name, args


def shipped_search_spaces() -> dict[str, Path]:
    """The search spaces shipped in ``properties/search/``, by model name."""
    from recbole_llm.utils import properties_dir

    folder = properties_dir() / "search"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def resolve_search_space_path(source: str | os.PathLike) -> Path:
    """A yaml path, or the bare name of a shipped space (``--tune=LightGCN``)."""
    path = Path(source)
    if path.is_file():
        return path
    shipped = shipped_search_spaces()
    if str(source) in shipped:
        return shipped[str(source)]
    raise SearchSpaceError(
        f"search space file not found: {path} (nor a shipped space; shipped: {', '.join(shipped) or 'none'})"
    )


def _config_yaml_loader() -> type:
    """RecBole's config-file loader (reads ``1e-4`` as a float), so a space reads exactly like a config file.

    RecBole builds it in ``Config._build_yaml_loader``, which uses no instance state: no Config
    (and so no dataset or model lookup) is needed just to read a space.
    """
    return RecBoleConfig._build_yaml_loader(None)


def _read_space_file(source: str | os.PathLike) -> tuple[Any, str]:
    path = resolve_search_space_path(source)
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_config_yaml_loader()), str(path)
    except yaml.YAMLError as exc:
        raise SearchSpaceError(f"search space {path} is not valid yaml: {exc}") from exc


def load_search_space(source: str | os.PathLike | Mapping[str, Any]) -> SearchSpace:
    """Read and validate a search space (a yaml path, a shipped space's name or a dict).

    An optional top-level ``fixed:`` mapping holds constant settings that the space needs (for
    example ``train_neg_sample_args: ~`` for a CE loss); ``--key=value`` flags override them.
    """
    raw, origin = (dict(source), "search space") if isinstance(source, Mapping) else _read_space_file(source)
    if not isinstance(raw, Mapping) or not raw:
        raise SearchSpaceError(f"{origin}: expected a non-empty mapping of config keys to distributions")
    raw = dict(raw)
    fixed = raw.pop("fixed", None) or {}
    if not isinstance(fixed, Mapping):
        raise SearchSpaceError(f"{origin}: 'fixed' must be a mapping of config keys to values, got {fixed!r}")
    if not raw:
        raise SearchSpaceError(f"{origin}: no key to search (only 'fixed' settings)")
    space = {}
    for key, spec in raw.items():
        if key in fixed:
            raise SearchSpaceError(f"search space key '{key}': both searched and in 'fixed'")
        if key in NOT_SEARCHABLE:
            raise SearchSpaceError(f"search space key '{key}': cannot be searched (it selects what/where to run)")
        space[str(key)] = _check_distribution(str(key), spec)
    return SearchSpace(space, fixed)


def representative(distribution: str, args: Any) -> Any:
    """A value inside the distribution, used to check the trial config before any trial."""
    if distribution in ("choice", "grid"):
        return args[0]
    if distribution == "loguniform":
        return float(math.sqrt(args[0] * args[1]))
    if distribution == "randint":
        return int(args[0])
    return float(args[0])


def upper_bound(distribution: str, args: Any) -> Any:
    """The largest value a trial can draw (``randint``'s high is exclusive)."""
    if distribution in ("choice", "grid"):
        return max(args)
    return args[1] - 1 if distribution == "randint" else args[1]


def to_ray_space(space: Mapping[str, tuple[str, Any]]) -> dict[str, Any]:
    """The validated space as Ray Tune domains."""
    from ray import tune

    makers = {
        "choice": tune.choice,
        "grid": tune.grid_search,
        "uniform": lambda a: tune.uniform(*a),
        "quniform": lambda a: tune.quniform(*a),
        "loguniform": lambda a: tune.loguniform(*a),
        "randint": lambda a: tune.randint(*a),
    }
    return {key: makers[dist](args) for key, (dist, args) in space.items()}


def sample_configs(space: Mapping[str, tuple[str, Any]], num_samples: int, seed: int) -> list[dict[str, Any]]:
    """The configurations of a random search, drawn up front from ``seed`` alone: the same list on any machine.

    Ray's random search draws inside its searcher, so a rerun on a machine without the Ray folder could not
    tell which of its trials were already run. As in Ray's variant generator, each of the ``num_samples``
    samples is every combination of the ``grid`` keys (the first one varying fastest), each with its own
    draw of the other keys. A configuration drawn again is skipped (with the trial's seed it would only
    repeat a result) and drawing goes on, up to 100 draws a configuration: a small space gives fewer.
    """
    domains = to_ray_space({key: spec for key, spec in space.items() if spec[0] != "grid"})
    grids = [(key, args) for key, (dist, args) in space.items() if dist == "grid"]
    combinations = [
        dict(zip([key for key, _ in reversed(grids)], values, strict=True))
        for values in itertools.product(*(args for _, args in reversed(grids)))
    ]
    rng = np.random.default_rng(seed)
    wanted = num_samples * len(combinations)
    configs: dict[str, dict[str, Any]] = {}
    for _ in range(100 * num_samples):
        for combination in combinations:
            drawn = {key: plain(domain.sample(random_state=rng)) for key, domain in domains.items()}
            config = {key: combination[key] if key in combination else drawn[key] for key in space}
            configs.setdefault(repr(sorted(config.items())), config)
        if len(configs) >= wanted:
            break
    return list(configs.values())[:wanted]


@contextlib.contextmanager
def preserved_cuda_visible_devices() -> Iterator[None]:
    """RecBole's Config overwrites CUDA_VISIBLE_DEVICES; Ray reads it to count GPUs: restore it."""
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


def probe_config(
    model: str | type,
    dataset: str | None,
    config_file_list: Sequence[str] | None,
    config_dict: dict[str, Any] | None,
    cmd_args: Sequence[str] | None = None,
) -> Config:
    """The run's recbole-llm Config built in the driver, leaving the driver's GPU visibility alone."""
    from recbole_llm.config import Config

    with preserved_cuda_visible_devices():
        return Config(model, dataset, config_file_list, config_dict, cmd_args=cmd_args)


def _values_to_probe(space: Mapping[str, tuple[str, Any]]) -> list[dict[str, Any]]:
    """One representative setting, then each other choice and each upper bound, one key at a time."""
    base = {key: representative(*spec) for key, spec in space.items()}
    candidates = [dict(base)]
    for key, (dist, args) in space.items():
        if dist in ("choice", "grid"):
            candidates += [{**base, key: value} for value in args[1:]]
        elif dist in ("uniform", "loguniform", "quniform"):
            candidates.append({**base, key: float(args[1])})
    return candidates


def _check_keys(space: Mapping[str, Any], probe, on_command_line: set[str]) -> None:
    """Every searched key exists in the model's config and is not also fixed on the command line."""
    known = set(probe.final_config_dict)
    for key in space:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise SearchSpaceError(
                f"search space key '{key}': not a parameter of {probe['model']}'s config (its model yaml, "
                f"RecBole's defaults or your config files).{hint}"
            )
        if key in on_command_line:
            raise SearchSpaceError(f"search space key '{key}': also fixed by --{key}=...; drop one of them")


def _check_values(space, model, dataset, config_file_list, fixed: dict[str, Any]) -> None:
    """Every choice value (and each range's ends) through RecBole's Config, before any trial."""
    for params in _values_to_probe(space):
        try:
            probe_config(model, dataset, config_file_list, {**fixed, **params})
        except Exception as exc:  # RecBole raises assorted types for bad values
            raise SearchSpaceError(
                f"search space values {params} are rejected by the config: {type(exc).__name__}: {exc}"
            ) from exc


def _probe_fixed_settings(model, dataset, config_file_list, fixed, cmd_args):
    """The Config with every fixed setting; a rejection becomes one SearchSpaceError line."""
    for file in config_file_list or []:
        if not Path(file).is_file():
            raise SearchSpaceError(f"config file not found: {file}")
    try:
        return probe_config(model, dataset, config_file_list, fixed, cmd_args=cmd_args)
    except (KeyError, TypeError, ValueError, NotImplementedError, RuntimeError) as exc:
        if isinstance(exc, UnknownModelError):
            raise
        raise SearchSpaceError(
            f"the fixed settings of {model} (config files, the space's 'fixed', --key=value) are rejected by "
            f"RecBole's Config before any searched value: {type(exc).__name__}: {exc}"
        ) from exc


def validate_search_space(
    model: str,
    dataset: str | None,
    search_space: str | os.PathLike | Mapping[str, Any],
    config_file_list: Sequence[str] | None = None,
    cmd_args: Sequence[str] | None = None,
) -> tuple[SearchSpace, Config]:
    """Check a search space for ``model`` without running anything; returns ``(space, config)``.

    Raises :class:`SearchSpaceError` naming the offending key: unknown distribution, bad bounds,
    a key the model's config does not have, a key also fixed by ``--key=value``, or a value that
    RecBole's Config rejects. ``config`` is the model's Config with the fixed settings.
    """
    space = load_search_space(search_space)
    probe = _probe_fixed_settings(model, dataset, config_file_list, space.fixed, cmd_args)
    _check_keys(space, probe, set(probe.cmd_config_dict))
    # --key=value overrides, typed by RecBole's own conversion; above the space's fixed settings
    _check_values(space, model, dataset, config_file_list, fixed_settings(space, probe))
    return space, probe


def fixed_settings(space: SearchSpace, probe: Config) -> dict[str, Any]:
    """The constant settings of every trial: the space's ``fixed``, then ``--key=value`` (higher)."""
    return {**space.fixed, **probe.cmd_config_dict}
