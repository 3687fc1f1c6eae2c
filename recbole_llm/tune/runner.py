"""``run_tune``: check everything, start (or join) Ray, run the trials (those a ledger lacks), write the report."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recbole_llm.tune.options import TuneOptions
from recbole_llm.tune.report import SearchRecord, TuneSummary, empty_trials_table, trials_table, write_report
from recbole_llm.tune.space import (
    SearchSpace,
    SearchSpaceError,
    fixed_settings,
    preserved_cuda_visible_devices,
    sample_configs,
    to_ray_space,
    upper_bound,
    validate_search_space,
)
from recbole_llm.tune.trainable import TRIAL_INDEX_KEY, TrialSettings, trainable

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from recbole_llm.tune.ledger import TrialLedger

# Environment the trials need on every node (a cluster's workers do not share the driver's env).
FORWARDED_ENV = (
    "RECBOLE_LLM_RAW_DATA",
    "RECBOLE_LLM_CACHE",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "TOKENIZERS_PARALLELISM",
    "HF_HOME",
)
# Ray Tune's experiment folder inside the output folder.
EXPERIMENT_NAME = "ray"
# Snapshots of unfinished trials inside the output folder (recbole_llm.trainer.snapshot).
SNAPSHOT_DIR = "snapshots"


@dataclass
class _Plan:
    """A checked search, ready for Ray: the space, the driver's Config of the run and where results go."""

    space: SearchSpace
    probe: Any  # recbole_llm.config.Config with the fixed settings
    settings: TrialSettings
    output_dir: Path
    mode: str  # "max" or "min": the direction of the validation metric
    search_alg: Any  # Ray searcher, seeded
    max_reports: int
    num_samples: int  # trials this search runs: the budget less the trials the ledger already holds
    stored: int = 0  # trials of the budget that the ledger already holds (run by an earlier search)
    points: list = field(default_factory=list)  # a random search's configurations still to run


def _absolute_paths(probe, fixed: dict[str, Any]) -> dict[str, Any]:
    """Paths of the run as absolute paths: trials run in their own folders (and maybe other machines).

    ``data_path`` and the raw-data folder always; other ``*_dir`` / ``*_path`` settings given as
    relative paths (caches, profile folders) too, so trials share them; ``*_file`` settings when
    the file exists from here. ``checkpoint_dir`` stays relative: each trial keeps its own. An unset
    ``profile_dir`` may mean a folder under the working folder (P4R on RecBole's bundled ml-100k): it is
    fixed to that folder here, so trials find the profiles generated beforehand instead of writing new ones.
    """
    from recbole_llm.data.named_datasets import raw_data_root

    resolved: dict[str, Any] = {}
    if probe["dataset"] != "ml-100k":  # RecBole always uses its bundled copy for ml-100k
        resolved["data_path"] = str(Path(probe["data_path"]).resolve().parent)
    raw = raw_data_root(probe)
    if raw:
        resolved["raw_data_path"] = str(raw.resolve())
    for key, value in {**probe.file_config_dict, **fixed}.items():
        if key in resolved or key in ("checkpoint_dir", "data_path") or not isinstance(value, str) or not value:
            continue
        path = Path(value).expanduser()
        if path.is_absolute():
            continue
        if key.endswith(("_dir", "_path")) or (key.endswith("_file") and path.exists()):
            resolved[key] = str(path.resolve())
    if "profile_dir" in probe.final_config_dict and not {**probe.final_config_dict, **fixed}["profile_dir"]:
        from recbole_llm.profiles.generate import default_profile_dir

        resolved["profile_dir"] = str(default_profile_dir(probe).resolve())
    return resolved


def _prepare_dataset_once(probe) -> None:
    """Convert a named dataset in the driver, so parallel trials do not race to write its files."""
    from recbole_llm.data import DatasetNotFoundError, named_datasets

    with preserved_cuda_visible_devices():
        if not named_datasets.prepare_named_dataset(probe):
            raise DatasetNotFoundError(
                f"Dataset '{probe['dataset']}' not found: looked for {probe['data_path']}. Set --data_path or "
                "raw_data_path / RECBOLE_LLM_RAW_DATA (see `python run_recbole_llm.py --model=... --dataset=...`)."
            )


