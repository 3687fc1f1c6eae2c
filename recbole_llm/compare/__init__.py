"""The experiment runner: several models (or configurations) on one split, over several seeds.

Every run trains in its own process (peak memory per run; a run that crashes, is killed or runs out
of memory is reported with its exit code and the others go on). After every finished run the
report is rewritten: ``comparison.md`` (mean ± std per metric, best in bold, paired t-test over
seeds against a reference, s/epoch and its ratio to the reference), ``comparison.csv`` (one row per
run) and ``comparison.png`` (bars with standard-deviation error bars).

    compare(["LightGCN", "BPR"], "ml-100k", seeds=[2020, 2021], reference="LightGCN")
    run_jobs([Job("SASRec", "lastfm-seq", {"oie_init": "whole"}, seed, label="SASRec whole") ...],
             output_dir=..., extra_result=hook)
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from recbole_llm.compare.isolation import ChildOutcome, describe_exit, run_in_child
from recbole_llm.compare.report import (
    machine_description,
    markdown_table,
    metric_columns,
    summarise,
    write_report,
)
from recbole_llm.compare.runner import ExtraResultHook, Job, best_epoch, run_job, train_and_evaluate
from recbole_llm.trainer.snapshot import SNAPSHOT_SUFFIX

__all__ = [
    "ChildOutcome",
    "ExtraResultHook",
    "Job",
    "best_epoch",
    "compare",
    "describe_exit",
    "machine_description",
    "markdown_table",
    "metric_columns",
    "parse_seeds",
    "run_in_child",
    "run_job",
    "run_jobs",
    "summarise",
    "train_and_evaluate",
    "write_report",
]


def parse_seeds(spec: str | int, base_seed: int = 2020) -> list[int]:
    """``3`` -> three seeds from ``base_seed``; ``"1,5,9"`` -> exactly those seeds."""
    text = str(spec)
    if "," in text:
        return [int(s) for s in text.split(",") if s.strip()]
    count = int(text)
    if count < 1:
        raise ValueError(f"--seeds must be >= 1, got {count}")
    return [base_seed + i for i in range(count)]


def run_jobs(
    jobs: Sequence[Job],
    output_dir: str | Path,
    reference: str | None = None,
    command: str | None = None,
    extra_result: ExtraResultHook | None = None,
    work: Callable[[Job], dict] = train_and_evaluate,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    metrics: Sequence[str] | None = None,
    resume: bool = False,
) -> pd.DataFrame:
    """Run ``jobs`` one at a time; rewrite the report in ``output_dir`` after each; return the run table.

    ``reference`` is a job label (default: the first job's). ``on_record`` sees each record as it is made.
    ``metrics`` names the table's test metrics (default: every ``name@k`` column of the results).
    ``resume``: keep the finished runs of ``output_dir/comparison.csv`` whose job key matches a job and
    run only the others, so a comparison killed after hours loses at most the running job, and not even that:
    with ``resume`` each run keeps a snapshot in ``output_dir/snapshots/`` and goes on from it.
    """
    if not jobs:
        raise ValueError("run_jobs needs at least one job")
    output = Path(output_dir)
    reference = reference or jobs[0].name
    if reference not in {job.name for job in jobs}:
        raise ValueError(
            f"Reference model '{reference}' is not among the compared models "
            f"{list(dict.fromkeys(job.name for job in jobs))}."
        )
    command = command or " ".join(shlex.quote(a) for a in sys.argv)
    records = finished_records(output, jobs) if resume else []
    done = {record["job_key"] for record in records}
    runs = write_report(records, output, reference, command, pending(jobs, records), metrics) if records else None
    for index, job in enumerate(jobs):
        if job.key() in done:
            print(f"[compare] {job.name} seed={job.seed} ({index + 1}/{len(jobs)}) finished before, kept", flush=True)
            continue
        print(f"[compare] {job.name} seed={job.seed} ({index + 1}/{len(jobs)}) ...", flush=True)
        if resume and job.snapshot_file is None:  # a killed run goes on from its snapshot in the rerun
            job = dataclasses.replace(job, snapshot_file=str(output / "snapshots" / f"{job.key()}{SNAPSHOT_SUFFIX}"))
        record = run_job(job, extra_result, work)
        records.append(record)
        if on_record is not None:
            on_record(record)
        runs = write_report(records, output, reference, command, pending=pending(jobs, records), metrics=metrics)
    print(f"[compare] wrote {output}/comparison.md, comparison.csv, comparison.png", flush=True)
    return runs if runs is not None else pd.DataFrame()


def finished_records(output: Path, jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """The ``ok`` rows of an earlier ``comparison.csv`` that belong to one of ``jobs`` (same job key)."""
    path = output / "comparison.csv"
    if not path.exists():
        return []
    stored = pd.read_csv(path)
    if "job_key" not in stored or "status" not in stored:
        return []
    keys = {job.key() for job in jobs}
    kept = stored[(stored["status"] == "ok") & stored["job_key"].isin(keys)].drop_duplicates("job_key", keep="last")
    return [
        {k: v for k, v in row.items() if not (isinstance(v, float) and pd.isna(v))} for row in kept.to_dict("records")
    ]


def pending(jobs: Sequence[Job], records: Sequence[dict[str, Any]]) -> int:
    """How many jobs have no record yet (for the report's 'still to come')."""
    return len({job.key() for job in jobs} - {record.get("job_key") for record in records})


def compare(
    models: Sequence[str],
    dataset: str | None = None,
    seeds: Sequence[int] = (2020,),
    config_file_list: Sequence[str] | None = None,
    cmd_args: Sequence[str] = (),
    reference: str | None = None,
    output_dir: str | Path = "benchmarks/results/compare",
    command: str | None = None,
    config_dict: Mapping[str, Any] | None = None,
    extra_result: ExtraResultHook | None = None,
    resume: bool = False,
) -> pd.DataFrame:
    """Train every model with every seed on the same dataset and split; write the report files.

    ``resume``: keep the finished runs stored in ``output_dir`` and run only the others (see ``run_jobs``).

    Returns the per-run table (one row per model and seed, test metrics as columns, ``status`` and
    ``exit_code`` telling finished from failed runs).
    """
    reference = reference or models[0]
    if reference not in models:
        raise ValueError(f"Reference model '{reference}' is not among the compared models {list(models)}.")
    files = tuple(config_file_list) if config_file_list else None
    jobs = [
        Job(model, dataset, dict(config_dict or {}), seed, config_file_list=files, cmd_args=tuple(cmd_args))
        for model in models
        for seed in seeds
    ]
    return run_jobs(jobs, output_dir, reference, command, extra_result, resume=resume)
