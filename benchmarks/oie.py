"""OIE benchmark: SASRec / BERT4Rec / BSARec x vanilla / OIE item_emb / OIE whole (Putra et al.).

Leave-one-out, full ranking, HR and NDCG at 5 and 10 on the test split (model chosen on validation
NDCG@10), several seeds, plus the final AAE/SA of the best checkpoint. The runs go through the
project's experiment runner (``recbole_llm.compare.run_jobs``: one process per run, one at a time,
mean ± std and paired t-tests) with the OIE history attached by its extra-result hook. Finished runs
are kept in ``<workdir>/runs/`` and not repeated. Pre-training is cached per model (seed ``oie_seed``).

    python benchmarks/oie.py --dataset=lastfm-seq --seeds=3 --epochs=20 --max_len=50
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

import pandas as pd

from recbole_llm.compare import Job, machine_description, parse_seeds, run_jobs, summarise
from recbole_llm.compare.hooks import oie_history

PROJECT = Path(__file__).resolve().parent.parent
AUTHORS_SA = {  # spec: SASRec / BERT4Rec / BSARec
    "lastfm-seq": {"SASRec": 0.429, "BERT4Rec": 0.363, "BSARec": 0.424},
    "beauty-seq": {"SASRec": 0.431, "BERT4Rec": 0.371, "BSARec": 0.430},
}
METRICS = ["hit@5", "hit@10", "ndcg@5", "ndcg@10"]


def run_config(args, variant: str) -> dict:
    config = {
        "epochs": args.epochs,
        "stopping_step": args.stopping_step,
        "eval_step": 1,
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "metrics": ["Hit", "NDCG"],
        "topk": [5, 10],
        "valid_metric": "NDCG@10",
        "train_batch_size": 256,
        "eval_batch_size": 4096,
        "show_progress": False,
        "use_gpu": args.gpu,
        "train_neg_sample_args": None,
        "oie_pretrain_epochs": args.pretrain_epochs,
        "oie_num_sequences": args.num_sequences,
        "checkpoint_dir": str(Path(args.workdir) / "saved"),
        "oie_cache_dir": str(Path(args.workdir) / "oie_cache"),
    }
    if variant != "vanilla":
        config["oie_init"] = variant
    return config


def attach_oie(result: dict, config: dict) -> dict:
    """Extra-result hook: the OIE history and the arm's initialisation."""
    return {**oie_history(result, config), "variant": config.get("oie_init", "vanilla")}


def run_file(args, job: Job) -> Path:
    return Path(args.workdir) / "runs" / f"{job.name.replace(' ', '-')}-{job.seed}.json"


def store(args, jobs: list[Job], record: dict) -> None:
    """Keep a finished run so that a rerun of the benchmark skips it."""
    if record["status"] != "ok":
        return
    job = next(j for j in jobs if j.name == record["model"] and j.seed == record["seed"])
    path = run_file(args, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, default=str), encoding="utf-8")


def model_rows(args, runs: pd.DataFrame, model: str) -> list[str]:
    """Table rows of one model's arms: metrics, change and paired p against vanilla, AAE/SA, time."""
    sub = runs[runs["model_name"] == model]
    reference = f"{model} vanilla"
    summary = summarise(sub, METRICS, reference if reference in set(sub["model"]) else None).set_index("model")
    lines = []
    for variant in args.variants:
        label = f"{model} {variant}"
        if label not in summary.index:
            continue
        row, arm = summary.loc[label], sub[sub["model"] == label]
        spread = row["n_seeds"] > 1  # a single seed has no spread to report
        cells = [f"{row[f'{m}_mean']:.4f}" + (f" ± {row[f'{m}_std']:.4f}" if spread else "") for m in METRICS]
        change, p_value = "", ""
        if variant != "vanilla" and reference in summary.index:
            base = summary.loc[reference, "ndcg@10_mean"]
            change = f"{(row['ndcg@10_mean'] - base) / base * 100:+.1f}%"
            p_value = "" if row["ndcg@10_p"] != row["ndcg@10_p"] else f"{row['ndcg@10_p']:.3f}"
        aae = f"{arm['oie_aae'].mean():.4f}" if "oie_aae" in arm else ""
        sa = f"{arm['oie_sa'].mean():.4f}" if "oie_sa" in arm else ""
        lines.append(
            f"| {model} | {variant} | " + " | ".join(cells) + f" | {change} | {p_value} | {aae} | {sa} | "
            f"{AUTHORS_SA.get(args.dataset, {}).get(model, '')} | {row['epoch_time_s']:.1f} | "
            f"{row['epochs']:.1f} |"
        )
    return lines


def report_header(args, records: list[dict], command: str) -> list[str]:
    seeds = ", ".join(map(str, sorted({r["seed"] for r in records})))
    return [
        f"# OIE benchmark on {args.dataset}",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine_description()}; one run at a time"
        + (f"; {args.machine_note}" if args.machine_note else "")
        + ".",
        "",
        (
            f"Budget: at most {args.epochs} epochs, early stopping after {args.stopping_step} epochs without a better "
            f"validation NDCG@10, MAX_ITEM_LIST_LENGTH {args.max_len}, batch 256, models' default hyperparameters. "
            f"OIE pre-training: {args.num_sequences} synthetic sequences (authors: 25,000), "
            f"{args.pretrain_epochs} epochs "
            f"(authors: 10), seed oie_seed shared by all seeds. Seeds: {seeds}."
        ),
        "",
        (
            "Protocol: RecBole leave-one-out by sequence order, full ranking over all items, model selected on "
            "validation NDCG@10, metrics of the test split; mean ± std over seeds, paired t-test against vanilla."
        ),
        "",
        "| model | init | "
        + " | ".join(m.replace("hit", "HR").replace("ndcg", "NDCG") for m in METRICS)
        + " | NDCG@10 vs vanilla | p (paired t, NDCG@10) | AAE (best ckpt) | SA (best ckpt) | SA authors | s/epoch "
        "| epochs |",
        "|" + "---|" * (len(METRICS) + 9),
    ]


