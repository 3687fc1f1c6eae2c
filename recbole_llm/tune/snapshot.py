"""Mid-trial snapshots: a trial cut by a kill goes on from its last snapshot when the search runs again.

Why: a ledger keeps finished trials only, and some trials outlast a working session (RecBole's LightGCN
on the globo news clicks: about 26 s per epoch for hundreds of epochs on 2 CPU cores). Without snapshots
such a trial would start from epoch 0 at every rerun and its search could never finish. After a
validation (at most every ``snapshot_interval_s`` seconds) a trial writes its whole training state to one
file named by everything that defines the trial: the model and optimizer, RecBole's early-stopping
counters, every random generator (Python, NumPy, torch, the training loader's shuffle generator) and the
reports made so far. A trial that finds its file replays those reports to Ray (so ASHA, the epoch count
and the ledger see the whole history), restores the state and trains on from the next epoch: the
validations that follow are the ones an uninterrupted trial makes. A file that no longer fits (another
model version) is a warning and a fresh start, never a wrong resume. The file goes when the trial ends.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

SNAPSHOT_SUFFIX = ".snapshot.pt"


def snapshot_name(model: str, dataset: str | None, config_dict: dict[str, Any], params: dict[str, Any]) -> str:
    """File name of a trial's snapshot: a hash of the model, the dataset, the shared settings and the sampled values."""
    text = json.dumps([model, dataset, config_dict, params], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20] + SNAPSHOT_SUFFIX


def _random_states(train_data: Any) -> dict[str, Any]:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    generator = getattr(train_data, "generator", None)
    if isinstance(generator, torch.Generator):
        states["loader"] = generator.get_state()
    return states


def _set_random_states(states: dict[str, Any], train_data: Any) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    if "loader" in states:
        train_data.generator.set_state(states["loader"])


@dataclass
class TrainingProgress:
    """Where RecBole's ``fit`` stands after a validation: epochs trained and its early-stopping state."""

    epochs: int
    best_valid_score: float
    cur_step: int
    best_valid_result: Any


@dataclass
class TrialSnapshot:
    """One trial's snapshot file; ``interval_s`` is the least time between two writes (0: every validation)."""

    path: Path
    train_data: Any
    interval_s: float = 60.0
    last_write: float = field(default_factory=time.monotonic)

    def save(self, trainer: Any, progress: TrainingProgress) -> None:
        """Write the state after this validation (atomically) once the interval has passed since the last write."""
        if time.monotonic() - self.last_write < self.interval_s:
            return
        state = {
            "progress": progress,
            "reports": list(trainer.tune_history),
            "best_epoch": trainer.tune_best_epoch,
            "seconds": trainer.tune_seconds(),
            "model": trainer.model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "random": _random_states(self.train_data),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".part")
        torch.save(state, partial)
        os.replace(partial, self.path)  # a kill mid-write leaves the previous snapshot whole
        self.last_write = time.monotonic()

    def load(self) -> dict[str, Any] | None:
        """The stored state, or None (no file, or one that cannot be read: a warning, then a fresh start)."""
        if not self.path.exists():
            return None
        try:
            return torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a file cut by a kill mid-write is never renamed, but a disk can still fail
            logger.warning("trial snapshot %s unreadable (%s): the trial starts from epoch 0", self.path, exc)
            return None

    def restore(self, trainer: Any, state: dict[str, Any]) -> bool:
        """Put ``state`` into ``trainer`` (and the training loader); False, with a warning, when it does not fit."""
        try:
            trainer.model.load_state_dict(state["model"])
            trainer.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            logger.warning("trial snapshot %s does not fit (%s): the trial starts from epoch 0", self.path, exc)
            return False
        progress: TrainingProgress = state["progress"]
        trainer.start_epoch = progress.epochs
        trainer.best_valid_score, trainer.cur_step = progress.best_valid_score, progress.cur_step
        trainer.best_valid_result = progress.best_valid_result
        trainer.resume_tuning(state["reports"], state["best_epoch"], float(state["seconds"]))
        _set_random_states(state["random"], self.train_data)
        return True

    def discard(self) -> None:
        """Remove the file (the trial ended: a rerun does not run it again)."""
        self.path.unlink(missing_ok=True)
