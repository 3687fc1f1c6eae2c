"""Ray Tune hyperparameter search for recbole-llm and RecBole models (Ray 2.6.3).

    python run_recbole_llm.py --tune=properties/search/BPR.yaml --model=BPR --dataset=ml-100k \\
        --num_samples=20 --epochs=50 [--search_alg=random|optuna|hyperopt] [--scheduler=asha|fifo] \\
        [--grace_period=5] [--reduction_factor=3] [--cpus_per_trial=1] [--gpus_per_trial=0] \\
        [--max_concurrent=N] [--time_budget_s=S] [--ray_num_cpus=N | --ray_address=auto] [--verbose=1]

``--tune`` takes a yaml path or the name of a space shipped in ``properties/search/`` (``--tune=BPR``).
Without ``--ray_address`` a local Ray is started (``--ray_num_cpus``, default all cores) and shut
down afterwards; ``--ray_address=auto`` (on a node of a running cluster) or ``--ray_address=host:6379``
joins an existing cluster and leaves it running; its nodes need recbole-llm installed and the
data at the same absolute path (Ray Client ``ray://`` addresses are untested).

Why not RecBole's ``objective_function`` + ``run_hyper.py``: it reports and returns (ASHA then
rejects the trial), asks for a GPU per trial (never schedules on a CPU machine) and only finds
RecBole's own models. Here each trial is a function trainable that reports the full validation
result after every evaluation and returns nothing, so ASHA can stop poor trials early.

A search space is a yaml file mapping config keys to one distribution each::

    learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
    embedding_size: {choice: [32, 64, 128]}
    reg_weight: {uniform: [0.0, 1.0e-3]}
    n_layers: {grid: [1, 2, 3]}          # every value, num_samples times (random search only)

Constant settings come from the space's optional ``fixed:`` mapping (e.g. ``train_neg_sample_args: ~``
for a CE loss), ``--config_files`` and ``--key=value`` (highest), as in a normal run. The space is
checked completely (distribution names, bounds, keys that the model's config does not have, keys
also fixed on the command line, every choice value through RecBole's Config) before Ray starts.

Each trial builds its own RecBole Config and seeds itself (``seed``, the config's unless searched),
runs in its own Ray trial folder (its ``log/`` and ``saved/`` cannot collide), evaluates only on the
validation split and never saves a model. Outputs in ``--output`` (default
``saved/tune/<Model>-<dataset>-<time>/``): ``trials.csv`` and ``trials.md`` (every trial: parameters,
best validation metric, epochs, status, error) and ``best.yaml``, which reproduces the best trial::

    python run_recbole_llm.py --model=BPR --dataset=ml-100k --config_files=<output>/best.yaml
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import math
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import yaml

from recbole_llm.utils import UnknownModelError

# Distribution name -> number of arguments it takes (None: a non-empty list of values).
DISTRIBUTIONS: dict[str, int | None] = {
    "choice": None,
    "grid": None,
    "uniform": 2,
    "quniform": 3,
    "loguniform": 2,
    "randint": 2,
}
SEARCH_ALGORITHMS = ("random", "optuna", "hyperopt")
SCHEDULERS = ("asha", "fifo")
# Keys a search may not vary: they select what is run and where, not how it is trained.
_NOT_SEARCHABLE = {"model", "dataset", "data_path", "checkpoint_dir", "device", "gpu_id", "use_gpu",
                   "local_rank", "nproc", "world_size", "valid_metric", "metrics", "eval_args"}
# Environment the trials need on every node (a cluster's workers do not share the driver's env).
_FORWARDED_ENV = ("RECBOLE_LLM_RAW_DATA", "RECBOLE_LLM_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM",
                  "HF_HOME")


class SearchSpaceError(ValueError):
    """The search space (or a tuning option) is invalid; raised before any trial starts."""


# ----------------------------------------------------------------------------------------------
# Search space
# ----------------------------------------------------------------------------------------------
def _yaml_loader() -> type:
    """PyYAML loader that reads ``1e-4`` as a float, like RecBole's config loader."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
            |\.[0-9_]+(?:[eE][-+][0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
            re.X,
        ),
        list("-+0123456789."),
    )
    return Loader


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_distribution(key: str, spec: Any) -> tuple[str, Any]:
    """Validate one ``key: {distribution: args}`` entry and return ``(distribution, args)``."""
    where = f"search space key '{key}'"
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise SearchSpaceError(
            f"{where}: expected one distribution such as {{choice: [..]}} or {{loguniform: [low, high]}}, "
            f"got {spec!r}. Fixed values belong in --config_files or --{key}=value."
        )
    (name, args), = spec.items()
    if name not in DISTRIBUTIONS:
        close = difflib.get_close_matches(str(name), list(DISTRIBUTIONS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise SearchSpaceError(f"{where}: unknown distribution '{name}' (known: {', '.join(DISTRIBUTIONS)}).{hint}")
    arity = DISTRIBUTIONS[name]
    if arity is None:
        if not isinstance(args, list) or not args:
            raise SearchSpaceError(f"{where}: '{name}' needs a non-empty list of values, got {args!r}")
        return name, args
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


class SearchSpace(dict):
    """``{key: (distribution, args)}`` plus ``fixed``: constant settings shipped with the space."""

    def __init__(self, distributions: Mapping[str, tuple[str, Any]], fixed: Mapping[str, Any] | None = None) -> None:
        super().__init__(distributions)
        self.fixed: dict[str, Any] = dict(fixed or {})


def load_search_space(source: str | os.PathLike | Mapping[str, Any]) -> SearchSpace:
    """Read and validate a search space (a yaml path or a dict): ``{key: (distribution, args)}``.

    An optional top-level ``fixed:`` mapping holds constant settings that the space needs (for
    example ``train_neg_sample_args: ~`` for a CE loss); ``--key=value`` flags override them.
    """
    if isinstance(source, Mapping):
        raw = dict(source)
        origin = "search space"
    else:
        path = resolve_search_space_path(source)
        try:
            raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_yaml_loader())
        except yaml.YAMLError as exc:
            raise SearchSpaceError(f"search space {path} is not valid yaml: {exc}") from exc
        origin = str(path)
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
        if key in _NOT_SEARCHABLE:
            raise SearchSpaceError(f"search space key '{key}': cannot be searched (it selects what/where to run)")
        space[str(key)] = _check_distribution(str(key), spec)
    return SearchSpace(space, fixed)


def _representative(distribution: str, args: Any) -> Any:
    """A value inside the distribution, used to check the trial config before any trial."""
    if distribution in ("choice", "grid"):
        return args[0]
    if distribution == "loguniform":
        return float(math.sqrt(args[0] * args[1]))
    if distribution == "randint":
        return int(args[0])
    return float(args[0])


def _upper_bound(distribution: str, args: Any) -> Any:
    if distribution in ("choice", "grid"):
        return max(args)
    return args[1] - 1 if distribution == "randint" else args[1]


def to_ray_space(space: Mapping[str, tuple[str, Any]]) -> dict[str, Any]:
    """The validated space as Ray Tune domains."""
    from ray import tune

    makers = {
        "choice": lambda a: tune.choice(a),
        "grid": lambda a: tune.grid_search(a),
        "uniform": lambda a: tune.uniform(*a),
        "quniform": lambda a: tune.quniform(*a),
        "loguniform": lambda a: tune.loguniform(*a),
        "randint": lambda a: tune.randint(*a),
    }
    return {key: makers[dist](args) for key, (dist, args) in space.items()}


# ----------------------------------------------------------------------------------------------
# Options
# ----------------------------------------------------------------------------------------------
@dataclass
class TuneOptions:
    """How the search runs (the tuning flags of the entry point)."""

    num_samples: int = 10
    search_alg: str = "random"
    scheduler: str = "asha"
    grace_period: int | None = None  # ASHA: epochs evaluated before a trial can be stopped (default min(5, max))
    reduction_factor: float = 3.0
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    time_budget_s: float | None = None
    ray_address: str | None = None  # None: start a local Ray; "auto" or "host:6379": an existing cluster
    ray_num_cpus: int | None = None  # local Ray only (default: all cores)
    output: str | None = None
    verbose: int = 1  # Ray's progress output (0 silent, 1 status table)

    def validate(self) -> None:
        if self.num_samples < 1:
            raise SearchSpaceError(f"--num_samples must be >= 1, got {self.num_samples}")
        if self.search_alg not in SEARCH_ALGORITHMS:
            raise SearchSpaceError(f"--search_alg must be one of {', '.join(SEARCH_ALGORITHMS)}, got '{self.search_alg}'")
        if self.scheduler not in SCHEDULERS:
            raise SearchSpaceError(f"--scheduler must be one of {', '.join(SCHEDULERS)}, got '{self.scheduler}'")
        if self.search_alg != "random":
            try:
                importlib.import_module(self.search_alg)
            except Exception as exc:  # missing, or installed but broken (e.g. a missing dependency)
                raise SearchSpaceError(
                    f"--search_alg={self.search_alg} needs the '{self.search_alg}' package, which does not import "
                    f"({type(exc).__name__}: {exc}): pip install {self.search_alg}"
                ) from exc
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise SearchSpaceError("--cpus_per_trial must be > 0 and --gpus_per_trial >= 0")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise SearchSpaceError(f"--max_concurrent must be >= 1, got {self.max_concurrent}")
        if self.reduction_factor <= 1:
            raise SearchSpaceError(f"--reduction_factor must be > 1, got {self.reduction_factor}")
        if self.grace_period is not None and self.grace_period < 1:
            raise SearchSpaceError(f"--grace_period must be >= 1, got {self.grace_period}")


_OPTION_TYPES = {f: t for f, t in {
    "num_samples": int, "search_alg": str, "scheduler": str, "grace_period": int, "reduction_factor": float,
    "cpus_per_trial": float, "gpus_per_trial": float, "max_concurrent": int, "time_budget_s": float,
    "ray_address": str, "ray_num_cpus": int, "verbose": int,
}.items()}


def split_tune_flags(overrides: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """Separate the tuning flags (``--num_samples=..`` ...) from RecBole config overrides."""
    options: dict[str, Any] = {}
    rest: list[str] = []
    for arg in overrides:
        name, _, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if name in _OPTION_TYPES:
            try:
                options[name] = _OPTION_TYPES[name](value)
            except ValueError as exc:
                raise SearchSpaceError(f"--{name}: cannot read '{value}' as {_OPTION_TYPES[name].__name__}") from exc
        else:
            rest.append(arg)
    return options, rest


# ----------------------------------------------------------------------------------------------
# One trial (runs inside a Ray worker, in its own trial folder)
# ----------------------------------------------------------------------------------------------
@dataclass
class _TrialSettings:
    model: str
    dataset: str | None
    config_file_list: list[str] | None
    config_dict: dict[str, Any]
    cpus_per_trial: float
    gpus_per_trial: float


class _EpochReporter:
    """Reports each validation result of a RecBole trainer to Ray Tune as it happens.

    It wraps the trainer's ``_valid_epoch`` (every RecBole trainer validates through it), so it
    works whatever ``fit`` looks like (mixins that forward ``*args``, trainers without
    ``callback_fn``). The running best and whether training ends there follow RecBole's own
    ``early_stopping`` rule, which ``fit`` applies to the same scores right after.
    """

    def __init__(self, trainer, config) -> None:
        self.epochs = int(config["epochs"])
        self.eval_step = max(1, min(int(config["eval_step"] or 1), self.epochs))
        self.stopping_step = config["stopping_step"]
        self.bigger = bool(config["valid_metric_bigger"])
        self.best = -np.inf if self.bigger else np.inf
        self.reports = 0
        self._stale_steps = 0
        self._inner = trainer._valid_epoch
        trainer._valid_epoch = self._valid_epoch

    def _valid_epoch(self, *args, **kwargs):
        from ray.air import session
        from recbole.utils import early_stopping

        valid_score, valid_result = self._inner(*args, **kwargs)
        self.reports += 1
        self.best, self._stale_steps, stop, _ = early_stopping(
            valid_score, self.best, self._stale_steps, max_step=self.stopping_step, bigger=self.bigger
        )
        epoch = self.reports * self.eval_step
        session.report({
            **{str(k): float(v) for k, v in dict(valid_result).items()},
            "valid_score": float(valid_score),
            "best_valid_score": float(self.best),
            "epoch": epoch,
            "finished": bool(stop or epoch + self.eval_step > self.epochs),
        })
        return valid_score, valid_result


def _trainable(params: dict[str, Any], settings: _TrialSettings) -> None:
    """Train one configuration, reporting every validation; returns nothing (ASHA-compatible)."""
    import torch
    from recbole.utils import init_logger, init_seed

    import recbole_llm  # noqa: F401  (compatibility layer in this worker)
    from recbole_llm.config import Config
    from recbole_llm.quick_start import build

    config_dict = {**settings.config_dict, **{k: _plain(v) for k, v in params.items()}}
    if settings.gpus_per_trial > 0:
        # RecBole's Config sets CUDA_VISIBLE_DEVICES from gpu_id: keep the GPU(s) Ray gave us.
        config_dict["use_gpu"] = True
        config_dict["gpu_id"] = os.environ.get("CUDA_VISIBLE_DEVICES", "0")
    else:
        config_dict["use_gpu"] = False
    torch.set_num_threads(max(1, int(settings.cpus_per_trial)))
    config = Config(settings.model, settings.dataset, settings.config_file_list, config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)  # into this trial's own folder (Ray made it the working directory)
    _, train_data, valid_data, _, _, trainer = build(config)
    reporter = _EpochReporter(trainer, config)
    trainer.fit(train_data, valid_data, verbose=False, saved=False, show_progress=False)
    if reporter.reports == 0:
        raise RuntimeError("the trial trained without a single validation: set eval_step >= 1 and epochs >= eval_step")


def _plain(value: Any) -> Any:
    """numpy scalars (what Ray samples) as Python values, so configs and yaml stay clean."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ----------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------
@dataclass
class TuneSummary:
    """What a search produced."""

    output_dir: Path
    trials: pd.DataFrame
    best: dict[str, Any] | None  # the best trial's row (None when every trial failed)
    best_yaml: Path | None
    csv_path: Path
    markdown_path: Path
    metric: str
    mode: str
    rerun_command: str | None = None


@contextlib.contextmanager
def _preserved_cuda_visible_devices() -> Iterator[None]:
    """RecBole's Config overwrites CUDA_VISIBLE_DEVICES; Ray reads it to count GPUs: restore it."""
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


def _probe_config(model, dataset, config_file_list, config_dict, cmd_args=None):
    from recbole_llm.config import Config

    with _preserved_cuda_visible_devices():
        return Config(model, dataset, config_file_list, config_dict, cmd_args=cmd_args)


def _check_space_against_config(space, model, dataset, config_file_list, fixed: dict[str, Any], probe,
                                on_command_line: set[str]) -> None:
    """Unknown keys, keys fixed elsewhere, and every choice value through RecBole's Config."""
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
    base = {key: _representative(*spec) for key, spec in space.items()}
    candidates = [dict(base)]
    for key, (dist, args) in space.items():
        if dist in ("choice", "grid"):
            candidates += [{**base, key: value} for value in args[1:]]
        elif dist in ("uniform", "loguniform", "quniform"):
            candidates.append({**base, key: float(args[1])})
    for params in candidates:
        try:
            _probe_config(model, dataset, config_file_list, {**fixed, **params})
        except Exception as exc:  # RecBole raises assorted types for bad values
            raise SearchSpaceError(f"search space values {params} are rejected by the config: {type(exc).__name__}: {exc}") from exc


def validate_search_space(
    model: str,
    dataset: str | None,
    search_space: str | os.PathLike | Mapping[str, Any],
    config_file_list: Sequence[str] | None = None,
    cmd_args: Sequence[str] | None = None,
):
    """Check a search space for ``model`` without running anything; returns ``(space, config)``.

    Raises :class:`SearchSpaceError` naming the offending key: unknown distribution, bad bounds,
    a key the model's config does not have, a key also fixed by ``--key=value``, or a value that
    RecBole's Config rejects. ``config`` is the model's Config with the fixed settings.
    """
    space = load_search_space(search_space)
    for file in config_file_list or []:
        if not Path(file).is_file():
            raise SearchSpaceError(f"config file not found: {file}")
    try:
        probe = _probe_config(model, dataset, config_file_list, space.fixed, cmd_args=cmd_args)
    except (KeyError, TypeError, ValueError, NotImplementedError, RuntimeError) as exc:
        if isinstance(exc, UnknownModelError):
            raise
        raise SearchSpaceError(
            f"the fixed settings of {model} (config files, the space's 'fixed', --key=value) are rejected by "
            f"RecBole's Config before any searched value: {type(exc).__name__}: {exc}"
        ) from exc
    # --key=value overrides, typed by RecBole's own conversion; above the space's fixed settings
    fixed = {**space.fixed, **probe.cmd_config_dict}
    _check_space_against_config(space, model, dataset, config_file_list, fixed, probe, set(probe.cmd_config_dict))
    return space, probe


def _absolute_paths(probe, fixed: dict[str, Any]) -> dict[str, Any]:
    """Paths of the run as absolute paths: trials run in their own folders (and maybe other machines).

    ``data_path`` and ``raw_data_path`` always; other ``*_dir`` / ``*_path`` settings given as
    relative paths (caches, profile folders) too, so trials share them; ``*_file`` settings when
    the file exists from here. ``checkpoint_dir`` stays relative: each trial keeps its own.
    """
    resolved: dict[str, Any] = {}
    if probe["dataset"] != "ml-100k":  # RecBole always uses its bundled copy for ml-100k
        resolved["data_path"] = str(Path(probe["data_path"]).resolve().parent)
    settings = {**probe.file_config_dict, **fixed}
    raw = settings.get("raw_data_path") or probe.final_config_dict.get("raw_data_path") or os.environ.get("RECBOLE_LLM_RAW_DATA")
    if raw:
        resolved["raw_data_path"] = str(Path(raw).expanduser().resolve())
    for key, value in settings.items():
        if key in resolved or key in ("checkpoint_dir", "data_path") or not isinstance(value, str) or not value:
            continue
        path = Path(value).expanduser()
        if path.is_absolute():
            continue
        if key.endswith(("_dir", "_path")) or (key.endswith("_file") and path.exists()):
            resolved[key] = str(path.resolve())
    return resolved


def _prepare_dataset_once(probe) -> None:
    """Convert a named dataset in the driver, so parallel trials do not race to write its files."""
    from recbole_llm.data import DatasetNotFoundError, named_datasets

    with _preserved_cuda_visible_devices():
        if not named_datasets.prepare_named_dataset(probe):
            raise DatasetNotFoundError(
                f"Dataset '{probe['dataset']}' not found: looked for {probe['data_path']}. Set --data_path or "
                "raw_data_path / RECBOLE_LLM_RAW_DATA (see `python run_recbole_llm.py --model=... --dataset=...`)."
            )


def _search_algorithm(options: TuneOptions, space, seed: int):
    if options.search_alg == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=seed, max_concurrent=options.max_concurrent or 0)
    grids = [k for k, (dist, _) in space.items() if dist == "grid"]
    if grids:
        raise SearchSpaceError(
            f"search space key '{grids[0]}': 'grid' works only with --search_alg=random; use 'choice' with {options.search_alg}"
        )
    if options.search_alg == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(seed=seed)
    from ray.tune.search.hyperopt import HyperOptSearch

    return HyperOptSearch(random_state_seed=seed)


def _max_reports(probe, space) -> int:
    epochs = probe["epochs"]
    if "epochs" in space:
        epochs = _upper_bound(*space["epochs"])
    return max(1, int(epochs) // max(1, int(probe["eval_step"] or 1)))


@contextlib.contextmanager
def _ray_session(options: TuneOptions) -> Iterator[None]:
    """Use the Ray already running in this process, or connect/start one and shut it down after."""
    import ray

    if ray.is_initialized():
        yield
        return
    env_vars = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
    kwargs: dict[str, Any] = {"include_dashboard": False, "runtime_env": {"env_vars": env_vars}}
    if options.ray_address:
        ray.init(address=options.ray_address, **kwargs)
    else:
        ray.init(num_cpus=options.ray_num_cpus or os.cpu_count(), **kwargs)
    try:
        yield
    finally:
        ray.shutdown()


def _error_line(error: BaseException | None) -> str:
    if error is None:
        return ""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _trial_rows(results, space, metric_key: str, bigger: bool) -> pd.DataFrame:
    rows = []
    for result in results:
        metrics = result.metrics or {}
        history = result.metrics_dataframe
        row: dict[str, Any] = {"trial": metrics.get("trial_id") or Path(str(result.log_dir)).name}
        row.update({f"param.{k}": _plain(result.config.get(k)) for k in space})
        best_epoch_result: dict[str, Any] = {}
        if history is not None and len(history) and "valid_score" in history:
            scores = history["valid_score"].to_numpy()
            best_index = int(np.argmax(scores) if bigger else np.argmin(scores))
            best_epoch_result = history.iloc[best_index].to_dict()
        row["best_valid_score"] = metrics.get("best_valid_score", np.nan)
        row["best_epoch"] = best_epoch_result.get("epoch", np.nan)
        row["epochs"] = metrics.get("epoch", 0)
        if result.error is not None:
            row["status"] = "error"
        elif metrics.get("finished"):
            row["status"] = "completed"
        else:
            row["status"] = "stopped early"
        row["error"] = _error_line(result.error)
        row["seconds"] = round(float(metrics.get("time_total_s", np.nan)), 1)
        for key, value in best_epoch_result.items():
            if "@" in str(key):  # RecBole metric names (recall@10, ndcg@10, ...)
                row[f"valid.{key}"] = value
        row["trial_dir"] = str(result.log_dir) if result.log_dir else ""
        rows.append(row)
    table = pd.DataFrame(rows)
    if len(table):
        table = table.sort_values("best_valid_score", ascending=not bigger, na_position="last", kind="stable")
    return table.reset_index(drop=True)


def _pick_best(table: pd.DataFrame) -> dict[str, Any] | None:
    """Best completed trial (its yaml reproduces it exactly); else the best one stopped early."""
    for status in ("completed", "stopped early"):
        candidates = table[(table["status"] == status) & table["best_valid_score"].notna()]
        if len(candidates):
            return candidates.iloc[0].to_dict()
    return None


def _markdown(table: pd.DataFrame, header: list[str]) -> str:
    shown = table.drop(columns=["trial_dir"], errors="ignore")

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.6g}"
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = [*header, "", "| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _write_best_yaml(path: Path, best: dict[str, Any], space, file_values: dict[str, Any], fixed: dict[str, Any],
                     dataset: str, header: list[str]) -> None:
    values: dict[str, Any] = {"dataset": dataset}
    values.update(file_values)
    values.update(fixed)
    values.update({k: _plain(best[f"param.{k}"]) for k in space})
    if best["status"] != "completed":
        values["epochs"] = int(best["epochs"])  # reproduce what was observed, not an unseen longer run
    body = yaml.safe_dump(_yaml_safe(values), sort_keys=False, default_flow_style=False)
    path.write_text("\n".join(f"# {line}" for line in header) + "\n" + body, encoding="utf-8")


def _yaml_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _yaml_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_yaml_safe(v) for v in value]
    value = _plain(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def run_tune(
    model: str,
    dataset: str | None,
    search_space: str | os.PathLike | Mapping[str, Any],
    config_file_list: Sequence[str] | None = None,
    cmd_args: Sequence[str] | None = None,
    options: TuneOptions | None = None,
    command: str | None = None,
) -> TuneSummary:
    """Run a Ray Tune search; every check on the space and options happens before Ray starts."""
    options = options or TuneOptions()
    options.validate()
    config_files = [str(Path(f).resolve()) for f in config_file_list] if config_file_list else None

    space, probe = validate_search_space(model, dataset, search_space, config_files, cmd_args)
    fixed = {**space.fixed, **probe.cmd_config_dict}
    seed = int(space["seed"][1][0]) if "seed" in space else int(probe["seed"])
    search_alg = _search_algorithm(options, space, seed)
    metric_name = probe["valid_metric"].lower()
    bigger = bool(probe["valid_metric_bigger"])
    mode = "max" if bigger else "min"
    _prepare_dataset_once(probe)

    dataset_name = probe["dataset"]
    output_dir = Path(options.output or Path("saved", "tune", f"{probe['model']}-{dataset_name}-{time.strftime('%Y%m%d-%H%M%S')}"))
    output_dir = output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    settings = _TrialSettings(
        model=probe["model"], dataset=dataset_name, config_file_list=config_files,
        config_dict={**fixed, **_absolute_paths(probe, fixed)},
        cpus_per_trial=options.cpus_per_trial, gpus_per_trial=options.gpus_per_trial,
    )

    from ray import air, tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    max_t = _max_reports(probe, space)
    if options.scheduler == "asha":
        grace = min(options.grace_period or 5, max_t)
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=max_t, grace_period=grace,
                                  reduction_factor=options.reduction_factor)
    else:
        scheduler = FIFOScheduler()
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, settings=settings),
        {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial},
    )
    started = time.time()
    with _ray_session(options):
        tuner = tune.Tuner(
            trainable,
            param_space=to_ray_space(space),
            tune_config=tune.TuneConfig(
                metric="valid_score", mode=mode, search_alg=search_alg, scheduler=scheduler,
                num_samples=options.num_samples, time_budget_s=options.time_budget_s,
                max_concurrent_trials=options.max_concurrent if options.search_alg != "random" else None,
                chdir_to_trial_dir=True,
            ),
            run_config=air.RunConfig(
                name="ray", storage_path=str(output_dir), verbose=options.verbose,
                failure_config=air.FailureConfig(max_failures=0, fail_fast=False),
            ),
        )
        results = tuner.fit()
        table = _trial_rows(results, space, metric_name, bigger)
    elapsed = time.time() - started

    command = command or f"run_tune({model!r}, {dataset!r}, {search_space!r})"
    best = _pick_best(table)
    n_status = table["status"].value_counts().to_dict() if len(table) else {}
    header = [
        f"Ray Tune search: {probe['model']} on {dataset_name}, metric {metric_name} on the validation split ({mode})",
        f"Command: `{command}`",
        f"Search: {options.search_alg}, scheduler {options.scheduler}"
        + (f" (max {max_t} evaluations, grace {min(options.grace_period or 5, max_t)}, "
           f"reduction {options.reduction_factor:g})" if options.scheduler == "asha" else "")
        + f", num_samples {options.num_samples}, {options.cpus_per_trial:g} CPU / {options.gpus_per_trial:g} GPU per trial",
        f"Trials: {len(table)} ({', '.join(f'{v} {k}' for k, v in n_status.items())}), {elapsed:.0f} s in all",
    ]
    csv_path, markdown_path = output_dir / "trials.csv", output_dir / "trials.md"
    table.to_csv(csv_path, index=False)
    best_yaml = None
    rerun = None
    if best is not None:
        best_yaml = output_dir / "best.yaml"
        rerun = (f"python run_recbole_llm.py --model={probe['model']} --dataset={dataset_name} "
                 f"--config_files={shlex.quote(str(best_yaml))}")
        _write_best_yaml(
            best_yaml, best, space, dict(probe.file_config_dict), fixed, dataset_name,
            [f"Best trial {best['trial']} of a Ray Tune search ({best['status']}): "
             f"{metric_name} = {best['best_valid_score']:.6g} on the validation split (epoch {best['best_epoch']:.0f}).",
             f"Search command: {command}", f"Rerun: {rerun}"],
        )
        header.append(f"Best: trial {best['trial']}, {metric_name} = {best['best_valid_score']:.6g}; "
                      f"config `{best_yaml.name}`; rerun: `{rerun}`")
    else:
        header.append("Best: none (no trial produced a validation result)")
    if n_status.get("error"):
        header.append("Errors: the full traceback of a failed trial is in `error.txt` of its folder "
                      "(column trial_dir of trials.csv)")
    markdown_path.write_text(_markdown(table, [f"# {header[0]}", "", *[f"- {h}" for h in header[1:]]]), encoding="utf-8")
    return TuneSummary(output_dir, table, best, best_yaml, csv_path, markdown_path, metric_name, mode, rerun)


