"""Benchmark P4R (arXiv 2409.16674) against RecBole's LightGCN, NGCF, SGL and BPR.

Calls the project's experiment runner ``recbole_llm.compare.compare`` (each model and seed in its own
process; test metrics of the best-validation checkpoint; paired t-test over seeds against LightGCN), in
model groups so a slow group cannot lose the results of the others, then merges the groups into
``benchmarks/results/p4r_early_training.md`` with the exact commands, the epoch budget and the per-epoch time of
P4R relative to LightGCN.

    python benchmarks/p4r.py                                   # ml-100k, 3 seeds, template profiles
    python benchmarks/p4r.py --epochs=2 --seeds=1 --groups=P4R,LightGCN   # smoke run
    python benchmarks/p4r.py --report_only                     # rebuild the report from the CSVs

Protocol (spec): ratio split 8:1:1 (random order, per user), full ranking, Recall / NDCG / MRR /
Hit at 10 and 20; validation NDCG@10 picks the checkpoint and drives early stopping. Shared
settings for every model: embedding 64, batch 2048, lr 1e-3, 3 propagation layers and L2 weight
1e-4 (P4R's defaults, also LightGCN's original ones). Nothing is tuned on the test split.
LLM profiles: generate them first (``run_recbole_llm.py profiles --backend=transformers
--llm=...``, once per seed: the profiles quote the training split), then pass
``--extra=--profile_backend=transformers --extra=--profile_llm=...``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
GROUPS = "P4R,LightGCN,BPR;NGCF,SGL"
SPLIT = "{'split':{'RS':[0.8,0.1,0.1]},'order':'RO','group_by':'user','mode':'full'}"


def comparison_command(
    models: str, dataset: str, seeds: int, epochs: int, stopping_step: int, output: str, extra: list[str]
) -> list[str]:
    return [
        "run_recbole_llm.py",
        f"--compare={models}",
        f"--dataset={dataset}",
        f"--seeds={seeds}",
        f"--reference={'LightGCN' if 'LightGCN' in models.split(',') else models.split(',')[0]}",
        f"--output={output}",
        f"--epochs={epochs}",
        f"--stopping_step={stopping_step}",
        "--eval_step=1",
        "--train_batch_size=2048",
        "--embedding_size=64",
        "--learning_rate=0.001",
        "--n_layers=3",
        "--reg_weight=0.0001",
        f"--eval_args={SPLIT}",
        "--metrics=['Recall','NDCG','MRR','Hit']",
        "--topk=[10,20]",
        "--valid_metric=NDCG@10",
        "--show_progress=False",
        *extra,
    ]


def timing_lines(runs: pd.DataFrame) -> list[str]:
    times = runs.groupby("model", sort=False)["epoch_time_s"].mean()
    lines = ["| model | s/epoch (mean over seeds) | x LightGCN |", "|---|---|---|"]
    for model, seconds in times.items():
        ratio = seconds / times["LightGCN"] if "LightGCN" in times else float("nan")
        lines.append(f"| {model} | {seconds:.2f} | {ratio:.2f} |")
    return lines


def recorded_commands(outputs: list[Path], fallback: list[str]) -> list[str]:
    """The command each comparison actually ran (compare writes it into its comparison.md)."""
    found = []
    for output, command in zip(outputs, fallback):
        md = output / "comparison.md"
        line = (
            next((row for row in md.read_text().splitlines() if row.startswith("- Command: `")), None)
            if md.is_file()
            else None
        )
        found.append(line[len("- Command: `") : -1] if line else command)
    return found


def write_report(dataset: str, outputs: list[Path], commands: list[str], args, path: Path) -> None:
    from recbole_llm.compare import machine_description, markdown_table, summarise

    frames = [pd.read_csv(o / "comparison.csv") for o in outputs if (o / "comparison.csv").is_file()]
    if not frames:
        raise SystemExit("no comparison.csv found: run the benchmark first")
    runs = pd.concat(frames, ignore_index=True)
    if "status" in runs:
        runs = runs[runs["status"] == "ok"]
    runs.to_csv(path.with_name(path.stem + "_runs.csv"), index=False)  # every run of this report
    metrics = [c for c in runs.columns if "@" in c and not c.startswith("valid_")]
    metrics = sorted(
        metrics, key=lambda m: (int(m.split("@")[1]), ["recall", "ndcg", "mrr", "hit"].index(m.split("@")[0]))
    )
    reference = "LightGCN" if "LightGCN" in set(runs["model"]) else runs["model"].iloc[0]
    summary = summarise(runs, metrics, reference)
    seeds = sorted(set(runs["seed"]))
    md = [
        f"# P4R benchmark on {dataset}",
        "",
        "Commands (run from the project root, in this order):",
        "",
        *[f"    {c}" for c in recorded_commands(outputs, commands)],
        "",
        f"- Data: {dataset}, ratio split 8:1:1 (RS, random order, per user), full ranking over all items.",
        (
            f"- Seeds: {', '.join(map(str, seeds))}. Budget: at most {args.epochs} epochs, early stopping after "
            f"{args.stopping_step} epochs without validation NDCG@10 improvement; test metrics of the best-validation "
            "checkpoint. This is a small CPU budget: every model is under-trained compared with a run to convergence."
        ),
        (
            "- Shared settings: embedding 64, batch 2048, Adam lr 1e-3, 3 propagation layers, L2 weight 1e-4; other "
            "hyperparameters are each model's yaml default (RecBole's for the baselines). P4R: template profiles "
            "(no LLM was available offline), text_fusion add, linear projector, all-MiniLM-L6-v2 profile embeddings "
            "(precomputed, disk-cached)."
        ),
        (
            f"- Machine: {machine_description()}; torch limited to {args.threads} thread(s) per run "
            "(OMP_NUM_THREADS). The machine "
            "was shared with other jobs (load average 10-20 on 2 cores) and model groups ran concurrently, so absolute "
            "times are noisy and inflated; compare times within a table only."
        ),
        f"- ▲/▼: paired t-test over seeds against {reference}, p < 0.05.",
        "",
        markdown_table(summary, metrics, reference),
        "",
        "## Per-epoch training time",
        "",
        *timing_lines(runs),
        "",
    ]
    path.write_text("\n".join(md), encoding="utf-8")
    print(f"wrote {path}")


def prepare_profiles(args) -> None:
    """Profiles and their text embeddings for each seed's training split, before any training."""
    from recbole.utils import init_seed

    import recbole_llm  # noqa: F401
    from recbole_llm.config import Config
    from recbole_llm.data import create_dataset, data_preparation
    from recbole_llm.profiles import load_item_profiles
    from recbole_llm.text import TextEncoder
    from recbole_llm.text.features import embed_texts

    overrides = [
        a
        for a in comparison_command("P4R", args.dataset, 1, 1, 1, "unused", args.extra)[1:]
        if not a.startswith(("--compare=", "--dataset=", "--seeds=", "--reference=", "--output="))
    ]
    for seed in range(2020, 2020 + args.seeds):
        config = Config("P4R", args.dataset, cmd_args=overrides + [f"--seed={seed}"])
        init_seed(seed, config["reproducibility"])
        train_data, _, _ = data_preparation(config, create_dataset(config))
        texts, path = load_item_profiles(config, train_data._dataset)
        embed_texts(texts, TextEncoder.from_config(config))
        print(f"seed {seed}: {path}", flush=True)


