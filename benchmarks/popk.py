"""Benchmark: uniform vs POPK negatives for BPR and LightGCN (issue #6).

    python benchmarks/popk.py --datasets=ml-100k,lastfm --seeds=3 --epochs=10 \
        --output=benchmarks/results/popk_early_training.md

For every dataset:
1. sampler timing: one pass over the training loader without a model (the time the negative
   sampling and batching take per epoch) for uniform with k negatives, uniform with k + popk
   negatives (the same number of rows POPK ``add`` yields) and POPK;
2. a small grid over (popk, popk_metric, popk_logic) with BPR and the first seed, chosen on the
   VALIDATION NDCG@10 (never on test);
3. BPR and LightGCN with uniform negatives vs the chosen POPK setting, every seed (each run
   in its own process through the experiment runner); test metrics, mean ± std, paired t-test.

Run it from a scratch directory if you do not want RecBole's log/, saved/ and dataset/ folders in
the current one (they are written to the current directory).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from recbole_llm.compare import Job, machine_description, markdown_table, parse_seeds, run_job, summarise  # noqa: E402
from recbole_llm.sampler import is_popk  # noqa: E402

ACCURACY = ["recall@10", "mrr@10", "ndcg@10"]
BEYOND = ["averagepopularity@10", "giniindex@10", "itemcoverage@10", "tailpercentage@10"]
# RecBole metric names of every run (CategoryDiversity is added where categories exist).
METRICS = ["Recall", "MRR", "NDCG", "Hit", "AveragePopularity", "GiniIndex", "ItemCoverage", "TailPercentage"]

# Per-dataset settings: the time unit decides the bucket (ml-100k: seconds over ~7 months -> one
# day; lastfm: milliseconds, tag times at day resolution at best -> one day).
DATASETS: dict[str, dict[str, Any]] = {
    "ml-100k": {
        "config": {
            "normalize_all": False,
            "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"], "item": ["item_id", "class"]},
            "category_field": "class",
            "metrics": [*METRICS, "CategoryDiversity"],
        },
        "bucket": 86400,
        "extra_metrics": ["categorydiversity@10"],
    },
    "lastfm": {
        "config": {
            "normalize_all": False,
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            "metrics": METRICS,
        },
        "bucket": 86_400_000,
        "extra_metrics": [],
    },
}

# (popk, popk_metric, popk_logic); popk_mode add, leak-free, k = 1 uniform negative.
GRID = [
    (popk, metric, logic) for popk in (1, 2, 4) for metric in ("count", "ratio", "variance") for logic in ("acc", "ptb")
]


def parse_grid(text: str | None) -> list[tuple[int, str, str]]:
    """``"2:count:acc,1:variance:ptb"`` -> [(2, "count", "acc"), ...]; None -> the full GRID."""
    if not text:
        return GRID
    grid = []
    for entry in text.split(","):
        popk, metric, logic = entry.split(":")
        grid.append((int(popk), metric, logic))
    return grid


def popk_args(bucket: float, popk: int, metric: str, logic: str) -> dict[str, Any]:
    return {
        "distribution": "popk",
        "sample_num": 1,
        "popk": popk,
        "popk_metric": metric,
        "popk_logic": logic,
        "popk_mode": "add",
        "popk_bucket": bucket,
        "popk_leak_free": True,
    }


def base_config(dataset: str, epochs: int, stopping_step: int = 3) -> dict[str, Any]:
    return {
        **DATASETS[dataset]["config"],
        "epochs": epochs,
        "stopping_step": stopping_step,
        "topk": [10],
        "valid_metric": "NDCG@10",
        # Large batches keep this CPU-only benchmark affordable: few optimizer steps / propagations per
        # epoch (lr raised to match) and full-sort evaluation in a couple of batches.
        "train_batch_size": 8192,
        "learning_rate": 0.005,
        "eval_batch_size": 2_000_000,
        "show_progress": False,
        "state": "WARNING",
    }


def run(model: str, dataset: str, config: dict[str, Any]) -> dict[str, Any]:
    """One training run through the experiment runner (its own process); a failed run stops the benchmark."""
    seed = config.get("seed", 2020)
    record = run_job(Job(model, dataset, {k: v for k, v in config.items() if k != "seed"}, seed))
    if record["status"] != "ok":
        raise RuntimeError(
            f"{model} on {dataset} (seed {seed}) failed: exit code {record['exit_code']}, {record['error']}"
        )
    return record


def sampler_call_times(loaders: dict[str, Any], rounds: int) -> dict[str, list[float]]:
    """Seconds of the sampler calls alone per epoch, batch by batch as each loader asks.

    Shuffled rows, no batching or joining around the call; POPK gets the rows' indices, as its loader
    passes them (precomputed P(t, popk)).
    """
    calls: dict[str, list[float]] = {name: [] for name in loaders}
    for _ in range(rounds):
        for name, loader in loaders.items():
            inter = loader._dataset.inter_feat
            order = np.random.permutation(len(inter))
            users, items = inter[loader.uid_field].numpy()[order], inter[loader.iid_field].numpy()[order]
            times = inter[loader.time_field].numpy()[order] if is_popk(loader.neg_sample_args) else None
            started = time.perf_counter()
            for lo in range(0, len(users), loader.step):
                hi = lo + loader.step
                if times is None:
                    loader._sampler.sample_by_user_ids(users[lo:hi], items[lo:hi], loader.neg_sample_num)
                else:
                    loader._sampler.sample_with_popk(
                        users[lo:hi], items[lo:hi], times[lo:hi], loader.neg_sample_num, rows=order[lo:hi]
                    )
            calls[name].append(time.perf_counter() - started)
    return calls


def timing_variants(bucket: float, chosen: tuple) -> dict[str, dict[str, Any]]:
    """The negative-sampling settings the timing compares, by label."""
    popk, metric, logic = chosen
    variants = {
        "uniform (k=1)": {"distribution": "uniform", "sample_num": 1},
        f"uniform (k={1 + popk}, same rows as POPK add)": {"distribution": "uniform", "sample_num": 1 + popk},
        f"POPK add (k=1, popk={popk}, {metric}, {logic})": popk_args(bucket, popk, metric, logic),
        f"POPK replace (k={popk}, popk={popk}, {metric}, {logic})": {
            **popk_args(bucket, popk, metric, logic),
            "popk_mode": "replace",
            "sample_num": popk,
        },
    }
    if popk > 1:  # like-for-like reference of `replace` (k = popk negatives per positive)
        variants[f"uniform (k={popk}, same rows as POPK replace)"] = {"distribution": "uniform", "sample_num": popk}
    return variants


def sampler_timing(dataset: str, bucket: float, chosen: tuple, rounds: int = 5) -> list[dict[str, Any]]:
    """Seconds per pass over the BPR training loader (no model), and the part spent drawing negatives.

    The variants are timed in interleaved rounds and the minimum over rounds is reported, which is
    the most robust statistic on a machine shared with other jobs.
    """
    from recbole_llm.config import Config
    from recbole_llm.data import create_dataset, data_preparation

    variants = timing_variants(bucket, chosen)
    loaders, setup, sampling = {}, {}, {}
    for name, args in variants.items():
        config = Config(
            "BPR", dataset, config_dict={**base_config(dataset, 1), "state": "ERROR", "train_neg_sample_args": args}
        )
        data = create_dataset(config)
        started = time.perf_counter()
        loaders[name] = data_preparation(config, data)[0]
        setup[name] = time.perf_counter() - started
        sampling[name] = 0.0
        original = loaders[name]._neg_sampling

        def timed(inter_feat, *args, _original=original, _name=name, **kwargs):
            began = time.perf_counter()
            result = _original(inter_feat, *args, **kwargs)
            sampling[_name] += time.perf_counter() - began
            return result

        loaders[name]._neg_sampling = timed
    passes = {name: [] for name in variants}
    samples = {name: [] for name in variants}
    rows = {}
    for _ in range(rounds):
        for name, loader in loaders.items():
            sampling[name] = 0.0
            started = time.perf_counter()
            rows[name] = sum(len(batch) for batch in loader)
            passes[name].append(time.perf_counter() - started)
            samples[name].append(sampling[name])
    calls = sampler_call_times(loaders, rounds)
    result = []
    for name in variants:
        result.append(
            {
                "variant": name,
                "setup_s": setup[name],
                "epoch_s": min(passes[name]),
                "epoch_median_s": float(np.median(passes[name])),
                "neg_sampling_s": min(samples[name]),
                "sampler_call_s": min(calls[name]),
                "rows_per_epoch": rows[name],
            }
        )
        print(f"[popk] timing {dataset}: {result[-1]}", flush=True)
    return result


def timing_table(timing: list[dict[str, Any]]) -> list[str]:
    lines = [
        "### Sampler time per epoch (one pass over the BPR training loader, no model)",
        "",
        (
            "Minimum over 5 interleaved rounds (median in brackets); `_neg_sampling` = time inside the "
            "loader's negative sampling (sampler call + building the negative rows); sampler calls = the "
            "sampler alone (RecBole `sample_by_user_ids` / POPK `sample_with_popk`) over the epoch's "
            "batches; setup = splitting "
            "and building the sampler (POPK: its popularity table)."
        ),
        "",
        "| negatives | setup s | loader s/epoch | `_neg_sampling` s/epoch | sampler calls s/epoch | rows/epoch |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {t['variant']} | {t['setup_s']:.2f} | {t['epoch_s']:.3f} ({t['epoch_median_s']:.3f}) | "
        f"{t['neg_sampling_s']:.3f} | {t['sampler_call_s']:.3f} | {t['rows_per_epoch']} |"
        for t in timing
    ]
    return lines + [""]


def label(args: dict[str, Any]) -> str:
    if args["distribution"] == "uniform":
        return "uniform" if args["sample_num"] == 1 else f"uniform k={args['sample_num']}"
    return f"POPK(p={args['popk']},{args['popk_metric']},{args['popk_logic']})"


def grid_stage(dataset: str, seed: int, grid_epochs: int, stopping_step: int, grid_settings) -> list[dict[str, Any]]:
    """BPR with every POPK setting of the grid, first seed; the records carry the setting."""
    bucket = DATASETS[dataset]["bucket"]
    grid_rows = []
    for popk, metric, logic in grid_settings:
        config = {
            **base_config(dataset, grid_epochs, stopping_step),
            "seed": seed,
            "train_neg_sample_args": popk_args(bucket, popk, metric, logic),
        }
        record = run("BPR", dataset, config)
        record.update({"popk": popk, "popk_metric": metric, "popk_logic": logic})
        grid_rows.append(record)
        print(f"[popk] grid {dataset} {popk},{metric},{logic}: valid ndcg@10={record['valid_ndcg@10']}", flush=True)
    return grid_rows


def grid_lines(grid_rows: list[dict[str, Any]], seed: int, grid_epochs: int, chosen: tuple) -> list[str]:
    lines = [
        f"### Grid (BPR, seed {seed}, at most {grid_epochs} epochs, chosen on validation NDCG@10)",
        "",
        "| popk | metric | logic | valid NDCG@10 | valid Recall@10 | valid AvgPop@10 |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {row['popk']} | {row['popk_metric']} | {row['popk_logic']} | {row['valid_ndcg@10']:.4f} | "
        f"{row['valid_recall@10']:.4f} | {row['valid_averagepopularity@10']:.1f} |"
        for row in grid_rows
    ]
    return lines + ["", f"Chosen: popk={chosen[0]}, popk_metric={chosen[1]}, popk_logic={chosen[2]}.", ""]


def final_stage(
    dataset: str, model: str, variants: list[dict[str, Any]], seeds: list[int], epochs: int, stopping_step: int
) -> list[dict[str, Any]]:
    """``model`` with every negative-sampling variant and every seed (test metrics)."""
    records = []
    for args in variants:
        for seed in seeds:
            config = {**base_config(dataset, epochs, stopping_step), "seed": seed, "train_neg_sample_args": args}
            record = run(model, dataset, config)
            record.update({"model": f"{model} {label(args)}", "seed": seed})
            records.append(record)
            print(
                f"[popk] {dataset} {record['model']} seed={seed}: ndcg@10={record['ndcg@10']} "
                f"avgpop={record['averagepopularity@10']}",
                flush=True,
            )
    return records


def benchmark_dataset(
    dataset: str,
    seeds: list[int],
    epochs: int,
    grid_epochs: int,
    out: dict,
    grid_settings: list[tuple[int, str, str]],
    stopping_step: int,
) -> list[str]:
    """1. grid on validation (BPR, first seed); 2. sampler timing; 3. uniform vs the chosen POPK, every seed."""
    bucket = DATASETS[dataset]["bucket"]
    grid_rows = grid_stage(dataset, seeds[0], grid_epochs, stopping_step, grid_settings)
    best = pd.DataFrame(grid_rows).sort_values("valid_ndcg@10", ascending=False).iloc[0]
    chosen = (int(best["popk"]), str(best["popk_metric"]), str(best["popk_logic"]))
    out.setdefault(dataset, {})["grid"] = grid_rows
    lines = [f"## {dataset}", "", *grid_lines(grid_rows, seeds[0], grid_epochs, chosen)]
    out[dataset]["timing"] = sampler_timing(dataset, bucket, chosen)
    lines += [*timing_table(out[dataset]["timing"]), ""]
    metrics = ACCURACY + BEYOND + DATASETS[dataset]["extra_metrics"]
    # uniform k=1 (RecBole's default), uniform with as many negatives as POPK add (is it the popularity or
    # just more negatives?), and the chosen POPK setting
    variants = [
        {"distribution": "uniform", "sample_num": 1},
        {"distribution": "uniform", "sample_num": 1 + chosen[0]},
        popk_args(bucket, *chosen),
    ]
    for model in ("BPR", "LightGCN"):
        out[dataset][model] = final_stage(dataset, model, variants, seeds, epochs, stopping_step)
        reference = f"{model} uniform"
        summary = summarise(pd.DataFrame(out[dataset][model]), metrics, reference)
        lines += [
            (
                f"### {model}: test metrics, mean ± std over seeds {', '.join(map(str, seeds))} "
                f"(at most {epochs} epochs, early stopping {stopping_step} on valid NDCG@10)"
            ),
            "",
            markdown_table(summary, metrics, reference),
            "",
        ]
    return lines


def report_header(args, command: str) -> list[str]:
    return [
        "# POPK vs uniform negatives (issue #6)",
        "",
        f"- Command: `{command}` (run from a scratch directory)",
        f"- Machine: {machine_description()}" + (f"; {args.machine_note}" if args.machine_note else "") + ".",
        (
            f"- Budget: grid at most {args.grid_epochs} epochs, final runs at most {args.epochs} epochs with early "
            f"stopping ({args.stopping_step} evaluations) on validation NDCG@10; train_batch_size 8192 rows, "
            "learning_rate 0.005, "
            "RecBole defaults otherwise (64-d embeddings, full-sort evaluation, ml-100k random 8/1/1 split, "
            "lastfm leave-last-out by time)."
        ),
        (
            "- POPK: k=1 uniform negative + popk popular items per positive (`popk_mode: add`), leak-free, "
            "day buckets; the popk negatives arrive as extra (user, pos, neg) rows, so an epoch has (1 + popk)x "
            "the rows of uniform k=1."
        ),
        "- Test metrics below; the POPK setting is chosen on validation only.",
        "",
    ]


def timing_only(args, command: str, output: Path) -> int:
    """``--timing_only``: the sampler timing of one POPK setting, per dataset."""
    popk, metric, logic = args.timing_only.split(",")
    body = []
    for dataset in args.datasets.split(","):
        timing = sampler_timing(dataset, DATASETS[dataset]["bucket"], (int(popk), metric, logic))
        body += [f"## {dataset}", "", *timing_table(timing)]
    lines = [f"- Command: `{command}`", f"- Machine: {machine_description()}", "", *body]
    output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"[popk] wrote {output}", flush=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="ml-100k,lastfm")
    parser.add_argument("--seeds", default="3", help="a count (2020, 2021, ...) or a comma list")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--grid_epochs", type=int, default=5)
    parser.add_argument("--stopping_step", type=int, default=3, help="evaluations without improvement before stopping")
    parser.add_argument(
        "--grid",
        default=None,
        metavar="POPK:METRIC:LOGIC,...",
        help="grid searched on validation with BPR (default: popk 1,2,4 x count,ratio,variance x acc,ptb)",
    )
    parser.add_argument(
        "--machine_note",
        default="",
        help="how busy the machine was (the table's times depend on it), written under Machine",
    )
    parser.add_argument(
        "--timing_only",
        default=None,
        metavar="POPK,METRIC,LOGIC",
        help="only the sampler timing with this POPK setting, e.g. 2,variance,acc",
    )
    parser.add_argument("--output", default=str(PROJECT / "benchmarks" / "results" / "popk_early_training.md"))
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/popk.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    header = report_header(args, command)
    if args.timing_only:
        return timing_only(args, command, output)
    raw: dict[str, Any] = {}
    body: list[str] = []
    for dataset in args.datasets.split(","):
        body += benchmark_dataset(
            dataset, seeds, args.epochs, args.grid_epochs, raw, parse_grid(args.grid), args.stopping_step
        )
        output.write_text("\n".join(header + body) + "\n", encoding="utf-8")  # keep partial results
        output.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str), encoding="utf-8")
    print(f"[popk] wrote {output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
