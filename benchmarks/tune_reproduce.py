"""Run a Ray Tune search through the entry point, rerun its best.yaml, and check the validation metric.

    python benchmarks/tune_reproduce.py --model=BPR --dataset=ml-100k --tune=BPR -- --num_samples=8 --epochs=10

Everything after ``--`` goes to the search command unchanged (tuning flags and config overrides).
Both commands run as separate processes, as a user would run them. Writes
``benchmarks/results/tune_<model>_<dataset>.md``: the commands, the machine, the trial table of
the search, and the best trial's validation metrics next to those of the rerun (seed unchanged).
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def _run(command: list[str]) -> tuple[str, float]:
    start = time.perf_counter()
    done = subprocess.run(
        command, check=False, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"command failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-4000:]}")
    return done.stdout, seconds


def reproduction_rows(trials: pd.DataFrame, best: pd.Series, rerun_valid: dict) -> list[str]:
    """Markdown rows: each validation metric of the best trial beside the rerun's, and whether they match."""
    rows = []
    for column in (c for c in trials.columns if c.startswith("valid.")):
        name = column[len("valid.") :]
        trial_value, rerun_value = float(best[column]), rerun_valid.get(name, float("nan"))
        same = "yes" if abs(trial_value - rerun_value) < 1e-9 else "NO"
        rows.append(f"| {name} | {trial_value:.4f} | {rerun_value:.4f} | {same} |")
    return rows


def report_lines(
    args, extra: list[str], search: tuple, rerun: tuple, trials: pd.DataFrame, best: pd.Series, rows: list[str]
) -> list[str]:
    """The markdown report: commands, machine, the trial table and the reproduction check."""
    (search, search_seconds), (rerun, rerun_seconds) = search, rerun
    import torch

    shown = trials.drop(columns=["trial_dir"])
    return [
        f"# Ray Tune search and best-config reproduction: {args.model} on {args.dataset}",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        (
            f"- Machine: {platform.platform()}, {os.cpu_count()} CPU cores (shared with other jobs), "
            f"{'GPU' if torch.cuda.is_available() else 'no GPU'}, torch {torch.__version__}; load average at the end "
            f"{os.getloadavg()[0]:.1f} (wall times depend on the other jobs)"
        ),
        (
            f"- Benchmark command: `python benchmarks/tune_reproduce.py --model={args.model} --dataset={args.dataset} "
            f"--tune={args.tune} -- {' '.join(extra)}`"
        ),
        f"- Search command: `{' '.join(search[1:])}` ({search_seconds:.0f} s wall)",
        f"- Rerun command: `{' '.join(rerun[1:])}` ({rerun_seconds:.0f} s wall, a fresh process, same seed)",
        "- Budget: the flags above (validation split only; the test split is never read by the search)",
        "",
        "## Trials (validation split)",
        "",
        "| " + " | ".join(shown.columns) + " |",
        "|" + "---|" * len(shown.columns),
        *[
            "| "
            + " | ".join("" if pd.isna(v) else (f"{v:.6g}" if isinstance(v, float) else str(v)) for v in row)
            + " |"
            for row in shown.itertuples(index=False)
        ],
        "",
        f"## Best trial {best['trial']} ({best['status']}) vs. rerun of best.yaml",
        "",
        "| metric | trial | rerun | identical |",
        "|---|---|---|---|",
        *rows,
        "",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--tune", required=True, help="search-space yaml or shipped name")
    parser.add_argument(
        "--output", default=None, help="search output folder (default saved/tune/bench-<model>-<dataset>)"
    )
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    output = Path(args.output or ROOT / "saved" / "tune" / f"bench-{args.model}-{args.dataset}").resolve()
    search = [
        sys.executable,
        "run_recbole_llm.py",
        f"--tune={args.tune}",
        f"--model={args.model}",
        f"--dataset={args.dataset}",
        f"--output={output}",
        "--verbose=0",
        *extra,
    ]
    _, search_seconds = _run(search)
    trials = pd.read_csv(output / "trials.csv")
    best_id = re.search(r"# Best trial (\S+) ", (output / "best.yaml").read_text()).group(1)
    best = trials[trials["trial"].astype(str) == best_id].iloc[0]
    rerun = [
        sys.executable,
        "run_recbole_llm.py",
        f"--model={args.model}",
        f"--dataset={args.dataset}",
        f"--config_files={output / 'best.yaml'}",
        "--show_progress=False",
    ]
    printed, rerun_seconds = _run(rerun)
    match = re.search(r"best valid: (.*)", printed)
    rerun_valid = dict(ast.literal_eval(match.group(1))) if match else {}
    rows = reproduction_rows(trials, best, rerun_valid)

    lines = report_lines(args, extra, (search, search_seconds), (rerun, rerun_seconds), trials, best, rows)
    result = ROOT / "benchmarks" / "results" / f"tune_{args.model}_{args.dataset}.md"
    result.write_text("\n".join(lines), encoding="utf-8")
    print(result.read_text())
    return 0 if all(r.endswith("yes |") for r in rows) and rows else 1


if __name__ == "__main__":
    sys.exit(main())
