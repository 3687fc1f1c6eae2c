"""Jobs: one (model, dataset, config overrides, seed) training run each, in its own process.

``run_job`` runs one job and returns a flat record (test and validation metrics, epochs, time,
memory, validation curve) or, for a child that died, a record with ``status: failed``, its exit code
and the reason. ``run_jobs`` runs a list of them and rewrites the comparison report after each.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recbole_llm.compare.isolation import ChildOutcome, run_in_child

ExtraResultHook = Callable[[dict, dict], Mapping[str, Any]]
"""``hook(result, config) -> {name: value}``: extra fields for a finished run's record.

``result`` is the run's result dict (``run_recbole_llm``'s, with ``saved_model_file``), ``config`` the
job's config overrides with its seed. Scalars become CSV columns; other values (lists, dicts) are
stored JSON-encoded. Use it to attach what a model writes beside its checkpoint (OIE's AAE/SA history).
"""


@dataclass(frozen=True)
class Job:
    """One training run: ``label`` names its row in the tables (default: the model name)."""

    model: str
    dataset: str | None = None
    config_dict: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 2020
    label: str | None = None
    config_file_list: tuple[str, ...] | None = None
    cmd_args: tuple[str, ...] = ()
    trainer_mixins: tuple[type, ...] = ()
    timeout_s: float | None = None
    #: torch threads of the run's process (None: torch's default, every core); for runs side by side
    threads: int | None = None
    #: where the run keeps its training state, to go on from it after a kill (``recbole_llm.trainer.snapshot``)
    snapshot_file: str | None = None

    @property
    def name(self) -> str:
        return self.label or self.model

    def overrides(self) -> dict[str, Any]:
        """The config dict the run gets: the job's overrides and its seed."""
        return {**dict(self.config_dict), "seed": self.seed}

    def key(self) -> str:
        """A short hash of what decides the run's result, so a resumed comparison knows it finished.

        The settings and the model's code version (its source file's hash, as in the suites' store): a run
        stored before the model's code changed is run again. Timeouts, thread counts, trainer mixins and the
        snapshot file are left out: they change how a run is watched or scheduled, not its settings.
        """
        settings = [self.dataset, self.overrides(), self.config_file_list, list(self.cmd_args)]
        spec = [self.name, self.model, _code_version(self.model), *settings]
        text = json.dumps(spec, sort_keys=True, default=str)
        return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def _code_version(model: str) -> str | None:
    """The model's code version; None for a name no registry knows (its run fails and says why)."""
    from recbole_llm.benchmark.store import model_code_version
    from recbole_llm.utils import UnknownModelError

    try:
        return model_code_version(model)
    except UnknownModelError:
        return None


def train_and_evaluate(job: Job) -> dict[str, Any]:
    """The default work of a job's child process: ``run_recbole_llm`` plus the validation curve.

    The curve comes from RecBole's ``callback_fn`` (called after every validation with the epoch
    and the validation score); the job's trainer mixins go to the composed trainer.
    """
    import recbole_llm  # noqa: F401  (compatibility layer in the fresh process)
    from recbole_llm.quick_start import run_recbole_llm

    if job.threads is not None:
        import torch

        torch.set_num_threads(job.threads)

    history: list[tuple[int, float]] = []
    kwargs: dict[str, Any] = {"callback_fn": lambda epoch, score: history.append((int(epoch), float(score)))}
    kwargs["trainer_mixins"] = tuple(job.trainer_mixins)
    config_files = list(job.config_file_list) if job.config_file_list else None
    result = run_recbole_llm(
        job.model,
        job.dataset,
        config_files,
        job.overrides(),
        saved=True,
        cmd_args=list(job.cmd_args),
        snapshot_file=job.snapshot_file,
        **kwargs,
    )
    result["valid_history"] = history
    return result


def best_epoch(history: Sequence[Sequence[float]], bigger: bool = True) -> int | None:
    """Epoch of the checkpoint RecBole keeps: the last one reaching the best score (it updates on ties)."""
    if not history:
        return None
    best_score = max(s for _, s in history) if bigger else min(s for _, s in history)
    return int([e for e, s in history if s == best_score][-1])


def record_from_result(job: Job, result: Mapping[str, Any], wall_s: float) -> dict[str, Any]:
    """One flat row for the tables: test metrics, ``valid_<metric>``, epochs, s/epoch, memory, curve
    (and, on sequential data, the share of test targets numbered right after their previous item)."""
    times = list(result.get("epoch_times", []))
    history = [list(map(float, h)) for h in result.get("valid_history", [])]
    record: dict[str, Any] = {
        "model": job.name,
        "model_name": job.model,
        "dataset": result.get("dataset", job.dataset),
        "seed": job.seed,
        "status": "ok",
        "exit_code": 0,
        "error": "",
    }
    record.update({k: float(v) for k, v in result["test_result"].items()})
    record.update({f"valid_{k}": float(v) for k, v in (result.get("best_valid_result") or {}).items()})
    record["epochs"] = len(times)
    record["best_epoch"] = best_epoch(history, bool(result.get("valid_score_bigger", True)))
    record["epoch_time_s"] = float(np.mean(times)) if times else float("nan")
    record["peak_memory_mb"] = float(result.get("peak_memory_mb", float("nan")))
    record["wall_s"] = wall_s
    record["valid_history"] = history
    record["saved_model_file"] = result.get("saved_model_file")
    if result.get("resumed_at_epoch") is not None:  # went on from a snapshot: its time before it counts too
        record.update(
            resumed_at_epoch=int(result["resumed_at_epoch"]), resumed_seconds=float(result["resumed_seconds"])
        )
        record["wall_s"] = wall_s + record["resumed_seconds"]
    if result.get("test_consecutive_share") is not None:  # sequential data only
        record["test_consecutive_share"] = float(result["test_consecutive_share"])
    return record


def failure_record(job: Job, outcome: ChildOutcome, wall_s: float) -> dict[str, Any]:
    """A failed job as a results row: a crash shows in the table with its first error line instead of vanishing."""
    first_line = (outcome.error or "").strip().splitlines()
    return {
        "model": job.name,
        "model_name": job.model,
        "dataset": job.dataset,
        "seed": job.seed,
        "status": "failed",
        "exit_code": outcome.exit_code,
        "error": first_line[0] if first_line else "",
        "wall_s": wall_s,
    }


def run_job(
    job: Job, extra_result: ExtraResultHook | None = None, work: Callable[[Job], dict] = train_and_evaluate
) -> dict[str, Any]:
    """Run ``job`` in its own process; a dead or failed child gives a ``failed`` record, never an exception.

    ``work`` is the function the child calls with the job (module-level, picklable).
    """
    started = time.perf_counter()
    outcome = run_in_child(work, job, timeout_s=job.timeout_s)
    wall_s = time.perf_counter() - started
    if not outcome.ok:
        print(f"[compare] {job.name} seed={job.seed} FAILED: {outcome.error.strip().splitlines()[:1]}", flush=True)
        record = failure_record(job, outcome, wall_s)
    else:
        record = record_from_result(job, outcome.result, wall_s)
        if extra_result is not None:
            record.update(dict(extra_result(outcome.result, job.overrides())))
    return {**record, "job_key": job.key()}


def jsonable(value: Any) -> Any:
    """A CSV cell: scalars as they are, lists and dicts as JSON text."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return value
