"""Comparison report: ``comparison.md`` (mean ± std, paired t-test, time ratio), ``.csv`` and ``.png``."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recbole_llm.compare.runner import jsonable

SIGNIFICANCE = 0.05
TIMING_COLUMNS = ("epoch_time_s", "peak_memory_mb", "epochs")


def machine_description() -> str:
    """Platform, cores, accelerator and library versions: what a timing depends on."""
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return (
        f"{platform.platform()}, {os.cpu_count()} CPU cores, {device}, Python {platform.python_version()}, "
        f"torch {torch.__version__}"
    )


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """Test metric columns (``ndcg@10`` ...) that hold a value, in the order they first appear: runs of several
    datasets share one frame, and a metric only some datasets have (CategoryDiversity) is empty for the rest."""
    return [c for c in runs.columns if "@" in c and not c.startswith("valid_") and runs[c].notna().any()]


def paired_scores(runs: pd.DataFrame, model: str, reference: str, metric: str) -> pd.DataFrame:
    """Scores of both models on the seeds both ran with a score (columns ``metric`` and ``metric_ref``): the pairs
    a paired test compares, kept in one place so that every figure said to be paired pairs the same way."""
    sub = runs[runs["model"] == model][["seed", metric]]
    ref = runs[runs["model"] == reference][["seed", metric]]
    return sub.merge(ref, on="seed", suffixes=("", "_ref")).dropna()


def paired_p_value(runs: pd.DataFrame, model: str, reference: str, metric: str) -> float:
    """Paired t-test over the seeds both models ran; NaN with fewer than 2 pairs or identical scores."""
    from scipy import stats

    paired = paired_scores(runs, model, reference, metric)
    if len(paired) < 2 or np.allclose(paired[metric], paired[f"{metric}_ref"]):
        return float("nan")
    return float(stats.ttest_rel(paired[metric], paired[f"{metric}_ref"]).pvalue)


def summarise(runs: pd.DataFrame, metrics: Sequence[str], reference: str | None) -> pd.DataFrame:
    """Mean, std, paired-test p-value against ``reference`` and s/epoch ratio to it, per model.

    Only finished runs count (rows with ``status`` other than ``ok`` are left out).
    """
    if "status" in runs:
        runs = runs[runs["status"] == "ok"]
    rows = []
    models = list(dict.fromkeys(runs["model"]))
    for model in models:
        sub = runs[runs["model"] == model]
        row: dict[str, Any] = {"model": model, "n_seeds": len(sub)}
        for metric in metrics:
            row[f"{metric}_mean"] = sub[metric].mean()
            row[f"{metric}_std"] = sub[metric].std(ddof=1) if len(sub) > 1 else 0.0
            if reference and model != reference and reference in models:
                row[f"{metric}_p"] = paired_p_value(runs, model, reference, metric)
        for extra in TIMING_COLUMNS:
            row[extra] = sub[extra].mean() if extra in sub else float("nan")
        rows.append(row)
    summary = pd.DataFrame(rows)
    if len(summary) and reference in models:
        summary["time_ratio"] = summary["epoch_time_s"] / summary.loc[summary.model == reference, "epoch_time_s"].item()
    elif len(summary):
        summary["time_ratio"] = float("nan")
    return summary


def _metric_cell(row: pd.Series, summary: pd.DataFrame, metric: str, reference: str | None) -> str:
    text = f"{row[f'{metric}_mean']:.4f}"
    if row["n_seeds"] > 1:  # a single seed has no spread to report
        text += f" ± {row[f'{metric}_std']:.4f}"
    if np.isclose(row[f"{metric}_mean"], summary[f"{metric}_mean"].max()):
        text = f"**{text}**"
    p = row.get(f"{metric}_p", float("nan"))
    if not pd.isna(p) and p < SIGNIFICANCE:
        ref_mean = summary.loc[summary.model == reference, f"{metric}_mean"].item()
        text += " ▲" if row[f"{metric}_mean"] > ref_mean else " ▼"
    return text


def markdown_table(summary: pd.DataFrame, metrics: Sequence[str], reference: str | None) -> str:
    """One row per model: metrics, s/epoch, s/epoch relative to ``reference``, peak memory, epochs."""
    header = ["model", *metrics, "s/epoch", f"× {reference or 'ref'} s/epoch", "peak MB", "epochs"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in summary.iterrows():
        cells = [str(row["model"]) + (" (ref)" if row["model"] == reference else "")]
        cells += [_metric_cell(row, summary, m, reference) for m in metrics]
        ratio = row.get("time_ratio", float("nan"))
        cells += [
            f"{row['epoch_time_s']:.2f}",
            "" if pd.isna(ratio) else f"{ratio:.2f}",
            f"{row['peak_memory_mb']:.0f}",
            f"{row['epochs']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bar_chart(summary: pd.DataFrame, metrics: Sequence[str], path: Path, title: str) -> None:
    """Grouped bars (one group per metric, one bar per model) with standard-deviation error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 0.8 / max(len(summary), 1)
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


def failed_section(runs: pd.DataFrame) -> list[str]:
    """Markdown lines listing the runs whose process failed or died (empty when none did)."""
    if "status" not in runs or not (runs["status"] != "ok").any():
        return []
    lines = [
        "",
        "Failed runs (left out of the table):",
        "",
        "| model | seed | exit code | reason |",
        "|---|---|---|---|",
    ]
    for _, row in runs[runs["status"] != "ok"].iterrows():
        lines.append(f"| {row['model']} | {row['seed']} | {row['exit_code']} | {str(row['error']).replace('|', '/')} |")
    return lines


def write_report(
    records: Sequence[dict],
    output: Path,
    reference: str | None,
    command: str,
    pending: int = 0,
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Write comparison.csv / .md / .png from the runs finished so far; returns the run table.

    ``metrics``: the test metric columns to show (default: every ``name@k`` column).
    """
    output.mkdir(parents=True, exist_ok=True)
    runs = pd.DataFrame([{k: jsonable(v) for k, v in r.items()} for r in records])
    runs.to_csv(output / "comparison.csv", index=False)
    finished = runs[runs["status"] == "ok"] if "status" in runs else runs
    metrics = [m for m in metrics if m in finished] if metrics is not None else metric_columns(finished)
    summary = summarise(finished, metrics, reference) if len(finished) else pd.DataFrame()
    datasets = ", ".join(str(d) for d in dict.fromkeys(runs["dataset"]) if not pd.isna(d)) or "?"
    seeds = ", ".join(str(s) for s in dict.fromkeys(runs["seed"]))
    md = [
        f"# Comparison on {datasets}",
        "",
        f"- Command: `{command}`",
        f"- Dataset: {datasets}; seeds: {seeds}{f'; {pending} run(s) still to come' if pending else ''}",
        f"- Machine: {machine_description()}",
        (
            f"- Test-split metrics, mean ± std over seeds; best in **bold**; ▲/▼ = paired t-test over "
            f"seeds against {reference} with p < {SIGNIFICANCE}. s/epoch = mean training time per epoch; "
            f"× {reference} = that time divided by {reference}'s; peak MB = peak RSS of the run's process (CPU) "
            "or CUDA peak allocation (GPU)."
        ),
        "",
        markdown_table(summary, metrics, reference) if len(summary) else "(no finished run yet)",
        *failed_section(runs),
        "",
    ]
    (output / "comparison.md").write_text("\n".join(md), encoding="utf-8")
    if len(summary) and metrics:
        bar_chart(summary, metrics, output / "comparison.png", f"{datasets}: {', '.join(summary['model'])}")
    return runs
