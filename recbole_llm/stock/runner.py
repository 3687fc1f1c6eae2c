"""``python run_recbole_llm.py --task=stock ...``: one run, several seeds, or several models, and the printout.

    --task=stock --model=StockMixer --dataset=nasdaq --epochs=1        # one run, test metrics printed
    --task=stock --model=EDSMF --signals=signals.json                  # the two-context ensemble
    --task=stock --model=StockMixer --seeds=3 [--output=DIR]           # seeds 2020-2022, mean ± std
    --task=stock --compare=StockMixer,RankLSTM --seeds=3 --reference=RankLSTM --output=DIR
    --task=stock --tune=StockMixer --model=StockMixer --num_samples=8     # Ray Tune (recbole_llm.stock.tune)

Several seeds or models go through the project's comparison runner (:func:`recbole_llm.compare.run_jobs`):
each run in its own process, ``comparison.md`` / ``.csv`` / ``.png`` rewritten after each run.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from recbole_llm.stock.config import StockConfig
from recbole_llm.validation import ConfigError

if TYPE_CHECKING:
    import argparse

    from recbole_llm.compare import Job

logger = logging.getLogger(__name__)
#: What the printout and the comparison tables show, in this order (``prec@N`` / ``sharpe@K`` follow the config).
METRIC_ORDER = ("ic", "rank_ic", "icir", "prec@", "sharpe@")


def metric_names(result: dict[str, float]) -> list[str]:
    return [
        k for prefix in METRIC_ORDER for k in result if k == prefix or (prefix.endswith("@") and k.startswith(prefix))
    ]


def run_stock(
    model: str,
    dataset: str | None = None,
    config_file_list: Sequence[str] | None = None,
    config_dict: dict[str, Any] | None = None,
    cmd_args: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Train and evaluate one stock model; returns the result dict (metrics, epochs, timings)."""
    from recbole.utils import init_seed

    from recbole_llm.stock.data import load_stock_data
    from recbole_llm.stock.trainer import fit_edsmf, fit_model, peak_memory_mb

    config = StockConfig(model, dataset, config_file_list, config_dict, cmd_args)
    if int(config["threads"]) > 0:
        torch.set_num_threads(int(config["threads"]))
    init_seed(int(config["seed"]), bool(config["reproducibility"]))
    started = time.perf_counter()
    data, signals = load_stock_data(config)
    logger.info(
        "panel %s: %d tickers x %d days, channels %s", config["dataset"], *data.features.shape[:2], data.channels
    )
    if config["model"] == "EDSMF":
        if signals is None:
            raise ConfigError(
                "EDSMF needs a signal file: --signals=<file> (stand-in: run_recbole_llm.py stock-signals)"
            )
        result = fit_edsmf(config, data, signals)
    else:
        result = fit_model(config, data)
    result.pop("valid_outputs", None)
    result.pop("test_outputs", None)
    result.update(dataset=config["dataset"], model=config["model"], seed=int(config["seed"]))
    result.update(peak_memory_mb=peak_memory_mb(), wall_s=time.perf_counter() - started)
    return result


def stock_job_work(job: Job) -> dict[str, Any]:
    """A comparison job's work in its child process (module-level, so it pickles).

    The trainer's epoch lines go to the child's stderr, the comparison's log: a run takes up to an hour on a CPU.
    """
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {job.model} seed {job.seed}: %(message)s")
    files = list(job.config_file_list) if job.config_file_list else None
    return run_stock(job.model, job.dataset, files, job.overrides(), list(job.cmd_args))


def format_result(result: dict[str, float]) -> str:
    return ", ".join(f"{k} {result[k]:.4f}" for k in metric_names(result))


def _run_jobs(args, argv: list[str], models: list[str], overrides: list[str]) -> int:
    from recbole_llm.compare import Job, parse_seeds, run_jobs

    seed_flags = [a for a in overrides if a.startswith("--seed=")]
    base_seed = int(seed_flags[-1].split("=", 1)[1]) if seed_flags else 2020
    overrides = [a for a in overrides if not a.startswith("--seed=")]
    files = tuple(args.config_files.split()) if args.config_files else None
    configs = [StockConfig(m, args.dataset, files, None, overrides) for m in models]  # every mistake before a run
    jobs = [
        Job(m, args.dataset or "nasdaq", {}, seed, config_file_list=files, cmd_args=tuple(overrides))
        for m in models
        for seed in parse_seeds(args.seeds or "1", base_seed)
    ]
    output = args.output or f"saved/stock/{'-'.join(models)}-{args.dataset or 'nasdaq'}"
    command = "python run_recbole_llm.py " + " ".join(shlex.quote(a) for a in argv)
    metrics = ["ic", "rank_ic", "icir", f"prec@{configs[0]['precision_at']}", f"sharpe@{configs[0]['portfolio_size']}"]
    runs = run_jobs(jobs, output, args.reference, command, work=stock_job_work, metrics=metrics, resume=args.resume)
    failed = int((runs["status"] != "ok").sum()) if "status" in runs else 0
    print(f"{len(runs) - failed} run(s) finished, {failed} failed; table: {output}/comparison.md")
    return 1 if failed == len(runs) else 0


def _run_tune(args, overrides: list[str]) -> int:
    from recbole_llm.stock.tune import run_stock_tune
    from recbole_llm.tune import SearchSpaceError, split_tune_flags

    try:
        tune_flags, overrides = split_tune_flags(overrides)
        summary = run_stock_tune(args, overrides, tune_flags)
    except SearchSpaceError as exc:
        raise ConfigError(str(exc)) from exc
    print(f"trials: {summary.markdown_path} ({len(summary.trials)} trials)")
    if summary.best is None:
        print("error: every trial failed; see the error column of trials.md")
        return 1
    print(f"best {summary.metric} = {summary.best['best_valid_score']:.6g}; rerun: {summary.rerun_command}")
    return 0


def run_from_cli(args: argparse.Namespace, argv: list[str], overrides: list[str]) -> int:
    """The ``--task=stock`` branch of the entry point (configuration mistakes raise ConfigError)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.tune:
        return _run_tune(args, overrides)
    if args.compare or args.seeds:
        models = [m.strip() for m in (args.compare or args.model).split(",") if m.strip()]
        return _run_jobs(args, argv, models, overrides)
    files = args.config_files.split() if args.config_files else None
    result = run_stock(args.model, args.dataset, files, None, overrides)
    print(f"best valid ({result['best_epoch'] + 1} epochs to best): {format_result(result['best_valid_result'])}")
    if "ensemble_weight" in result:
        print(f"ensemble weight on {result['contexts'][0]}: {result['ensemble_weight']:.2f} (chosen on validation)")
    print(f"test result: {format_result(result['test_result'])}")
    return 0