def write_plots(args, records: list[dict], results: Path) -> list[str]:
    """AAE/SA-over-epochs and cosine heatmaps of the first seed's runs; markdown image lines."""
    from recbole_llm.compat import load_recbole_checkpoint
    from recbole_llm.oie.plots import plot_cosine_heatmaps, plot_oie_history

    first_seed = min(r["seed"] for r in records if r["status"] == "ok")
    firsts = [r for r in records if r["seed"] == first_seed and isinstance(r.get("oie_history"), list)]
    history_png = plot_oie_history(
        {r["model"]: r["oie_history"] for r in firsts},
        results.parent / f"{results.stem}_history.png",
        title=f"AAE / SA during training on {args.dataset} (seed {first_seed})",
    )
    heat_model = "BSARec" if "BSARec" in args.models else args.models[0]
    tables = {}
    for record in (r for r in firsts if r["model_name"] == heat_model):
        state = load_recbole_checkpoint(str(record["saved_model_file"]), map_location="cpu")["state_dict"]
        tables[record["model"]] = state["item_embedding.weight"][1:]
    lines = [f"![AAE/SA over epochs]({history_png.name})"]
    if tables:
        heat_png = plot_cosine_heatmaps(
            tables,
            results.parent / f"{results.stem}_heatmap.png",
            title=f"Cosine similarity of items 1-50, best checkpoints ({args.dataset}, seed {first_seed})",
        )
        lines += ["", f"![cosine heatmaps]({heat_png.name})"]
    return lines


def write_report(args, records: list[dict], command: str) -> None:
    results = Path(args.output)
    results.parent.mkdir(parents=True, exist_ok=True)
    runs = pd.DataFrame([r for r in records if r["status"] == "ok"])
    lines = report_header(args, records, command)
    for model in args.models if len(runs) else []:
        lines += model_rows(args, runs, model)
    failed = [r for r in records if r["status"] != "ok"]
    lines += [f"- failed: {r['model']} seed {r['seed']}, exit code {r['exit_code']}: {r['error']}" for r in failed]
    with_history = [r for r in records if isinstance(r.get("oie_history"), list) and r["oie_history"]]
    if with_history:
        first = with_history[0]["oie_history"][0]
        lines += [
            "",
            (
                f"Random Gaussian table of the same shape: AAE {first['aae_random']:.4f}, "
                f"SA {first['sa_random']:.4f}. The authors report SA of vanilla-trained models."
            ),
            "",
        ]
        lines += write_plots(args, records, results)
    results.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {results}")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="lastfm-seq")
    parser.add_argument("--models", default="SASRec,BERT4Rec,BSARec")
    parser.add_argument("--variants", default="vanilla,item_emb,whole")
    parser.add_argument("--seeds", default="2020,2021,2022", help="a count (2020, 2021, ...) or a comma list")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--stopping_step", type=int, default=3)
    parser.add_argument("--max_len", type=int, default=50)
    parser.add_argument("--pretrain_epochs", type=int, default=10)
    parser.add_argument("--num_sequences", type=int, default=25000)
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--rerun", action="store_true", help="ignore finished runs in the work folder")
    parser.add_argument("--workdir", default="saved/oie_benchmark")
    parser.add_argument("--output", default=None, help="default benchmarks/results/oie_<dataset>.md")
    parser.add_argument("--report_only", action="store_true")
    parser.add_argument(
        "--machine_note",
        default="",
        help="how busy the machine was during the runs (s/epoch depends on it), written in the report",
    )
    args = parser.parse_args(argv)
    args.models = args.models.split(",")
    args.variants = args.variants.split(",")
    args.workdir = str(Path(args.workdir).resolve() / args.dataset)
    args.output = args.output or str(PROJECT / "benchmarks" / "results" / f"oie_{args.dataset}.md")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("RECBOLE_LLM_RAW_DATA", str(PROJECT.parent / "shared" / "datasets"))  # inherited by runs
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    command = "python benchmarks/oie.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    # Seed-major order: the first OIE run of each model pre-trains and fills the cache the others reuse.
    jobs = [
        Job(model, args.dataset, run_config(args, variant), seed, label=f"{model} {variant}")
        for seed in parse_seeds(args.seeds)
        for model in args.models
        for variant in args.variants
    ]
    done = [] if args.rerun else [job for job in jobs if run_file(args, job).is_file()]
    records = [json.loads(run_file(args, job).read_text(encoding="utf-8")) for job in done]
    todo = [job for job in jobs if not any(job is finished for finished in done)]
    if todo and not args.report_only:
        runs = run_jobs(
            todo,
            Path(args.workdir) / "compare",
            reference=todo[0].name,
            command=command,
            extra_result=attach_oie,
            on_record=lambda record: store(args, todo, record),
        )
        failed_keys = ("model", "model_name", "seed", "status", "exit_code", "error")
        records += [{k: r[k] for k in failed_keys} for r in runs.to_dict("records") if r["status"] != "ok"]
        records += [json.loads(run_file(args, job).read_text()) for job in todo if run_file(args, job).is_file()]
    if records:
        write_report(args, records, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
