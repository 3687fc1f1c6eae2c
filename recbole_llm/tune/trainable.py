"""One trial: runs inside a Ray worker, in its own trial folder, and reports every validation to Ray."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recbole_llm.trainer.snapshot import SNAPSHOT_SUFFIX, TrainingSnapshot
from recbole_llm.tune.space import plain

# The index of a random search's configuration among those drawn up front (Ray's grid over them); not a setting.
TRIAL_INDEX_KEY = "recbole_llm_trial_index"


@dataclass
class TrialSettings:
    """What every trial shares: the model, the data and the constant settings (sent to each worker)."""

    model: str
    dataset: str | None
    config_file_list: list[str] | None
    config_dict: dict[str, Any]
    cpus_per_trial: float
    gpus_per_trial: float
    snapshot_dir: str | None = None  # where cut trials keep their state (recbole_llm.trainer.snapshot); None: nowhere
    snapshot_interval_s: float = 60.0  # least seconds between two snapshots of a trial (0: every validation)


class TuneReportMixin:
    """Trainer mixin: reports each validation result to Ray Tune (``ray.air.session``) as it happens.

    Every RecBole trainer validates through ``_valid_epoch``, so reporting there works whatever
    ``fit`` looks like. The running best and whether training ends there follow RecBole's own
    ``early_stopping`` rule on the trainer's state, exactly what ``fit`` applies right after; a
    trial that reports ``finished`` ran to its end (ASHA did not stop it). ``node_id`` names the
    Ray node the trial ran on (column ``node`` of ``trials.csv``; on one machine all nodes share an IP).
    The reports are part of a snapshot (``recbole_llm.trainer.snapshot``): a resumed trial makes them
    again (:meth:`replay_reports`), and its reports carry ``resumed_at_epoch`` and ``resumed_seconds``.
    """

    snapshot_attributes = ("tune_reports", "tune_best_epoch", "tune_history")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tune_reports = 0
        self.tune_best_epoch: int | None = None
        self.tune_history: list[dict[str, Any]] = []  # every report, for a resumed trial to make again
        self.tune_resumed: dict[str, Any] = {}  # resumed_at_epoch / resumed_seconds of a resumed trial

    def replay_reports(self, snapshot: TrainingSnapshot) -> None:
        """After a resume: the reports made before the snapshot, again (Ray counts them; ASHA may stop here)."""
        from ray.air import session

        self.tune_resumed = {"resumed_at_epoch": snapshot.resumed_at_epoch, "resumed_seconds": snapshot.resumed_seconds}
        for report in self.tune_history:
            session.report({**report, **self.tune_resumed})

    def _valid_epoch(self, *args: Any, **kwargs: Any):
        from ray.air import session
        from recbole.utils import early_stopping

        valid_score, valid_result = super()._valid_epoch(*args, **kwargs)
        self.tune_reports += 1
        best, _, stop, improved = early_stopping(
            valid_score,
            self.best_valid_score,
            self.cur_step,
            max_step=self.stopping_step,
            bigger=self.valid_metric_bigger,
        )
        epoch = self.tune_reports * self.eval_step
        if improved:  # the checkpoint RecBole keeps; 0-based like the final runs' best epoch
            self.tune_best_epoch = epoch - 1
        report = self._tune_report(valid_score, valid_result, best, epoch, bool(stop))
        self.tune_history.append(report)
        session.report({**report, **self.tune_resumed})
        return valid_score, valid_result

    def _tune_report(self, valid_score, valid_result, best, epoch: int, stop: bool) -> dict[str, Any]:
        import ray

        return {
            **{str(k): float(v) for k, v in dict(valid_result).items()},
            "valid_score": float(valid_score),
            "best_valid_score": float(best),
            "best_epoch": self.tune_best_epoch,
            "epoch": epoch,
            "finished": bool(stop or epoch + self.eval_step > self.epochs),
            # which cluster node ran the trial (None when called outside a Ray worker, e.g. in a test)
            "node_id": ray.get_runtime_context().get_node_id() if ray.is_initialized() else None,
        }


def _trial_config_dict(params: dict[str, Any], settings: TrialSettings) -> dict[str, Any]:
    """The trial's settings: shared ones, the sampled values, and the device Ray gave this worker."""
    config_dict = {**settings.config_dict, **searched_values(params)}
    config_dict["use_gpu"] = settings.gpus_per_trial > 0
    if settings.gpus_per_trial > 0:
        # RecBole's Config sets CUDA_VISIBLE_DEVICES from gpu_id: keep the GPU(s) Ray gave us.
        config_dict["gpu_id"] = os.environ.get("CUDA_VISIBLE_DEVICES", "0")
    return config_dict


def searched_values(params: dict[str, Any]) -> dict[str, Any]:
    """A trial's sampled values without the index of a random search's configuration (it changes between searches)."""
    return {k: plain(v) for k, v in params.items() if k != TRIAL_INDEX_KEY}


def snapshot_path(params: dict[str, Any], settings: TrialSettings) -> Path | None:
    """Where the trial with these values keeps its snapshot (None: snapshots off)."""
    if settings.snapshot_dir is None:
        return None
    files = [Path(f).read_text(encoding="utf-8") for f in settings.config_file_list or ()]
    trial = [settings.model, settings.dataset, settings.config_dict, files, searched_values(params)]
    digest = hashlib.sha256(json.dumps(trial, sort_keys=True, default=str).encode("utf-8")).hexdigest()
    return Path(settings.snapshot_dir) / f"{digest[:20]}{SNAPSHOT_SUFFIX}"


def trainable(params: dict[str, Any], settings: TrialSettings) -> None:
    """Train one configuration, reporting every validation; returns nothing (ASHA-compatible).

    A trial cut by a kill goes on from its snapshot (``settings.snapshot_dir``) when it runs again.
    """
    import torch
    from recbole.utils import init_logger, init_seed

    import recbole_llm  # noqa: F401  (compatibility layer in this worker)
    from recbole_llm.config import Config
    from recbole_llm.quick_start import build

    torch.set_num_threads(max(1, int(settings.cpus_per_trial)))
    config = Config(settings.model, settings.dataset, settings.config_file_list, _trial_config_dict(params, settings))
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)  # into this trial's own folder (Ray made it the working directory)
    _, train_data, valid_data, _, _, trainer = build(config, extra_mixins=(TuneReportMixin,))
    path = snapshot_path(params, settings)
    snapshot = TrainingSnapshot(path, train_data, settings.snapshot_interval_s) if path is not None else None
    if snapshot is not None and snapshot.restore(trainer):
        trainer.replay_reports(snapshot)
    callback = snapshot.callback(trainer) if snapshot is not None else None
    trainer.fit(train_data, valid_data, verbose=False, saved=False, show_progress=False, callback_fn=callback)
    if trainer.tune_reports == 0:
        raise RuntimeError("the trial trained without a single validation: set eval_step >= 1 and epochs >= eval_step")
    if snapshot is not None:
        snapshot.discard()
