"""ReviewGNN's training epoch against LightGCN's, side by side in one process (issue #16, item 5).

Every model is built once (yaml defaults, batch 2048, embedding 64, seed 2020), then the script
runs ``--epochs`` training epochs of each, **interleaved** (epoch k of every model before epoch
k+1 of any), all with the same torch thread count, so that a busy shared machine slows every
model alike. It reports the median wall seconds and the median CPU seconds of this thread per
epoch (CPU time is what the model costs; wall time also counts waiting for a busy CPU) and each
model's ratio to LightGCN, then writes ``benchmarks/results/reviewgnn_timing.md``.

    python benchmarks/reviewgnn_timing.py                                   # both datasets, 30 epochs
    python benchmarks/reviewgnn_timing.py --datasets=amazon-gift-cards --epochs=5 --output=/tmp/t.md

Run from the project root; raw data from RECBOLE_LLM_RAW_DATA (or ``../shared/datasets``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's recbole_llm, not an installed copy
DATASETS = ["amazon-beauty", "amazon-gift-cards"]
# label -> (model class name, settings over its yaml)
MODELS = {
    "LightGCN": ("LightGCN", {}),
    "ReviewGCN": ("ReviewGNN", {"use_reviews": False}),
    "ReviewGNN": ("ReviewGNN", {}),
    "ReviewGNN-lightgcn": ("ReviewGNN", {"backbone": "lightgcn"}),
}
COMMON = {
    "show_progress": False,
    "state": "ERROR",
    "use_gpu": False,
    "train_batch_size": 2048,
    "embedding_size": 64,
    "seed": 2020,
}


def build_trainers(dataset: str, labels: list[str]) -> dict:
    """``label -> (trainer, train_data, model)``, each built like the quick start builds it."""
    from recbole_llm.config import Config
    from recbole_llm.quick_start import build

    built = {}
    for label in labels:
        model_name, settings = MODELS[label]
        config = Config(model_name, dataset, config_dict={**COMMON, **settings})
        _, train_data, _, _, model, trainer = build(config)
        built[label] = (trainer, train_data, model)
    return built


def interleaved_epoch_times(built: dict, epochs: int, warmup: int) -> dict[str, dict[str, list[float]]]:
    """Wall and thread-CPU seconds of every training epoch, models alternating epoch by epoch."""
    times = {label: {"wall": [], "cpu": []} for label in built}
    for epoch in range(warmup + epochs):
        for label, (trainer, train_data, _) in built.items():
            wall, cpu = time.perf_counter(), time.thread_time()
            trainer._train_epoch(train_data, epoch)
            if epoch >= warmup:
                times[label]["wall"].append(time.perf_counter() - wall)
                times[label]["cpu"].append(time.thread_time() - cpu)
    return times


def dataset_line(dataset: str, built: dict) -> str:
    """Sizes that explain the costs: training pairs, steps per epoch, review edges and texts."""
    _, train_data, model = next(iter(built.values()))
    reviewed = next((m for _, _, m in built.values() if getattr(m, "use_reviews", False)), None)
    line = (
        f"{dataset}: {len(train_data._dataset.inter_feat)} training pairs, {len(train_data)} steps per "
        f"epoch, {model.n_users - 1} users, {model.n_items - 1} items"
    )
    if reviewed is not None:
        line += (
            f", {reviewed.n_review_edges} review edges, "
            f"{len(reviewed.distinct_review_embeddings)} distinct review texts"
        )
    return line


def table(times: dict[str, dict[str, list[float]]]) -> list[str]:
    """Markdown table of median wall / CPU seconds per epoch and the ratios to LightGCN."""
    wall = {label: statistics.median(t["wall"]) for label, t in times.items()}
    cpu = {label: statistics.median(t["cpu"]) for label, t in times.items()}
    lines = [
        "| model | median wall s/epoch | x LightGCN (wall) | median CPU s/epoch | x LightGCN (CPU) |",
        "|---|---|---|---|---|",
    ]
    for label in times:
        lines.append(
            f"| {label} | {wall[label]:.4f} | {wall[label] / wall['LightGCN']:.2f} | "
            f"{cpu[label]:.4f} | {cpu[label] / cpu['LightGCN']:.2f} |"
        )
    return lines


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {list(MODELS)}")
    parser.add_argument("--epochs", type=int, default=30, help="timed epochs per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed epochs first")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the same for every model)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "reviewgnn_timing.md"))
    args = parser.parse_args(argv)
    os.environ.setdefault("RECBOLE_LLM_RAW_DATA", str((ROOT.parent / "shared" / "datasets").resolve()))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    labels = ["LightGCN"] + [m for m in args.models.split(",") if m and m != "LightGCN"]
    unknown = [m for m in labels if m not in MODELS]
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {list(MODELS)}")
    command = "python benchmarks/reviewgnn_timing.py " + " ".join(argv if argv is not None else sys.argv[1:])
    setup = (
        f"Commit {git_commit()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{args.threads} torch thread(s), {args.epochs} timed epochs per model after {args.warmup} warm-up, "
        "models alternating every epoch. Goal (issue #16): ReviewGNN / LightGCN <= 1.5."
    )
    lines = ["# ReviewGNN vs LightGCN: interleaved per-epoch timing", "", f"Command: `{command.strip()}`  ", setup, ""]
    for dataset in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        built = build_trainers(dataset, labels)
        load_before = os.getloadavg()[0]
        times = interleaved_epoch_times(built, args.epochs, args.warmup)
        lines += (
            [
                f"## {dataset}",
                "",
                dataset_line(dataset, built) + f"; 1-min load average {load_before:.1f} "
                f"before, {os.getloadavg()[0]:.1f} after.",
                "",
            ]
            + table(times)
            + [""]
        )
        print("\n".join(lines[-len(table(times)) - 4 :]), flush=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