def run_group(command: list[str], threads: int) -> None:
    """One model group through ``compare`` (the same call as the command line's ``--compare``)."""
    from recbole_llm.compare import compare

    print("python " + " ".join(shlex.quote(c) for c in command), flush=True)
    os.environ.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",  # inherited by every run
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
        }
    )
    flags = dict(arg[2:].split("=", 1) for arg in command[1:6])
    overrides = command[6:]
    models = flags["compare"].split(",")
    compare(
        models,
        flags["dataset"],
        list(range(2020, 2020 + int(flags["seeds"]))),
        None,
        overrides,
        reference=flags["reference"],
        output_dir=ROOT / flags["output"],
        command="python " + " ".join(shlex.quote(c) for c in command),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--stopping_step", type=int, default=3)
    parser.add_argument("--groups", default=GROUPS, help="model groups, ';'-separated, each a --compare list")
    parser.add_argument("--extra", action="append", default=[], help="extra --key=value for every run")
    parser.add_argument("--report", default=str(RESULTS / "p4r_early_training.md"))
    parser.add_argument("--report_only", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per run (OMP_NUM_THREADS); 1 keeps timings stable on a shared machine",
    )
    parser.add_argument(
        "--prepare_profiles",
        action="store_true",
        help="only generate and encode the P4R profiles of every seed's split (fills the caches)",
    )
    args = parser.parse_args(argv)

    if args.prepare_profiles:
        prepare_profiles(args)
        return 0
    outputs, commands = [], []
    for models in (g for g in args.groups.split(";") if g):
        output = f"benchmarks/results/p4r_{args.dataset}_{models.replace(',', '-')}"
        command = comparison_command(
            models, args.dataset, args.seeds, args.epochs, args.stopping_step, output, args.extra
        )
        commands.append("python " + " ".join(shlex.quote(c) for c in command))
        outputs.append(ROOT / output)
        if not args.report_only:
            run_group(command, args.threads)
    write_report(args.dataset, outputs, commands, args, Path(args.report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
