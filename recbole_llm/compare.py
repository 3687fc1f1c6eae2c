"""Benchmark several models on one dataset and split, over several seeds.

Writes ``comparison.md`` (mean +- std per metric, best in bold, paired t-test over seeds against
a reference model), ``comparison.csv`` (one row per model and seed) and ``comparison.png``
(bar chart with standard-deviation error bars). Each run trains in its own process, so peak
memory is per run and one crashing model does not take the others down.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import platform
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

SIGNIFICANCE = 0.05


def parse_seeds(spec: str | int, base_seed: int = 2020) -> list[int]:
    """``3`` -> three seeds from ``base_seed``; ``"1,5,9"`` -> exactly those seeds."""
    text = str(spec)
    if "," in text:
        return [int(s) for s in text.split(",") if s.strip()]
    count = int(text)
    if count < 1:
        raise ValueError(f"--seeds must be >= 1, got {count}")
    return [base_seed + i for i in range(count)]


def _worker(queue, model, dataset, config_file_list, config_dict, cmd_args) -> None:
    try:
        from recbole_llm.quick_start import run_recbole_llm

        result = run_recbole_llm(model, dataset, config_file_list, config_dict, saved=True, cmd_args=cmd_args)
        queue.put(("ok", result))
    except BaseException as exc:  # report any failure to the parent instead of dying silently
        queue.put(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def run_isolated(model: str, dataset: str | None, config_file_list, config_dict, cmd_args) -> dict[str, Any]:
    """Run one training in a fresh (spawned) process and return its result dict."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_worker, args=(queue, model, dataset, config_file_list, config_dict, cmd_args))
    process.start()
    status, payload = queue.get()
    process.join()
    if status != "ok":
        raise RuntimeError(f"{model} failed:\n{payload}")
    return payload


def _machine() -> str:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return (
        f"{platform.platform()}, {os.cpu_count()} CPU cores, {device}, Python {platform.python_version()}, "
        f"torch {torch.__version__}"
    )


