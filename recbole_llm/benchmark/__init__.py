"""Benchmark suites: every model tuned on validation with the same budget, trained to convergence, resumable.

    python run_recbole_llm.py --benchmark=benchmarks/suites/p4r.yaml [--output=DIR] [--key=value ...]
    python -m recbole_llm.benchmark benchmarks/suites/p4r.yaml [--output=DIR] [--key=value ...]

Stages: (a) tune each model with ``tuning.trials`` Ray Tune trials over its search space on the
validation split; (b) train the best configuration with each final seed through the experiment
runner (early stopping on validation with ``min_epochs``); (c) write ``<output>/<suite>.md``,
``.csv``, ``.png`` and ``_curves.png``. Finished tuning trials, trial sets and runs are stored in
``<output>/<suite>.jsonl``; a rerun, here or on another machine, skips them. ``--key=value`` flags
apply to every run and are part of each run's key only when they change what is computed; Ray Tune
options (``--cpus_per_trial=2``) go to the tuning stage; ``--device=cuda`` trains on the GPU (a result
stored on the CPU is not repeated: the device is not part of the key).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recbole_llm.benchmark.report import write_suite_report
from recbole_llm.benchmark.stages import BenchmarkError, Workspace, final_run, stored_results, tune_model
from recbole_llm.benchmark.store import ResultStore
from recbole_llm.benchmark.suite import Suite, SuiteError, load_suite
from recbole_llm.trainer.min_epochs import MinEpochsMixin

__all__ = [
    "BenchmarkError",
    "MinEpochsMixin",
    "Suite",
    "SuiteError",
    "load_suite",
    "restrict",
    "main",
    "run_from_cli",
    "run_suite",
    "split_overrides",
]

DEFAULT_OUTPUT = Path("benchmarks") / "results"


def _progress(suite: Suite):
    from tqdm.auto import tqdm

    total = sum(len(suite.models_on(d)) for d in suite.datasets) * (1 + len(suite.seeds))
    return tqdm(total=total, desc=f"suite {suite.name}", unit="job", dynamic_ncols=True)


def _advance(bar, label: str, skipped: bool) -> None:
    """A skipped job leaves the bar's total, so the rate and ETA count only work done in this session."""
    if skipped:
        bar.total -= 1
        bar.refresh()
    else:
        bar.update(1)
    bar.set_postfix_str(label)


def _run_stages(ws: Workspace, bar) -> tuple[list[dict], list[dict], list[dict]]:
    """Stages (a) and (b) for every dataset and model; returns (trial sets, stored runs, failed runs).

    One job at a time (``ws.jobs == 1``): each model is tuned, then its seeds run. With ``ws.jobs > 1`` a
    dataset's models are all tuned first (one search at a time), then its final runs go ``ws.jobs`` at once.
    """
    trial_sets, runs, failed = [], [], []
    for dataset in ws.suite.datasets:
        models = ws.suite.models_on(dataset)
        for group in [[m] for m in models] if ws.jobs == 1 else [models]:
            tuned = []
            for model in group:
                bar.set_postfix_str(f"tuning {model.name} on {dataset.name}")
                known = len(ws.store.entries())
                tuned.append((model, tune_model(ws, dataset, model)))
                _advance(bar, f"tuned {model.name}", skipped=len(ws.store.entries()) == known)
            trial_sets += [trial_set for _, trial_set in tuned]
            for entry in _final_stage(ws, dataset, tuned, bar):
                (runs if entry.get("status") == "ok" else failed).append(entry)
    return trial_sets, runs, failed