def run_from_cli(args: argparse.Namespace, overrides: Sequence[str]) -> int:
    """``python run_recbole_llm.py --tune=<space.yaml> --model=X ...``: run, print where results are."""
    try:
        tune_flags, config_overrides = split_tune_flags(overrides)
        options = TuneOptions(output=args.output, **tune_flags)
        config_files = args.config_files.strip().split(" ") if args.config_files else None
        flags = [f"--tune={args.tune}", f"--model={args.model}"]
        flags += [f"--{name}={getattr(args, name)}" for name in ("dataset", "config_files", "output") if getattr(args, name)]
        command = "python run_recbole_llm.py " + " ".join(shlex.quote(a) for a in [*flags, *overrides])
        summary = run_tune(args.model, args.dataset, args.tune, config_files, config_overrides, options, command)
    except (SearchSpaceError, FileNotFoundError) as exc:  # FileNotFoundError: dataset or raw files missing
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"trials: {summary.markdown_path} ({len(summary.trials)} trials), {summary.csv_path}")
    if summary.best is None:
        print("error: every trial failed; see the error column and each trial's error.txt", file=sys.stderr)
        return 1
    print(f"best {summary.metric} = {summary.best['best_valid_score']:.6g} ({summary.best['trial']})")
    print(f"best config: {summary.best_yaml}\nrerun: {summary.rerun_command}")
    return 0