def summarise(runs: pd.DataFrame, metrics: Sequence[str], reference: str | None) -> pd.DataFrame:
    """Mean, std and (against ``reference``) the paired t-test p-value per model and metric."""
    from scipy import stats

    rows = []
    models = list(dict.fromkeys(runs["model"]))
    for model in models:
        sub = runs[runs["model"] == model].sort_values("seed")
        row: dict[str, Any] = {"model": model, "n_seeds": len(sub)}
        for metric in metrics:
            row[f"{metric}_mean"] = sub[metric].mean()
            row[f"{metric}_std"] = sub[metric].std(ddof=1) if len(sub) > 1 else 0.0
            if reference and model != reference and reference in models:
                ref = runs[runs["model"] == reference].sort_values("seed")
                paired = sub.merge(ref, on="seed", suffixes=("", "_ref"))
                if len(paired) >= 2 and not np.allclose(paired[metric], paired[f"{metric}_ref"]):
                    row[f"{metric}_p"] = float(stats.ttest_rel(paired[metric], paired[f"{metric}_ref"]).pvalue)
                else:
                    row[f"{metric}_p"] = float("nan")
        for extra in ("epoch_time_s", "peak_memory_mb", "epochs"):
            row[extra] = sub[extra].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_table(summary: pd.DataFrame, metrics: Sequence[str], reference: str | None) -> str:
    header = ["model", *metrics, "s/epoch", "peak MB", "epochs"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best = {m: summary[f"{m}_mean"].max() for m in metrics}
    for _, row in summary.iterrows():
        cells = [str(row["model"]) + (" (ref)" if row["model"] == reference else "")]
        for m in metrics:
            text = f"{row[f'{m}_mean']:.4f}"
            if row["n_seeds"] > 1:  # a single seed has no spread to report
                text += f" ± {row[f'{m}_std']:.4f}"
            if np.isclose(row[f"{m}_mean"], best[m]):
                text = f"**{text}**"
            p = row.get(f"{m}_p", float("nan"))
            if p == p and p < SIGNIFICANCE:
                text += " ▲" if row[f"{m}_mean"] > summary.loc[summary.model == reference, f"{m}_mean"].item() else " ▼"
            cells.append(text)
        cells += [f"{row['epoch_time_s']:.2f}", f"{row['peak_memory_mb']:.0f}", f"{row['epochs']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bar_chart(summary: pd.DataFrame, metrics: Sequence[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_models = len(summary)
    width = 0.8 / max(n_models, 1)
    x = np.arange(len(metrics))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(metrics) + 2), 4))
    for i, (_, row) in enumerate(summary.iterrows()):
        means = [row[f"{m}_mean"] for m in metrics]
        stds = [row[f"{m}_std"] for m in metrics]
        ax.bar(x + i * width - 0.4 + width / 2, means, width, yerr=stds, capsize=3, label=row["model"])
    ax.set_xticks(x)
    ax.set_xticklabels(metrics)
    ax.set_ylabel("test score (mean ± std over seeds)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def compare(
    models: Sequence[str],
    dataset: str | None = None,
    seeds: Sequence[int] = (2020,),
    config_file_list: Sequence[str] | None = None,
    cmd_args: Sequence[str] = (),
    reference: str | None = None,
    output_dir: str | Path = "benchmarks/results/compare",
    command: str | None = None,
) -> pd.DataFrame:
    """Train every model with every seed on the same dataset and split; write the report files.

    Returns the per-run table (one row per model and seed, test metrics as columns).
    """
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    reference = reference or models[0]
    if reference not in models:
        raise ValueError(f"Reference model '{reference}' is not among the compared models {list(models)}.")
    records = []
    for model in models:
        for seed in seeds:
            started = time.perf_counter()
            print(f"[compare] {model} seed={seed} ...", flush=True)
            result = run_isolated(model, dataset, config_file_list, {"seed": seed}, list(cmd_args))
            record = {"model": model, "seed": seed, "dataset": result["dataset"]}
            record.update({k: float(v) for k, v in result["test_result"].items()})
            record.update({f"valid_{k}": float(v) for k, v in result["best_valid_result"].items()})
            times = result["epoch_times"]
            record["epochs"] = len(times)
            record["epoch_time_s"] = float(np.mean(times)) if times else float("nan")
            record["peak_memory_mb"] = result["peak_memory_mb"]
            record["wall_s"] = time.perf_counter() - started
            records.append(record)
            print(f"[compare] {model} seed={seed}: {result['test_result']}", flush=True)
    runs = pd.DataFrame(records)
    metrics = [c for c in runs.columns if "@" in c and not c.startswith("valid_")]
    summary = summarise(runs, metrics, reference)
    runs.to_csv(output / "comparison.csv", index=False)
    dataset_name = runs["dataset"].iloc[0]
    command = command or " ".join(shlex.quote(a) for a in sys.argv)
    md = [
        f"# Comparison on {dataset_name}",
        "",
        f"- Command: `{command}`",
        f"- Dataset: {dataset_name}; seeds: {', '.join(map(str, seeds))}",
        f"- Machine: {_machine()}",
        f"- Test-split metrics, mean ± std over seeds; best in **bold**; ▲/▼ = paired t-test over "
        f"seeds against {reference} with p < {SIGNIFICANCE}. s/epoch = mean training time per epoch; "
        f"peak MB = peak RSS of the run's process (CPU) or CUDA peak allocation (GPU).",
        "",
        markdown_table(summary, metrics, reference),
        "",
    ]
    (output / "comparison.md").write_text("\n".join(md), encoding="utf-8")
    bar_chart(summary, metrics, output / "comparison.png", f"{dataset_name}: {', '.join(models)}")
    print(f"[compare] wrote {output}/comparison.md, comparison.csv, comparison.png", flush=True)
    return runs
