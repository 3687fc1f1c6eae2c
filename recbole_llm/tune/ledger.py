"""Finished trials kept outside Ray Tune's folder (the benchmark store), so a search resumes on any machine.

Ray Tune saves a search's state in its own folder, on the machine that ran it. A ledger is the caller's
record instead: ``run_tune`` asks it which trials are already done before it starts (a random search runs
only its other configurations; optuna is told the stored results) and hands it each trial the moment the
trial finishes, so a kill loses only the trials that were running (and those go on from their snapshots,
``recbole_llm.trainer.snapshot``, when the rerun is on the same machine).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ray.tune import Callback

from recbole_llm.tune.space import plain


class TrialLedger(Protocol):
    """Where a resumable search's finished trials are kept."""

    def stored(self) -> list[tuple[dict[str, Any], float]]:
        """(sampled values, best validation score) of every trial of this search already kept."""

    def add(self, params: dict[str, Any], outcome: dict[str, Any]) -> None:
        """Keep one finished trial (on disk before returning: the next kill must not lose it)."""


def canonical(params: Mapping[str, Any]) -> str:
    """One text per configuration, whatever the key order: how a planned trial is found among stored ones."""
    return json.dumps({k: plain(v) for k, v in params.items()}, sort_keys=True, default=str)


def finished_trial(
    config: Mapping[str, Any], last_result: Mapping[str, Any] | None, searched: Sequence[str], trial_id: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(values, outcome) of a trial with a validation result; None for one that never reported.

    ``finished`` is set by the trial's last report when it ran to its end (its epochs, or RecBole's early
    stopping); a trial that ended without it was stopped early by ASHA.
    """
    if not last_result or "best_valid_score" not in last_result:
        return None
    params = {key: plain(config.get(key)) for key in searched}
    resumed_seconds = float(last_result.get("resumed_seconds", 0.0))
    outcome = {
        "best_valid_score": float(last_result["best_valid_score"]),
        "status": "completed" if last_result.get("finished") else "stopped early",
        "reports": int(last_result.get("training_iteration", 0)),
        "epochs": int(last_result.get("epoch", 0)),
        "best_epoch": None if last_result.get("best_epoch") is None else int(last_result["best_epoch"]),
        "seconds": round(float(last_result.get("time_total_s", 0.0)) + resumed_seconds, 1),
        "trial": trial_id,
    }
    if "resumed_at_epoch" in last_result:  # went on from a snapshot: its seconds include the time before
        outcome.update(resumed_at_epoch=int(last_result["resumed_at_epoch"]), resumed_seconds=round(resumed_seconds, 1))
    return params, outcome


class LedgerCallback(Callback):
    """Hands each finished trial to the ledger, in the driver, as Ray Tune's loop sees it finish.

    Ray calls ``on_trial_complete`` when a trial returned (it ran to its end) and when the scheduler
    stopped it (ASHA), not for an errored trial, nor for trials cut by a time budget or Ctrl+C: those
    are not finished and run again next time.
    """

    def __init__(self, ledger: TrialLedger, searched: Sequence[str]) -> None:
        self.ledger = ledger
        self.searched = list(searched)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        finished = finished_trial(trial.config, trial.last_result, self.searched, trial.trial_id)
        if finished is not None:
            self.ledger.add(*finished)


class SnapshotCleanup(Callback):
    """Removes a trial's snapshot once the trial has ended (ran to its end, or stopped by ASHA).

    The trial removes it itself when it returns; a trial stopped by the scheduler never returns. Trials
    that failed or were cut keep theirs, to go on next time. In the driver, so not through Ray Client.
    """

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def _discard(self, trial: Any) -> None:
        from recbole_llm.tune.trainable import snapshot_path

        path = snapshot_path(dict(trial.config), self.settings)
        if path is not None:
            path.unlink(missing_ok=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._discard(trial)


def store_results(ledger: TrialLedger, results: Any, searched: Sequence[str]) -> None:
    """Hand every trial of a finished search that has a result and no error to the ledger.

    For Ray Client (``ray://``), where Tune's loop, and so any callback, runs on the cluster: the trials
    are kept when the search returns (a trial cut by a time budget counts as stopped early there).
    """
    for result in results:
        trial_id = (result.metrics or {}).get("trial_id") or Path(result.path).name
        finished = finished_trial(result.config or {}, result.metrics, searched, trial_id)
        if result.error is None and finished is not None:
            ledger.add(*finished)
