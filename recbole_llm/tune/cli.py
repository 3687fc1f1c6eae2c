"""``python run_recbole_llm.py --tune=<space> --model=X ...``: the tuning flags and the exit status."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import Any

from recbole_llm.tune.options import TuneOptions, trial_numbers
from recbole_llm.tune.runner import run_tune
from recbole_llm.tune.space import SearchSpaceError

# The tuning flags (fields of TuneOptions set from the command line) and how each is read.
OPTION_TYPES: dict[str, Callable[[str], Any]] = {
    "num_samples": int,
    "search_alg": str,
    "scheduler": str,
    "grace_period": int,
    "reduction_factor": float,
    "cpus_per_trial": float,
    "gpus_per_trial": float,
    "max_concurrent": int,
    "time_budget_s": float,
    "ray_address": str,
    "ray_num_cpus": int,
    "verbose": int,
    "snapshot_interval_s": float,
    "trials_last": trial_numbers,
}


def split_tune_flags(overrides: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """Separate the tuning flags (``--num_samples=..`` ...) from RecBole config overrides."""
    options: dict[str, Any] = {}
    rest: list[str] = []
    for arg in overrides:
        name, _, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if name not in OPTION_TYPES:
            rest.append(arg)
            continue
        try:
            options[name] = OPTION_TYPES[name](value)
        except SearchSpaceError:  # a reader's own message (a ValueError too)
            raise
        except ValueError as exc:
            raise SearchSpaceError(f"--{name}: cannot read '{value}' as {OPTION_TYPES[name].__name__}") from exc
    return options, rest


def _command_line(args: argparse.Namespace, overrides: Sequence[str]) -> str:
    """The command as typed (normalised), for the report and ``best.yaml``'s header."""
    flags = [f"--tune={args.tune}", f"--model={args.model}"]
    flags += [
        f"--{name}={getattr(args, name)}" for name in ("dataset", "config_files", "output") if getattr(args, name)
    ]
    return "python run_recbole_llm.py " + " ".join(shlex.quote(a) for a in [*flags, *overrides])


def run_from_cli(args: argparse.Namespace, overrides: Sequence[str]) -> int:
    """Run the search, print where the results are; 2 for a bad space or flag, 1 when every trial failed."""
    try:
        tune_flags, config_overrides = split_tune_flags(overrides)
        options = TuneOptions(output=args.output, **tune_flags)
        config_files = args.config_files.strip().split(" ") if args.config_files else None
        summary = run_tune(
            args.model, args.dataset, args.tune, config_files, config_overrides, options, _command_line(args, overrides)
        )
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
