"""Training snapshots: a final run or a tuning trial cut by a kill goes on from its last validation.

Why: the benchmark store keeps finished runs and trials only, and some outlast a working session
(RecBole's LightGCN on the globo news clicks: about 26 s per epoch for hundreds of epochs on 2 CPU
cores); without snapshots such a job starts from epoch 0 at every rerun and may never finish. After a
validation (at most every ``interval_s`` seconds) the whole training state goes to one file: model and
optimizer, RecBole's early-stopping state and best checkpoint's name, what each trainer mixin declares in
``snapshot_attributes`` (epoch times, a search's reports, OIE's history), every random generator (Python,
NumPy, torch, the training loader's shuffle generator) and the validations so far. A job that finds its
file restores all of it, replays the validations to its callback and trains on from the next epoch: the
validations that follow are the ones an uncut job makes. A file that does not fit (another model
version, a best checkpoint gone) is a warning and a fresh start, never a wrong resume. The caller
removes the file when the job ends.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

SNAPSHOT_SUFFIX = ".snapshot.pt"
#: RecBole's ``callback_fn``: called after each validation with the epoch index and the validation score.
Callback = Callable[[int, float], None]
#: RecBole's own trainer state after a validation (``start_epoch`` is set from the epochs trained).
TRAINER_STATE = ("cur_step", "best_valid_score", "best_valid_result", "saved_model_file")


def snapshot_attributes(trainer: Any) -> list[str]:
    """The trainer attributes a snapshot keeps: RecBole's state and each class's ``snapshot_attributes``."""
    names = list(TRAINER_STATE)
    for cls in type(trainer).__mro__:
        names += cls.__dict__.get("snapshot_attributes", ())
    return list(dict.fromkeys(names))


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
class TrainingSnapshot:
    """One job's snapshot file; ``interval_s`` is the least time between two writes (0: every validation)."""

    path: Path
    train_data: Any
    interval_s: float = 60.0
    validations: list[tuple[int, float]] = field(default_factory=list)  # (epoch, valid score), as fit reports them
    resumed_at_epoch: int | None = None  # epochs trained before the snapshot this job went on from
    resumed_seconds: float = 0.0  # and the seconds they took
    _started: float = field(default_factory=time.monotonic)
    _last_write: float = field(default_factory=time.monotonic)

    def seconds(self) -> float:
        """Seconds this job has trained, the time before a resume included."""
        return self.resumed_seconds + time.monotonic() - self._started

    def callback(self, trainer: Any, callback_fn: Callback | None = None) -> Callback:
        """RecBole's ``callback_fn`` for ``fit``: keeps the validation, saves, then calls ``callback_fn``."""

        def after_validation(epoch_idx: int, valid_score: float) -> None:
            self.validations.append((int(epoch_idx), float(valid_score)))
            self.save(trainer, epoch_idx)
            if callback_fn is not None:
                callback_fn(epoch_idx, valid_score)

        return after_validation

    def save(self, trainer: Any, epoch_idx: int) -> None:
        """Write the state after this epoch's validation, atomically, once the interval has passed; not after
        the last epoch (``fit`` stops there: a resume would train on past the stop)."""
        stopping = trainer.cur_step > trainer.stopping_step or epoch_idx + 1 >= trainer.epochs
        if stopping or time.monotonic() - self._last_write < self.interval_s:
            return
        state = {
            "epochs": epoch_idx + 1,
            "trainer": {name: getattr(trainer, name) for name in snapshot_attributes(trainer)},
            "validations": list(self.validations),
            "seconds": self.seconds(),
            "model": trainer.model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "random": _random_states(self.train_data),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".part")
        torch.save(state, partial)
        os.replace(partial, self.path)  # a kill mid-write leaves the previous snapshot whole
        self._last_write = time.monotonic()

    def _load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            return torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a file cut by a kill mid-write is never renamed, but a disk can still fail
            logger.warning("snapshot %s unreadable (%s): training starts from epoch 0", self.path, exc)
            return None

    def restore(self, trainer: Any, callback_fn: Callback | None = None, saved: bool = False) -> bool:
        """Go on from the file, if any: state into ``trainer`` and the loader, validations replayed to
        ``callback_fn``. ``saved``: the run keeps its best checkpoint, which must still exist. False: fresh start."""
        state = self._load()
        if state is None or not self._fits(state, trainer, saved):
            return False
        trainer.start_epoch = int(state["epochs"])
        for name, value in state["trainer"].items():
            setattr(trainer, name, value)
        _set_random_states(state["random"], self.train_data)
        self.validations, self.resumed_at_epoch = list(state["validations"]), int(state["epochs"])
        self.resumed_seconds, self._started = float(state["seconds"]), time.monotonic()
        for epoch_idx, valid_score in self.validations:
            if callback_fn is not None:
                callback_fn(epoch_idx, valid_score)
        logger.info("resumed from %s after epoch %d", self.path, self.resumed_at_epoch)
        return True

    def _fits(self, state: dict[str, Any], trainer: Any, saved: bool) -> bool:
        """Load the weights and optimizer state; False, with a warning, when they or the best checkpoint do not fit."""
        checkpoint = state["trainer"].get("saved_model_file")
        if saved and not (checkpoint and Path(checkpoint).exists()):
            logger.warning("snapshot %s: best checkpoint %s gone: training starts from epoch 0", self.path, checkpoint)
            return False
        try:
            trainer.model.load_state_dict(state["model"])
            trainer.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            logger.warning("snapshot %s does not fit (%s): training starts from epoch 0", self.path, exc)
            return False
        return True

    def discard(self) -> None:
        """Remove the file (the job ended: a rerun does not run it again)."""
        self.path.unlink(missing_ok=True)
