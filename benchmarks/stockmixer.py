"""Benchmark: StockMixer and the Rank-LSTM baseline on NASDAQ, the paper's split, seeds to early stopping (issue #20).

    nice -n 19 .venv/bin/python benchmarks/stockmixer.py                      # 3 seeds, defaults
    .venv/bin/python benchmarks/stockmixer.py --seeds=3 --device=cuda --output=benchmarks/results/stockmixer.md

Every (model, seed) run trains in its own process through the project's comparison runner
(:func:`recbole_llm.compare.run_jobs`) with the yaml defaults of ``properties/stock/`` (StockMixer's
released settings: lookback 16, market 20, scales {1, 2}, Adam 1e-3, alpha 0.1; at most 100 epochs,
early stopping on the validation loss with patience 10) on the 756 / 252 / 237-day split. The
report puts StockMixer's published NASDAQ row (AAAI 2024, Table 2) beside ours. Its "RIC" column is
mean(IC) / std(IC) in the authors' evaluator, which is our ``icir``; our ``rank_ic`` (mean daily
Spearman) has no published counterpart. ``--extra=--key=value`` passes settings to every run. Finished runs are kept in
``benchmarks/results/stockmixer/comparison.csv`` (keyed by their settings): rerunning the command runs
only the missing ones (``--fresh`` reruns all).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import pandas as pd

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from recbole_llm.compare import Job, machine_description, parse_seeds, run_jobs, summarise  # noqa: E402
from recbole_llm.stock.runner import stock_job_work  # noqa: E402

NOTES = PROJECT / "benchmarks" / "results" / "stockmixer_notes.md"
METRICS = ["ic", "rank_ic", "icir", "prec@10", "sharpe@5"]
#: StockMixer (Fan & Shen, AAAI 2024) Table 2, NASDAQ: IC, RIC (= our icir), prec@N, SR; LSTM row likewise.
PAPER = {
    "StockMixer": {"ic": 0.043, "icir": 0.501, "prec@10": 0.545, "sharpe@5": 1.465},
    "RankLSTM": {"ic": 0.032, "icir": 0.354, "prec@10": 0.514, "sharpe@5": 0.892},
}


def _cell(row: pd.Series, metric: str) -> str:
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    return f"{mean:.4f} ± {std:.4f}" if row["n_seeds"] > 1 else f"{mean:.4f}"


def write_markdown(
    runs: pd.DataFrame, path: Path, command: str, seeds: list[int], extra: list[str], notes: Path | None = None
) -> None:
    """Ours (mean ± std over seeds) beside the paper's rows; epochs, s/epoch, budget, failed runs.

    ``notes``: a hand-written reading of the figures, kept in its own file so that a rerun that
    rewrites the table does not lose it; shown under the title when the file exists.
    """
    finished = runs[runs["status"] == "ok"] if "status" in runs else runs
    summary = summarise(finished, METRICS, None) if len(finished) else pd.DataFrame()
    hours = float(runs["wall_s"].sum()) / 3600 if "wall_s" in runs else float("nan")
    lines = [
        "# StockMixer on NASDAQ (Feng et al. 2013-2017 panel), beside the paper",
        "",
        *([notes.read_text(encoding="utf-8").strip(), ""] if notes is not None and notes.exists() else []),
        f"- Command: `{command}`",
        f"- Machine: {machine_description()}; budget: {len(runs)} runs, one at a time, {hours:.2f} h wall in all",
        f"- Seeds: {', '.join(map(str, seeds))}. Settings: the yaml defaults of `properties/stock/` (split 756 / 252 / "
        "237 days, at most 100 epochs, early stopping on the validation loss with patience 10, test figures of the "
        f"best validation epoch), changed by: {' '.join(extra) or 'nothing'}.",
        "- RIC in the paper = mean(IC) / std(IC) of the authors' evaluator = our `icir`; `rank_ic` is the mean daily "
        "Spearman correlation. Our IC leaves masked stocks out of each day's correlation (the authors' code "
        "correlates them as zeros), and prices are rescaled by each ticker's training-period peak instead of "
        "the five-year peak in Feng's files (a look-ahead).",
        "",
        "| model | source | IC | rank IC | ICIR (paper: RIC) | Prec@10 | Sharpe (top 5) | epochs run | s/epoch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, paper in PAPER.items():
        cells = [f"{paper[m]:.3f}" if m in paper else "-" for m in METRICS]
        source = "paper (Table 2)" if name == "StockMixer" else "paper (Table 2, LSTM)"
        lines.append(f"| {name} | {source} | " + " | ".join(cells) + " | - | - |")
        for _, row in summary[summary["model"] == name].iterrows() if len(summary) else []:
            cells = [_cell(row, m) for m in METRICS]
            lines.append(
                f"| {name} | ours, {int(row['n_seeds'])} seed(s) | "
                + " | ".join(cells)
                + f" | {row['epochs']:.0f} | {row['epoch_time_s']:.1f} |"
            )
    failed = runs[runs["status"] != "ok"] if "status" in runs else runs.iloc[0:0]
    lines += [f"- failed: {r['model']} seed {r['seed']}: {r['error']}" for _, r in failed.iterrows()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="StockMixer,RankLSTM")
    parser.add_argument("--seeds", default="3", help="a count (from 2020) or a list")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", default=str(PROJECT / "benchmarks" / "results" / "stockmixer.md"))
    parser.add_argument("--extra", action="append", default=[], help="a --key=value for every run")
    parser.add_argument("--notes", default=str(NOTES), help="hand-written reading shown under the title, if present")
    parser.add_argument("--fresh", action="store_true", help="rerun every run, not only those not stored yet")
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    overrides = (f"--device={args.device}", *args.extra)
    jobs = [Job(model, "nasdaq", {}, seed, cmd_args=overrides) for model in args.models.split(",") for seed in seeds]
    output = Path(args.output)
    command = " ".join(["python benchmarks/stockmixer.py", *(shlex.quote(a) for a in (argv or sys.argv[1:]))])
    runs = run_jobs(
        jobs, output.with_suffix(""), None, command, work=stock_job_work, metrics=METRICS, resume=not args.fresh
    )
    write_markdown(runs, output, command, seeds, [f"--device={args.device}", *args.extra], Path(args.notes))
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
