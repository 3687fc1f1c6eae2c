"""The two training stages of a suite: (a) tune every model on validation, (b) train the best with N seeds.

Both read and write the suite's :class:`ResultStore`: a finished trial set or final run is skipped
when its key (resolved configuration + model code version) is already stored. Each tuning trial is
stored the moment it finishes (``kind: trial``, keyed by its set's key and its values), so a search
killed half-way, here or on another machine, goes on with the trials it lacks; the trial set
(``kind: trials``) is stored, from its stored trials, once its search has run them all. Ray Tune's
folder ``<work_dir>/tune/<dataset>/<model>/<key>`` holds only logs and the last search's report.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from recbole_llm.benchmark.store import ResultStore, content_key, model_code_version, resolved_config, trial_key
from recbole_llm.benchmark.suite import DatasetEntry, ModelEntry, Suite, SuiteError
from recbole_llm.compare import Job, run_job
from recbole_llm.compare.hooks import oie_history
from recbole_llm.data.named_datasets import DatasetNotFoundError
from recbole_llm.trainer.snapshot import SNAPSHOT_SUFFIX

logger = logging.getLogger(__name__)


class BenchmarkError(RuntimeError):
    """A stage that cannot go on (e.g. every tuning trial of a model failed)."""


@dataclasses.dataclass
class Workspace:
    """Where a suite keeps its store and its scratch files (configs, tuning folders, checkpoints)."""

    suite: Suite
    store: ResultStore
    work_dir: Path
    command: str
    on_stored: Callable[[dict[str, Any]], None] | None = None
    #: final stage only: a model without a stored trial set is an error, never a new search
    tuned_only: bool = False
    #: final runs side by side (each with its share of the cores); tuning always runs one search at a time
    jobs: int = 1
    #: held while storing and while the progress bar moves (final runs side by side finish in their own threads)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False, compare=False)

    def run_config(self, dataset: DatasetEntry, model: ModelEntry) -> dict[str, Any]:
        """The suite's fixed settings, with one OIE cache for the whole suite unless the suite names its own.

        OIE's pre-trained model is keyed by the dataset and every pre-training setting, not by the run's seed or
        by the arm (``oie_permute_ids`` permutes at transfer): kept in a trial's or an arm's checkpoint folder,
        each tuning trial and each arm would pre-train the same model again. ``oie_cache_dir`` is left out of
        every stored key, so where the cache lives changes no stored result.
        """
        config = self.suite.run_config(dataset, model)
        if not config.get("oie_cache_dir"):
            config["oie_cache_dir"] = str(self.work_dir / "oie")
        return config

    def fixed_config_file(self, dataset: DatasetEntry, model: ModelEntry) -> str:
        """The suite's fixed settings for (dataset, model), written as a yaml config file."""
        path = self.work_dir / "configs" / f"{slug(dataset.name)}-{slug(model.name)}.yaml"
        text = yaml.safe_dump(self.run_config(dataset, model), sort_keys=True)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            # written beside and renamed into place: a run side by side may be reading the same file
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
            partial.write_text(text, encoding="utf-8")
            partial.replace(path)
        return str(path)

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles the workspace with a search's ledger; a lock does not pickle (each copy gets its own)."""
        return {k: v for k, v in self.__dict__.items() if k != "lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, lock=threading.Lock())

    def stored(self, entry: dict[str, Any]) -> None:
        """Store ``entry``; one writer at a time, since final runs side by side finish in their own threads."""
        with self.lock:
            self.store.add(entry)
            if self.on_stored is not None:
                self.on_stored(entry)

    def threads_per_run(self) -> int | None:
        """torch threads of each final run: None (torch's default) alone, else the cores shared out."""
        return None if self.jobs == 1 else max(1, (os.cpu_count() or 1) // self.jobs)


def slug(name: str) -> str:
    """A file-name-safe form of a dataset or model label ('BPR uniform k=1' -> 'BPR_uniform_k_1')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def search_space_path(name: str) -> Path:
    """``LightGCN`` -> the shipped ``properties/search/LightGCN.yaml``; a path -> itself."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        if not candidate.is_file():
            raise SuiteError(f"search space file not found: {candidate}")
        return candidate
    from recbole_llm.utils import properties_dir

    shipped = properties_dir() / "search" / f"{name}.yaml"
    if not shipped.is_file():
        raise SuiteError(f"no search space '{name}': expected {shipped} or a path to a yaml file")
    return shipped


def _tune_options(ws: Workspace, dataset: DatasetEntry, model: ModelEntry, key: str):
    """The search's options; its folder is named by the trial set's key, so another search never shares it."""
    from recbole_llm.tune import TuneOptions

    settings = {"verbose": 0, "scheduler": "fifo", **ws.suite.tuning}
    try:
        return TuneOptions(
            num_samples=ws.suite.trials,
            output=str(ws.work_dir / "tune" / slug(dataset.name) / slug(model.name) / key),
            **settings,
        )
    except TypeError as exc:
        allowed = ", ".join(f.name for f in dataclasses.fields(TuneOptions) if f.name not in ("num_samples", "output"))
        raise SuiteError(f"{ws.suite.path}: unknown key in 'tuning' ({exc}); allowed: trials, {allowed}") from exc


# Tuning options that say where trials run, not what they search: left out of a trial set's key.
RESOURCE_OPTIONS = frozenset(
    {
        "cpus_per_trial",
        "gpus_per_trial",
        "max_concurrent",
        "ray_address",
        "ray_num_cpus",
        "verbose",
        "snapshot_interval_s",
        "trials_last",  # the order of the trials, not which ones
    }
)


def trial_set_key(ws: Workspace, dataset: DatasetEntry, model: ModelEntry, config_file: str) -> str:
    """Key of one model's search on one dataset: changes when the space, protocol, config or model code changes."""
    space = search_space_path(model.search_space).read_text(encoding="utf-8") if model.search_space else None
    return content_key(
        "trials",
        model.model,
        {
            "dataset": dataset.name,
            "label": model.name,
            "space": space,
            "trials": ws.suite.trials,
            "tuning": {k: v for k, v in ws.suite.tuning.items() if k not in RESOURCE_OPTIONS},
            "config": resolved_config(model.model, dataset.name, [config_file], {}),
        },
    )


def tune_model(ws: Workspace, dataset: DatasetEntry, model: ModelEntry) -> dict[str, Any]:
    """Stage (a) for one model: its stored trial set, or a Ray Tune search on validation (its stored
    trials kept: only the others run)."""
    config_file = ws.fixed_config_file(dataset, model)
    key = trial_set_key(ws, dataset, model, config_file)
    if key in ws.store:
        return ws.store.get(key)
    if ws.tuned_only:
        raise BenchmarkError(
            f"no stored tuning of {model.name} on {dataset.name} for this suite's settings: run "
            f"`python run_recbole_llm.py --benchmark={ws.suite.path}` first"
        )
    entry: dict[str, Any] = {
        "kind": "trials",
        "key": key,
        "suite": ws.suite.name,
        "dataset": dataset.name,
        "model": model.name,
        "model_name": model.model,
        "code": model_code_version(model.model),
        "budget": ws.suite.trials,
        "tuned": model.search_space is not None,
    }
    started = time.perf_counter()
    if model.search_space is None:
        entry.update(best_params={}, completed=0, best_valid_score=None, trials_file=None)
    else:
        entry.update(_search(ws, dataset, model, config_file, key))
    entry["seconds"] = round(time.perf_counter() - started + entry.pop("earlier_seconds", 0.0), 1)
    ws.stored(entry)
    return entry


class StoredTrials:
    """The suite's store as a search's ledger (``recbole_llm.tune.ledger``): the trials of one trial set.

    Every search that adds to the set has its own id (``search``), so a set finished by several searches
    (after a kill, or on several machines) says so: ASHA compared its trials only within each search.
    """

    def __init__(self, ws: Workspace, set_key: str) -> None:
        self.ws, self.set_key, self.search = ws, set_key, uuid.uuid4().hex[:12]

    def entries(self) -> list[dict[str, Any]]:
        return [e for e in self.ws.store.entries("trial") if e["set_key"] == self.set_key]

    def stored(self) -> list[tuple[dict[str, Any], float]]:
        return [(e["params"], e["best_valid_score"]) for e in self.entries()]

    def add(self, params: dict[str, Any], outcome: dict[str, Any]) -> None:
        key = trial_key(self.set_key, params)
        if key not in self.ws.store:
            entry = {"kind": "trial", "key": key, "set_key": self.set_key, "params": params, **outcome}
            self.ws.stored({**entry, "search": self.search})


def _search(ws: Workspace, dataset: DatasetEntry, model: ModelEntry, config_file: str, key: str) -> dict[str, Any]:
    """Run the trials not stored yet (each stored as it finishes) and sum up the stored ones for the store."""
    from recbole_llm.tune import run_tune

    ledger = StoredTrials(ws, key)
    options = _tune_options(ws, dataset, model, key)
    summary = run_tune(
        model.model,
        dataset.name,
        search_space_path(model.search_space),
        [config_file],
        [],
        options,
        command=f"{ws.command}  # tuning {model.name} on {dataset.name}",
        ledger=ledger,
    )
    trials = ledger.entries()
    best = _best_trial(trials, summary.mode)
    if best is None:
        raise BenchmarkError(f"every tuning trial of {model.name} on {dataset.name} failed: see {summary.output_dir}")
    searches = len({t["search"] for t in trials})
    entry = {
        "best_params": best["params"],
        "best_valid_score": float(best["best_valid_score"]),
        "metric": summary.metric,
        "completed": sum(t["status"] == "completed" for t in trials),
        "trials_file": portable_path(str(summary.output_dir)),
        "searches": searches,
        # the time of the trials that earlier searches ran, and of this search's resumed trials before their
        # snapshots (this search's own time is added by the caller)
        "earlier_seconds": round(sum(_earlier_seconds(t, ledger.search) for t in trials), 1),
    }
    if searches > 1:
        entry["note"] = f"trials stored by {searches} searches (a kill or another machine between them)" + (
            "; ASHA compared trials only within each search" if options.scheduler == "asha" else ""
        )
    return entry


def _earlier_seconds(trial: dict[str, Any], search: str) -> float:
    """A stored trial's time spent before ``search``: all of it if another search ran it, else its time
    before the snapshot it resumed from (0 for a trial this search ran from the start)."""
    return trial.get("seconds", 0.0) if trial["search"] != search else trial.get("resumed_seconds", 0.0)


def _best_trial(trials: list[dict[str, Any]], mode: str) -> dict[str, Any] | None:
    """The best stored trial by validation score, by the rule of ``recbole_llm.tune.report.pick_best``:
    the best completed trial, else the best stopped early by ASHA."""
    for status in ("completed", "stopped early"):
        candidates = [t for t in trials if t["status"] == status]
        if candidates:
            pick = max if mode == "max" else min
            return pick(candidates, key=lambda t: t["best_valid_score"])
    return None


def portable_path(path: str | None) -> str | None:
    """A path as the committed store keeps it: relative to the working folder, never this machine's root."""
    if path is None:
        return None
    resolved = Path(path).resolve()
    return str(resolved.relative_to(Path.cwd())) if resolved.is_relative_to(Path.cwd()) else resolved.name


#: Fields of a run record that name files on the machine that ran it (the checkpoint, OIE's history).
PATH_FIELDS = ("saved_model_file", "oie_history_file")


def portable_record(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with every file path in it made portable (:func:`portable_path`), for the committed store."""
    return {k: portable_path(v) if k in PATH_FIELDS else v for k, v in record.items()}


def final_run_key(
    ws: Workspace, dataset: DatasetEntry, model: ModelEntry, params: dict[str, Any], seed: int, config_file: str
) -> str:
    run_dict = {**params, "min_epochs": ws.suite.min_epochs, "seed": seed}
    config = resolved_config(model.model, dataset.name, [config_file], run_dict)
    return content_key("run", model.model, {"dataset": dataset.name, "label": model.name, "config": config})


def stored_results(ws: Workspace) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[tuple[str, str], int]]:
    """(trial sets, final runs, searching) of the whole suite found in the store, nothing run: a run restricted
    to some models or datasets still reports every result of the suite, not only its own. ``searching`` maps
    (dataset, model) to the trials stored of a search not finished yet (a trial set is stored only at its end)."""
    trial_sets, runs, searching = [], [], {}
    for dataset in ws.suite.datasets:
        for model in ws.suite.models_on(dataset):
            config_file = ws.fixed_config_file(dataset, model)
            try:
                set_key = trial_set_key(ws, dataset, model, config_file)
            except DatasetNotFoundError as err:  # its keys need its conversion
                logger.warning("The report leaves out %s: %s", dataset.name, err)
                break
            trial_set = ws.store.get(set_key)
            if trial_set is None:
                searching[(dataset.name, model.name)] = len(StoredTrials(ws, set_key).entries())
                continue
            trial_sets.append(trial_set)
            for seed in ws.suite.seeds:
                key = final_run_key(ws, dataset, model, trial_set["best_params"], seed, config_file)
                if key in ws.store:
                    runs.append(ws.store.get(key))
    return trial_sets, runs, searching


def _run_folders(ws: Workspace, dataset: DatasetEntry, model: ModelEntry, seed: int) -> dict[str, str]:
    """A checkpoint folder per seed: RecBole names a checkpoint by model and second, so two seeds run side by
    side (``--jobs``) would write and read one file. (OIE's cache is suite-wide: ``Workspace.run_config``.)"""
    return {"checkpoint_dir": str(ws.work_dir / "saved" / slug(dataset.name) / slug(model.name) / f"seed-{seed}")}


def final_run(
    ws: Workspace, dataset: DatasetEntry, model: ModelEntry, params: dict[str, Any], seed: int
) -> tuple[str, dict[str, Any]]:
    """Stage (b) for one seed: (key, stored entry or the record of a failed run, not stored)."""
    config_file = ws.fixed_config_file(dataset, model)
    key = final_run_key(ws, dataset, model, params, seed, config_file)
    if key in ws.store:
        return key, ws.store.get(key)
    overrides = {**params, "min_epochs": ws.suite.min_epochs, **_run_folders(ws, dataset, model, seed)}
    job = Job(
        model.model,
        dataset.name,
        overrides,
        seed,
        label=model.name,
        config_file_list=(config_file,),
        threads=ws.threads_per_run(),
        snapshot_file=str(ws.work_dir / "snapshots" / f"{key}{SNAPSHOT_SUFFIX}"),
    )
    record = run_job(job, extra_result=oie_history)  # AAE/SA history for sequential models (else nothing)
    if record["status"] != "ok":
        return key, record
    entry = {
        "kind": "run",
        "key": key,
        "suite": ws.suite.name,
        "code": model_code_version(model.model),
        "params": params,
        **portable_record(record),
        "dataset": dataset.name,
    }
    if ws.jobs > 1:  # its s/epoch was measured beside other runs
        entry.update(concurrent_jobs=ws.jobs, threads=ws.threads_per_run())
    ws.stored(entry)
    return key, entry
