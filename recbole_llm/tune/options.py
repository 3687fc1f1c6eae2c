"""How a search runs: the tuning options of ``run_tune`` (the ``--num_samples=..`` flags of the entry point)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from recbole_llm.tune.space import SearchSpaceError

SEARCH_ALGORITHMS = ("random", "optuna", "hyperopt")
SCHEDULERS = ("asha", "fifo")


@dataclass
class TuneOptions:
    """How the search runs (the tuning flags of the entry point)."""

    num_samples: int = 10
    search_alg: str = "random"
    scheduler: str = "asha"
    grace_period: int | None = None  # ASHA: evaluations before a trial can be stopped (default min(5, max))
    reduction_factor: float = 3.0
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    time_budget_s: float | None = None
    ray_address: str | None = None  # None: start a local Ray; "auto" or "host:6379": an existing cluster
    ray_num_cpus: int | None = None  # local Ray only (default: all cores)
    output: str | None = None
    verbose: int = 1  # Ray's progress output (0 silent, 1 status table)
    snapshot_interval_s: float | None = 60.0  # seconds between snapshots of a trial (0: each validation; None: off)
    # Random search: these trials of the sampled order (1-based) run after all the others, e.g. long ones that could
    # not finish before a job's wall-time limit (on a new machine a stopped trial starts again from its first epoch).
    trials_last: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self.trials_last = trial_numbers(self.trials_last)

    def validate(self) -> None:
        """Raise :class:`SearchSpaceError` naming the flag of the first invalid option."""
        if self.num_samples < 1:
            raise SearchSpaceError(f"--num_samples must be >= 1, got {self.num_samples}")
        if self.search_alg not in SEARCH_ALGORITHMS:
            raise SearchSpaceError(
                f"--search_alg must be one of {', '.join(SEARCH_ALGORITHMS)}, got '{self.search_alg}'"
            )
        if self.scheduler not in SCHEDULERS:
            raise SearchSpaceError(f"--scheduler must be one of {', '.join(SCHEDULERS)}, got '{self.scheduler}'")
        if self.trials_last and self.search_alg != "random":
            raise SearchSpaceError(
                "--trials_last needs --search_alg=random: only a random search draws its trials first"
            )
        self._check_search_package()
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise SearchSpaceError("--cpus_per_trial must be > 0 and --gpus_per_trial >= 0")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise SearchSpaceError(f"--max_concurrent must be >= 1, got {self.max_concurrent}")
        if self.reduction_factor <= 1:
            raise SearchSpaceError(f"--reduction_factor must be > 1, got {self.reduction_factor}")
        if self.snapshot_interval_s is not None and self.snapshot_interval_s < 0:
            raise SearchSpaceError(f"--snapshot_interval_s must be >= 0, got {self.snapshot_interval_s}")
        if self.grace_period is not None and self.grace_period < 1:
            raise SearchSpaceError(f"--grace_period must be >= 1, got {self.grace_period}")

    def _check_search_package(self) -> None:
        """optuna / hyperopt are optional: fail before Ray starts when the chosen one does not import."""
        if self.search_alg == "random":
            return
        try:
            importlib.import_module(self.search_alg)
        except Exception as exc:  # missing, or installed but broken (e.g. a missing dependency)
            raise SearchSpaceError(
                f"--search_alg={self.search_alg} needs the '{self.search_alg}' package, which does not import "
                f"({type(exc).__name__}: {exc}): pip install {self.search_alg}"
            ) from exc

    def grace(self, max_reports: int) -> int:
        """ASHA's grace period: evaluations a trial always gets (at most the whole run)."""
        return min(self.grace_period or 5, max_reports)


def trial_numbers(value: object) -> tuple[int, ...]:
    """``--trials_last=3,5`` (text, one number or a sequence) -> (3, 5); one clear error for anything else."""
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
    texts = [str(item).strip() for item in items if str(item).strip()]
    if not all(text.isdigit() and int(text) >= 1 for text in texts):
        raise SearchSpaceError(f"--trials_last takes trial numbers from 1 (e.g. --trials_last=3,5), got '{value}'")
    return tuple(int(text) for text in texts)