def _search_algorithm(
    options: TuneOptions, space: SearchSpace, seed: int, points: list | None = None, rewards: list | None = None
):
    """Ray's searcher for ``--search_alg``, seeded; ``grid`` keys need the random (variant) generator.

    ``points``: for optuna the trials already run, with their scores in ``rewards`` (a random search runs
    its drawn configurations through ``_param_space``). Ray 2.6.3's HyperOptSearch takes no scores: its
    seed moves on by the number of trials already run instead, so it does not draw the same first
    configurations again.
    """
    if options.search_alg == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=seed, max_concurrent=options.max_concurrent or 0)
    grids = [k for k, (dist, _) in space.items() if dist == "grid"]
    if grids:
        raise SearchSpaceError(
            f"search space key '{grids[0]}': 'grid' works only with --search_alg=random; "
            f"use 'choice' with {options.search_alg}"
        )
    if options.search_alg == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(seed=seed, points_to_evaluate=points or None, evaluated_rewards=rewards or None)
    from ray.tune.search.hyperopt import HyperOptSearch

    return HyperOptSearch(random_state_seed=seed + len(rewards or ()))


def _trials_to_run(options: TuneOptions, space: SearchSpace, seed: int, ledger) -> tuple[int, list, list, int]:
    """(trials to run, searcher points, their scores, trials of the budget that ``ledger`` already holds).

    A random search draws its configurations up front from the seed (``sample_configs``), so any machine
    knows them, and runs those the ledger lacks; optuna and hyperopt run the rest of the budget.
    """
    from recbole_llm.tune.ledger import canonical

    stored = ledger.stored() if ledger is not None else []
    if options.search_alg == "random":
        done = {canonical(params) for params, _ in stored}
        configs = deferred(sample_configs(space, options.num_samples, seed), options.trials_last)
        points = [config for config in configs if canonical(config) not in done]
        return len(points), points, [], len(configs) - len(points)
    held = len(stored)
    return max(0, options.num_samples - held), [p for p, _ in stored], [score for _, score in stored], held


def deferred(configs: list[dict[str, Any]], last: Sequence[int]) -> list[dict[str, Any]]:
    """``configs`` with the trials numbered ``last`` (1-based, sampled order) moved to the end, in that order.

    Only the order changes, not which configurations run: a search spread over machines that each run for a
    limited time can leave a trial too long for the time left to a later machine.
    """
    beyond = [n for n in last if n > len(configs)]
    if beyond:
        raise SearchSpaceError(f"--trials_last: this search draws {len(configs)} trials, no trial {beyond[0]}")
    moved = [configs[n - 1] for n in dict.fromkeys(last)]
    return [c for i, c in enumerate(configs, start=1) if i not in last] + moved