def _final_stage(ws: Workspace, dataset, tuned: list[tuple[Any, dict]], bar) -> list[dict[str, Any]]:
    """Every seed of every (model, trial set) in ``tuned``, ``ws.jobs`` runs at a time (threads that each
    wait on a run's own process); entries in the suite's order, whatever order they finish in."""
    from concurrent.futures import ThreadPoolExecutor

    def one(model, trial_set, seed: int) -> dict[str, Any]:
        known = {e["key"] for e in ws.store.entries()}
        key, entry = final_run(ws, dataset, model, trial_set["best_params"], seed)
        with ws.lock:
            _advance(bar, f"{model.name} seed {seed}", skipped=key in known)
        return entry

    tasks = [(model, trial_set, seed) for model, trial_set in tuned for seed in ws.suite.seeds]
    if ws.jobs == 1:  # in this thread: Ctrl-C and errors stop the suite at once
        return [one(*task) for task in tasks]
    pool = ThreadPoolExecutor(max_workers=ws.jobs, thread_name_prefix="final-run")
    try:
        return list(pool.map(lambda task: one(*task), tasks))
    finally:  # after Ctrl-C or an error, start nothing more (the runs under way end with their processes)
        pool.shutdown(wait=True, cancel_futures=True)


def run_suite(
    suite: Suite,
    output_dir: str | Path = DEFAULT_OUTPUT,
    work_dir: str | Path | None = None,
    command: str | None = None,
    on_stored: Callable[[dict[str, Any]], None] | None = None,
    tuned_from: str | Path | None = None,
    report_suite: Suite | None = None,
    jobs: int = 1,
) -> Path:
    """Run (or resume) a suite and write its report; returns the path of ``<suite>.md``.

    ``on_stored`` sees every newly stored entry (tuning trial, trial set or final run) right after it is
    on disk; for a tuning trial that is inside Ray Tune's loop, in this thread.
    ``tuned_from``: another suite store whose trial sets (the tuned configurations) are reused; only
    the final stage runs then (the demo: committed tunings, fresh final runs in another folder).
    ``report_suite``: the whole suite when ``suite`` is restricted to some of its models, datasets or seeds:
    the report then shows every result of it in the store, the ones stored by earlier commands too.
    ``jobs``: final runs side by side, each with ``cores // jobs`` torch threads (their s/epoch, stored with
    ``concurrent_jobs``, is then not the one-at-a-time figure); tuning always runs one search at a time.
    """
    if jobs < 1:
        raise SuiteError(f"--jobs must be at least 1, got {jobs}")
    output_dir = Path(output_dir)
    command = command or "python -m recbole_llm.benchmark " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    ws = Workspace(
        suite,
        ResultStore(output_dir / f"{suite.name}.jsonl"),
        Path(work_dir or Path("saved") / "benchmark" / suite.name).resolve(),
        command,
        on_stored,
        tuned_only=tuned_from is not None,
        jobs=jobs,
    )
    if tuned_from is not None:
        for entry in ResultStore(tuned_from).entries("trials"):
            if entry["key"] not in ws.store:
                ws.store.add(entry)
    with _progress(suite) as bar:
        trial_sets, runs, failed = _run_stages(ws, bar)
    searching = None
    if report_suite is not None and report_suite != suite:
        trial_sets, runs, searching = stored_results(dataclasses.replace(ws, suite=report_suite))
        command += "  # the report shows every stored result of the suite"
        suite = report_suite
    trials = ws.store.entries("trial")
    return write_suite_report(suite, output_dir, runs, trial_sets, failed, command, trials, searching)