def _scheduler(options: TuneOptions, max_reports: int):
    """ASHA counts validations (one report each); FIFO lets every trial run to its end."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if options.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=max_reports,
        grace_period=options.grace(max_reports),
        reduction_factor=options.reduction_factor,
    )


def _max_reports(probe, space: SearchSpace) -> int:
    """How many validations the longest trial makes (ASHA's ``max_t``)."""
    epochs = upper_bound(*space["epochs"]) if "epochs" in space else probe["epochs"]
    return max(1, int(epochs) // max(1, int(probe["eval_step"])))


@contextlib.contextmanager
def _ray_session(options: TuneOptions) -> Iterator[None]:
    """Use the Ray already running in this process, or connect/start one and shut it down after.

    What an earlier failure left is not reused: the client mode of a failed ``ray://`` connection
    and a driver whose key-value store is gone (its cluster shut down) are cleared first.
    """
    import ray

    from recbole_llm.compat import clear_stale_ray_client, ray_half_initialized, shutdown_ray

    clear_stale_ray_client()
    if ray.is_initialized() and not ray_half_initialized():
        yield
        return
    shutdown_ray()
    env_vars = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    kwargs: dict[str, Any] = {"include_dashboard": False, "runtime_env": {"env_vars": env_vars}}
    try:
        if options.ray_address:
            ray.init(address=options.ray_address, **kwargs)
        else:
            if os.environ.get("RAY_ADDRESS"):  # Ray's own habit would join it: say why this search does not
                logger.warning(
                    "RAY_ADDRESS=%s is set but --ray_address is not: starting a local Ray "
                    "(--ray_address=auto runs the search on that cluster)",
                    os.environ["RAY_ADDRESS"],
                )
            # "local": a new Ray of this process, not the cluster that RAY_ADDRESS or a `ray start` names
            ray.init(address="local", num_cpus=options.ray_num_cpus or os.cpu_count(), **kwargs)
        yield
    finally:
        shutdown_ray()  # also after a failed start, so the next search in this process starts clean


@contextlib.contextmanager
def _interrupt_as_kill(resumable: bool) -> Iterator[None]:
    """In a search with a ledger, Ctrl+C stops like a kill (``KeyboardInterrupt``) and a rerun resumes.

    Ray Tune's own handler would stop the trials and return the cut-short search as if it had
    finished, and a caller would keep it as the search's result.
    """
    if not resumable:
        yield
        return
    previous = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = previous


def _plan(model, dataset, search_space, config_file_list, cmd_args, options: TuneOptions, ledger=None) -> _Plan:
    """Every check before Ray starts; the trials to run; the dataset converted once; the output folder made."""
    options.validate()
    config_files = [str(Path(f).resolve()) for f in config_file_list] if config_file_list else None
    space, probe = validate_search_space(model, dataset, search_space, config_files, cmd_args)
    seed = int(space["seed"][1][0]) if "seed" in space else int(probe["seed"])
    num_samples, points, rewards, stored = _trials_to_run(options, space, seed, ledger)
    search_alg = _search_algorithm(options, space, seed, points, rewards)  # a grid with optuna fails here
    _prepare_dataset_once(probe)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output_dir = Path(options.output or Path("saved", "tune", f"{probe['model']}-{probe['dataset']}-{stamp}")).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    fixed = fixed_settings(space, probe)
    settings = TrialSettings(
        model=probe["model"],
        dataset=probe["dataset"],
        config_file_list=config_files,
        config_dict={**fixed, **_absolute_paths(probe, fixed)},
        cpus_per_trial=options.cpus_per_trial,
        gpus_per_trial=options.gpus_per_trial,
        snapshot_dir=None if options.snapshot_interval_s is None else str(output_dir / SNAPSHOT_DIR),
        snapshot_interval_s=options.snapshot_interval_s or 0.0,
    )
    mode = "max" if probe["valid_metric_bigger"] else "min"
    max_reports = _max_reports(probe, space)
    points = points if options.search_alg == "random" else []
    return _Plan(space, probe, settings, output_dir, mode, search_alg, max_reports, num_samples, stored, points)


def _param_space(plan: _Plan, options: TuneOptions) -> dict[str, Any]:
    """Ray's ``param_space``: for a random search, a grid over the indices of the configurations drawn up front.

    Each searched key then reads its value from the drawn configuration (``sample_from``), so trials keep
    flat configs. Ray 2.6.3 cannot take list-valued settings (NGCF's ``hidden_size_list``) as
    ``points_to_evaluate``: its check of a preset point walks into the list and fails formatting a warning.
    """
    from ray import tune

    if options.search_alg != "random":
        return to_ray_space(plan.space)
    points = plan.points
    space: dict[str, Any] = {TRIAL_INDEX_KEY: tune.grid_search(list(range(len(points))))}
    for key in plan.space:
        space[key] = tune.sample_from(lambda spec, key=key: points[spec.config[TRIAL_INDEX_KEY]][key])
    return space


def _trainable(plan: _Plan, options: TuneOptions):
    """One trial: the trainable with this search's settings and the resources of a trial."""
    from ray import tune

    resources = {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(trainable, settings=plan.settings), resources)


def _tuner(plan: _Plan, options: TuneOptions, callbacks: list):
    """Ray's Tuner: one trial per sampled configuration, each in its own folder, failures contained.

    A search that goes on from a ledger's trials is a new Ray experiment (in the same folder, beside the
    trials of the search before it): what it needs of the earlier search is in the ledger, not in Ray's state.
    """
    from ray import air, tune

    return tune.Tuner(
        _trainable(plan, options),
        param_space=_param_space(plan, options),
        tune_config=tune.TuneConfig(
            metric="valid_score",
            mode=plan.mode,
            search_alg=plan.search_alg,
            scheduler=_scheduler(options, plan.max_reports),
            num_samples=1 if options.search_alg == "random" else plan.num_samples,
            time_budget_s=options.time_budget_s,
            max_concurrent_trials=options.max_concurrent if options.search_alg != "random" else None,
            chdir_to_trial_dir=True,
        ),
        run_config=air.RunConfig(
            name=EXPERIMENT_NAME,
            storage_path=str(plan.output_dir),
            verbose=options.verbose,
            failure_config=air.FailureConfig(max_failures=0, fail_fast=False),
            callbacks=callbacks,
        ),
    )


def _fit(plan: _Plan, options: TuneOptions, ledger: TrialLedger | None):
    """Run the trials and return their table; the ledger gets each one as it finishes.

    Through Ray Client (``ray://``) Tune's loop, and so any callback, runs on the cluster: the ledger
    gets the trials when the search returns there.
    """
    import ray

    from recbole_llm.tune.ledger import LedgerCallback, SnapshotCleanup, store_results

    client = ray.util.client.ray.is_connected()
    searched = list(plan.space)
    callbacks = [LedgerCallback(ledger, searched)] if ledger is not None and not client else []
    callbacks.append(SnapshotCleanup(plan.settings))
    results = _tuner(plan, options, callbacks).fit()
    if ledger is not None and client:
        store_results(ledger, results, searched)
    return trials_table(results, searched, plan.mode)


def _record(plan: _Plan, options: TuneOptions, command: str, elapsed_s: float) -> SearchRecord:
    """The report's description of the search and the settings ``best.yaml`` starts from."""
    probe = plan.probe
    asha = (
        f" (max {plan.max_reports} evaluations, grace {options.grace(plan.max_reports)}, "
        f"reduction {options.reduction_factor:g})"
        if options.scheduler == "asha"
        else ""
    )
    setup = (
        f"Search: {options.search_alg}, scheduler {options.scheduler}{asha}, num_samples {options.num_samples}, "
        f"{options.cpus_per_trial:g} CPU / {options.gpus_per_trial:g} GPU per trial"
        + (f", {plan.stored} trial(s) of the budget stored by an earlier search, not run again" if plan.stored else "")
    )
    return SearchRecord(
        model=probe["model"],
        dataset=probe["dataset"],
        metric=probe["valid_metric"].lower(),
        mode=plan.mode,
        command=command,
        setup=setup,
        searched=list(plan.space),
        base_settings={**probe.file_config_dict, **fixed_settings(plan.space, probe)},
        elapsed_s=elapsed_s,
    )


def run_tune(
    model: str,
    dataset: str | None,
    search_space: str | os.PathLike | Mapping[str, Any],
    config_file_list: Sequence[str] | None = None,
    cmd_args: Sequence[str] | None = None,
    options: TuneOptions | None = None,
    command: str | None = None,
    ledger: TrialLedger | None = None,
) -> TuneSummary:
    """Run a Ray Tune search; every check on the space and options happens before Ray starts.

    ``ledger`` (the benchmark store) makes the search resumable on any machine: it gets each trial as
    the trial finishes, and a rerun runs only the budget's trials it lacks (none: Ray does not start;
    the report then lists no trial). Ctrl+C then stops the search like a kill.
    """
    options = options or TuneOptions()
    plan = _plan(model, dataset, search_space, config_file_list, cmd_args, options, ledger)
    started = time.time()
    if plan.num_samples == 0:
        table = empty_trials_table(list(plan.space))
    else:
        with _ray_session(options), _interrupt_as_kill(ledger is not None):
            table = _fit(plan, options, ledger)
    command = command or f"run_tune({model!r}, {dataset!r}, {search_space!r})"
    return write_report(plan.output_dir, table, _record(plan, options, command, time.time() - started))