def _literal(text: str) -> Any:
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def split_overrides(flags: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--key=value`` flags -> (settings for every run, tuning options).

    Tuning options are the fields of ``TuneOptions`` (``--num_samples`` excepted: the suite's
    ``tuning.trials`` is the budget). ``--device=cuda`` runs everything on the GPU (``use_gpu`` and
    one GPU per trial); ``--device=cpu`` forces the CPU. Values are read as Python literals, else strings.
    """
    from recbole_llm.tune import TuneOptions

    tune_fields = {f.name for f in dataclasses.fields(TuneOptions)} - {"num_samples", "output"}
    run_settings: dict[str, Any] = {}
    tuning: dict[str, Any] = {}
    for flag in flags:
        if not (flag.startswith("--") and "=" in flag):
            raise SuiteError(f"unrecognised argument {flag}: settings for every run take the form --key=value")
        key, _, text = flag[2:].partition("=")
        if key == "device":
            if text not in ("cuda", "cpu"):
                raise SuiteError(f"--device must be cuda or cpu, got '{text}'")
            run_settings["use_gpu"] = text == "cuda"
            tuning["gpus_per_trial"] = 1.0 if text == "cuda" else 0.0
        elif key in tune_fields:
            tuning[key] = _literal(text)
        else:
            run_settings[key] = _literal(text)
    return run_settings, tuning


def run_from_cli(args: argparse.Namespace, overrides: Sequence[str]) -> int:
    """Entry of ``--benchmark=<suite.yaml>``: uses ``args.benchmark`` and ``args.output`` (None: benchmarks/results).

    ``--models=A,B``, ``--datasets=D`` and ``--seeds=N`` (the first N seeds) restrict the suite;
    ``--tuned_from=<store.jsonl>`` runs only the final stage from that store's tuned configurations;
    ``--jobs=N`` runs N final runs side by side (the demo: 2 on 2 cores, one torch thread each).
    """
    command = "python run_recbole_llm.py " + " ".join(
        shlex.quote(a)
        for a in [f"--benchmark={args.benchmark}", *([f"--output={args.output}"] if args.output else []), *overrides]
    )
    try:
        selection, overrides = _selection_flags(overrides)
        selection["seeds"] = selection["seeds"] or getattr(args, "seeds", None)  # the entry point parses --seeds
        run_settings, tuning = split_overrides(overrides)
        whole = load_suite(args.benchmark, run_settings)
        whole = dataclasses.replace(whole, tuning={**whole.tuning, **tuning})
        suite = restrict(whole, selection["models"], selection["datasets"], selection["seeds"])
        output, tuned_from = args.output or DEFAULT_OUTPUT, selection["tuned_from"]
        whole = None if tuned_from else whole  # a final stage run elsewhere (the demo) reports its own runs only
        jobs = _positive_int(selection["jobs"] or "1", "jobs")
        report = run_suite(suite, output, command=command, tuned_from=tuned_from, report_suite=whole, jobs=jobs)
    except (SuiteError, BenchmarkError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, SuiteError) else 1
    print(f"report: {report}")
    return 0


_SELECTION = ("models", "datasets", "seeds", "tuned_from", "jobs")


def _positive_int(text: str, flag: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise SuiteError(f"--{flag} must be a whole number of at least 1, got '{text}'")
    return value


def _selection_flags(flags: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """Pull ``--models=A,B --datasets=D --seeds=N --tuned_from=STORE --jobs=N`` out of the run settings."""
    selection: dict[str, Any] = dict.fromkeys(_SELECTION)
    rest = []
    for flag in flags:
        key, _, text = flag[2:].partition("=") if flag.startswith("--") else ("", "", "")
        if key in _SELECTION:
            selection[key] = text
        else:
            rest.append(flag)
    return selection, rest


def restrict(suite: Suite, models: str | None = None, datasets: str | None = None, seeds: str | None = None) -> Suite:
    """The suite limited to the named models and datasets and its first ``seeds`` seeds (None: all)."""

    def pick(entries, names, what):
        if not names:
            return entries
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        known = {e.name for e in entries}
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise SuiteError(f"--{what}: {', '.join(unknown)} not in suite {suite.name} ({', '.join(sorted(known))})")
        return [e for e in entries if e.name in wanted]

    count = int(seeds) if seeds else len(suite.seeds)
    if not 1 <= count <= len(suite.seeds):
        raise SuiteError(f"--seeds must be between 1 and {len(suite.seeds)}, got {seeds}")
    return dataclasses.replace(
        suite,
        models=pick(suite.models, models, "models"),
        datasets=pick(suite.datasets, datasets, "datasets"),
        seeds=suite.seeds[:count],
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m recbole_llm.benchmark <suite.yaml> [--output=DIR] [--key=value ...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m recbole_llm.benchmark", description=__doc__.splitlines()[0], allow_abbrev=False
    )
    parser.add_argument("benchmark", help="suite file, e.g. benchmarks/suites/p4r.yaml")
    parser.add_argument("--output", default=None, help="folder of the report and the results store")
    args, overrides = parser.parse_known_args(argv)
    return run_from_cli(args, overrides)
