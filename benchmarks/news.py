"""News benchmark (issue #15): NRMS, NAML, LSTUR, AWRS, each without and with POPK, on news impressions.

Two modes, both resumable: every finished entry is appended to a JSON-lines store beside the report
(keyed by the resolved configuration and the model's source file, as the benchmark suites do) and
skipped on a rerun, so a kill loses only the running job.

``quality``: every model x {plain, +POPK} x seed trained to early stopping on the validation ImpAUC,
each run in its own process through the experiment runner (``recbole_llm.compare.run_job``), plus a
random scorer on the same test impressions; ``benchmarks/results/news.md``, ``news.csv`` (one row per
run), ``news.jsonl`` (the store). POPK on news is the news models' ``popk`` key (0 = off; see
``properties/model/NewsRecommender.yaml``): the popk most popular training news before each
impression's time appended to its candidates.

``speed``: training throughput (training samples/s and impressions/s: loader, forward, backward and
optimiser step, RecBole's own ``_train_epoch``) and evaluation throughput (whole impressions scored and
their metrics computed) of each model on the CPU with frozen MiniLM title vectors
(``title_encoder: plm_pooled_frozen``, vectors from the text cache, computed before the clock starts),
and from the mind-small-sample rows the estimated time of one MIND-small epoch;
``benchmarks/results/news_speed.md`` (+ ``news_speed.jsonl``).

    python benchmarks/news.py quality --datasets=mind-small-sample,dkn-bing-news --seeds=3
    python benchmarks/news.py speed --datasets=mind-small-sample,dkn-bing-news
    python benchmarks/news.py quality --datasets=mind-small --download_raw --seeds=3 \\
        --output=benchmarks/results/news_mind_small.md          # the full MIND-small (downloads 84 MB)

RecBole writes ``log/`` (and the converted ``dataset/``) in the current directory: run it from a
scratch directory if you do not want them there.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from recbole_llm.benchmark.store import ResultStore, content_key, model_code_version, resolved_config  # noqa: E402
from recbole_llm.compare import Job, machine_description, run_in_child, run_job  # noqa: E402
from recbole_llm.compare.report import paired_p_value  # noqa: E402

MODELS = ("NRMS", "NAML", "LSTUR", "AWRS")
RANDOM_DRAWS = 100  # random scorings averaged per seed for the random reference
METRICS = ["impauc", "globalauc", "impmrr", "impmrrfirst", "impndcg@5", "impndcg@10"]
METRIC_NAMES = ["ImpAUC", "GlobalAUC", "ImpMRR", "ImpMRRFirst", "nDCG@5", "nDCG@10"]
RESULTS = PROJECT / "benchmarks" / "results"
MIND_SMALL_COMMAND = (
    "python benchmarks/news.py quality --datasets=mind-small --download_raw --seeds=3 "
    "--output=benchmarks/results/news_mind_small.md"
)
# MIND-small sizes (Wu et al., ACL 2020; microsoft/recommenders): impressions in MINDsmall_train and
# MINDsmall_dev. In the shared 5,000-impression sample of MINDsmall_train, 80.6% of the impressions are
# before 2019-11-14 (mind-small's training split; the rest is its validation split) and an
# impression has 1.51 clicks (= training samples per impression with impression_sampling per_positive).
MIND_SMALL_TRAIN_IMPRESSIONS = 156_965
MIND_SMALL_DEV_IMPRESSIONS = 73_152
MIND_SMALL_TRAIN_SHARE = 0.806
DATASET_NOTES = {
    "mind-small-sample": (
        "5,000 real MIND-small impressions (train before 2019-11-13, valid = 11-13, test = 11-14). The news table "
        "was sampled independently: only 2-3% of the candidates have a news row, the others have no title and "
        "no category, so the content-based encoders give them all one and the same vector and most candidates "
        "tie (ties count 1/2 in AUC and keep their shown order in the ranking metrics). ImpAUC near 0.5 is "
        "therefore expected here; only AWRS's engagement features see beyond the titles."
    ),
    "dkn-bing-news": (
        "DKN's Bing News sample (469 users; no validation file). Per user, a seeded 10% of the raw_train rows "
        "(seed 0) is the validation impression that early stopping reads, held out of training and of every "
        "history; the other raw_train rows are cut into training impressions of 10; raw_test is one test "
        "impression per user (101 users have test rows: 101 impressions, 416 candidates), read only for these "
        "metrics. 221 of the 1,252 validation news are shown to other "
        "users in training, while test news never occur in training (validation is not cold-start). No times: POPK "
        "finds no earlier training bucket (see its coverage), so it adds nothing and its runs are skipped."
    ),
    "mind-small": "MIND-small: train before 2019-11-14, valid = 2019-11-14, test = MINDsmall_dev.",
}


# ----------------------------------------------------------------------------- shared
def variants(args) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, model, overrides) of every model and variant asked for."""
    chosen = []
    for model in args.models:
        for variant in args.variants:
            overrides = {"popk": args.popk} if variant == "popk" else {"popk": 0}
            chosen.append((model if variant == "plain" else f"{model}+POPK", model, overrides))
    return chosen


def base_settings(args) -> dict[str, Any]:
    """Settings of every run; paths, device and verbosity are left out of the stored keys."""
    settings: dict[str, Any] = {"show_progress": False, "state": "ERROR", "use_gpu": bool(args.gpu)}
    if args.data_path:
        settings["data_path"] = args.data_path
    if args.download_raw:
        settings["download_raw"] = True
    return settings


def prepare(args, dataset: str) -> None:
    """Convert (or download and convert) a named dataset once, before any key is computed.

    The converter writes a dataset yaml that the resolved configuration reads, so a key computed
    before the first conversion would differ from every later one.
    """
    from recbole_llm.config import Config
    from recbole_llm.data.named_datasets import prepare_named_dataset
    from recbole_llm.metrics import register_metrics

    register_metrics()
    prepare_named_dataset(Config("NRMS", dataset, config_dict=base_settings(args)))


def command_line(argv: list[str]) -> str:
    return "python benchmarks/news.py " + " ".join(shlex.quote(a) for a in argv)


def stable_config(model: str, dataset: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The resolved configuration a stored key is made of (where the raw files come from left out)."""
    config = resolved_config(model, dataset, None, settings)
    config.pop("download_raw", None)
    return config


def machine_line(args) -> str:
    import torch

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    threads = args.threads or torch.get_num_threads()
    return f"{machine_description()}; torch threads {threads}; load average at start {load}"


def mean_std(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "–"
    return f"{values.mean():.4f}" + (f" ± {values.std(ddof=1):.4f}" if len(values) > 1 else "")


# ----------------------------------------------------------------------------- quality: runs
def run_key(args, dataset: str, label: str, model: str, overrides: dict, seed: int, settings: dict) -> str:
    config = stable_config(model, dataset, {**settings, **overrides, "seed": seed})
    return content_key("news-run", model, {"dataset": dataset, "label": label, "config": config})


def quality_runs(args, store: ResultStore, dataset: str) -> tuple[list[dict], list[dict]]:
    """(stored entries of this configuration, failed records of this invocation) for one dataset."""
    settings = {**base_settings(args), "epochs": args.epochs, "stopping_step": args.stopping_step}
    entries, failed = [], []
    for seed in args.seeds:
        for label, model, overrides in variants(args):
            key = run_key(args, dataset, label, model, overrides, seed, settings)
            if key not in store and not args.report_only:
                print(f"[news] {label} on {dataset}, seed {seed} ...", flush=True)
                checkpoints = str(Path(args.workdir) / "saved" / dataset / label)
                job = Job(model, dataset, {**settings, **overrides, "checkpoint_dir": checkpoints}, seed, label=label)
                record = run_job(job)
                if record["status"] != "ok":
                    failed.append(record)
                    continue
                store.add({"kind": "news-run", "key": key, "code": model_code_version(model), **record})
            if key in store:
                entries.append({**store.get(key), "popk": overrides["popk"]})
    return entries, failed


def random_scorer(seed: int):
    """A module scoring every candidate uniformly at random: the floor each model must beat."""
    import torch

    from recbole_llm.news.data import CANDIDATES

    class RandomScorer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.generator = torch.Generator().manual_seed(seed)
            self.unused = torch.nn.Parameter(torch.zeros(1))  # RecBole's trainer builds an optimiser over it

        def predict(self, interaction):
            return torch.rand(interaction[CANDIDATES].shape, generator=self.generator)

    return RandomScorer()


def random_reference(args, store: ResultStore, dataset: str) -> list[dict]:
    """The random scorer's test metrics, one entry per seed (evaluation only, in this process).

    Each entry is the mean over ``RANDOM_DRAWS`` random scorings of the test impressions: on a small test split
    one draw varies a lot (ImpAUC's standard deviation over draws is 0.05 on dkn-bing-news's 101 impressions),
    so a single draw per seed would make "beats random" depend on the luck of three draws.
    """
    from recbole_llm.config import Config
    from recbole_llm.data import create_dataset
    from recbole_llm.news import NewsTrainer, news_data_preparation

    entries = []
    for seed in args.seeds:
        settings = {**base_settings(args), "seed": seed}
        config_key = {"dataset": dataset, "config": stable_config("NRMS", dataset, settings), "draws": RANDOM_DRAWS}
        key = content_key("news-random", "NRMS", config_key)
        if key not in store and not args.report_only:
            config = Config(
                "NRMS", dataset, config_dict={**settings, "checkpoint_dir": str(Path(args.workdir) / "saved")}
            )
            _, _, test = news_data_preparation(config, create_dataset(config))
            draws = [
                NewsTrainer(config, random_scorer(seed * 1_000 + draw)).evaluate(test, load_best_model=False)
                for draw in range(RANDOM_DRAWS)
            ]
            means = {k: float(np.mean([d[k] for d in draws])) for k in draws[0]}
            store.add(
                {
                    "kind": "news-random",
                    "key": key,
                    "model": "random",
                    "dataset": dataset,
                    "seed": seed,
                    "status": "ok",
                    "draws": RANDOM_DRAWS,
                    **means,
                }
            )
        if key in store:
            entries.append(store.get(key))
    return entries


def popk_coverage(args, store: ResultStore, dataset: str) -> dict | None:
    """POPK items per training sample over one pass of the training loader (no model): how much POPK adds."""
    if "popk" not in args.variants:
        return None
    from recbole_llm.config import Config
    from recbole_llm.data import create_dataset
    from recbole_llm.news import news_data_preparation
    from recbole_llm.news.data import CANDIDATES

    settings = {**base_settings(args), "popk": args.popk, "seed": args.seeds[0]}
    key = content_key(
        "news-popk-coverage", "NRMS", {"dataset": dataset, "config": stable_config("NRMS", dataset, settings)}
    )
    if key not in store and not args.report_only:
        config = Config("NRMS", dataset, config_dict=settings)
        train, _, _ = news_data_preparation(config, create_dataset(config))
        counts = np.concatenate([(batch[CANDIDATES][:, -args.popk :] > 0).sum(1).numpy() for batch in train])
        store.add(
            {
                "kind": "news-popk-coverage",
                "key": key,
                "dataset": dataset,
                "popk": args.popk,
                "samples": int(len(counts)),
                "mean_items": float(counts.mean()),
                "share_with_any": float((counts > 0).mean()),
            }
        )
    return store.get(key)


# ----------------------------------------------------------------------------- quality: report
def vs_reference(runs: pd.DataFrame, label: str, reference: str) -> str:
    """ImpAUC difference of the means and the paired t-test over seeds (p), against ``reference``."""
    if reference not in set(runs["model"]) or label == reference:
        return ""
    delta = runs.loc[runs.model == label, "impauc"].mean() - runs.loc[runs.model == reference, "impauc"].mean()
    p = paired_p_value(runs, label, reference, "impauc")
    return f"{delta:+.4f}" + ("" if np.isnan(p) else f" (p={p:.3f})")


def dataset_table(runs: pd.DataFrame, labels: list[str]) -> list[str]:
    header = ["model", *METRIC_NAMES, "ImpAUC − random", "POPK − plain (ImpAUC)", "epochs (best)", "s/epoch", "seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label in ["random", *labels]:
        sub = runs[runs.model == label]
        if sub.empty:
            continue
        cells = [label, *(mean_std(sub[m]) for m in METRICS)]
        cells.append(vs_reference(runs, label, "random"))
        cells.append(vs_reference(runs, label, label[: -len("+POPK")]) if label.endswith("+POPK") else "")
        if label == "random":
            cells += ["–", "–"]
        else:
            cells.append(f"{sub['epochs'].mean():.1f} ({sub['best_epoch'].mean():.1f})")
            cells.append(f"{sub['epoch_time_s'].mean():.1f}")
        cells.append(str(len(sub)))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def quality_header(args, command: str, seeds: list[int]) -> list[str]:
    return [
        "# News models on impression logs: NRMS, NAML, LSTUR, AWRS, each without and with POPK",
        "",
        "**The samples here are far too small for conclusions**: they show that every model trains, stops "
        "early and is compared with a random scorer on the same impressions, not which model is better. "
        "For the full MIND-small (downloads MINDsmall_train.zip and MINDsmall_dev.zip, 84 MB): "
        f"`{MIND_SMALL_COMMAND}`.",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine_line(args)}",
        f"- Seeds: {', '.join(map(str, seeds))}",
        f"- Budget: each model's yaml defaults (`properties/model/`), at most {args.epochs} epochs, early stopping "
        f"after {args.stopping_step} validations without a better ImpAUC; test metrics of the best validation "
        "checkpoint. Titles: frozen MiniLM sentence vectors (`title_encoder: plm_pooled_frozen`).",
        f"- POPK: `popk: {args.popk}` (`popk_metric: count`, `popk_logic: acc`, 1-hour buckets), the most popular "
        "training news before each impression's bucket appended to its training candidates.",
        "- Metrics (test split, mean ± std over seeds): ImpAUC = MIND's per-impression AUC, GlobalAUC = AUC over "
        "all candidates pooled (NewsRecLib), ImpMRR = mean reciprocal rank of all clicks (MIND), ImpMRRFirst = "
        "of the first click (torchmetrics), nDCG@k per impression. `− random` / `− plain`: difference of the "
        "mean ImpAUC, p = paired t-test over seeds.",
        f"- random: a scorer drawing every candidate's score uniformly; each seed's row is the mean of {RANDOM_DRAWS} "
        "such scorings of the test impressions (one draw varies too much on a small test split to be the floor).",
        "",
    ]


def coverage_lines(coverage: dict | None) -> list[str]:
    """How much POPK adds on a dataset, and why its +POPK rows are missing when it adds nothing."""
    if coverage is None:
        return []
    lines = [
        "",
        f"POPK coverage: {coverage['mean_items']:.2f} of {coverage['popk']} POPK items per training "
        f"sample on average; {coverage['share_with_any']:.1%} of {coverage['samples']:,} samples get any.",
    ]
    if popk_adds_nothing(coverage):
        lines[-1] += (
            " POPK adds nothing here (no training sample has an earlier bucket), so the +POPK runs would repeat"
            " the plain ones: they are not run."
        )
    return lines


def write_quality_report(args, results: dict[str, dict], command: str) -> None:
    """news.md and news.csv from the stored entries of this configuration."""
    labels = [label for label, _, _ in variants(args)]
    lines = quality_header(args, command, args.seeds)
    rows = []
    for dataset, found in results.items():
        runs = pd.DataFrame(found["runs"] + found["random"])
        rows.append(runs.assign(dataset=dataset))
        lines += [f"## {dataset}", "", DATASET_NOTES.get(dataset, ""), ""]
        lines += dataset_table(runs, labels) if len(runs) else ["(no finished run yet)"]
        if "single_class_impressions" in runs and runs["single_class_impressions"].notna().any():
            skipped = sorted({int(v) for v in runs["single_class_impressions"].dropna()})
            lines += [
                "",
                f"Single-class test impressions (no click, or all clicked), skipped by every per-impression "
                f"metric: {', '.join(map(str, skipped))}.",
            ]
        lines += coverage_lines(found["coverage"])
        lines += [
            f"- failed: {r['model']} seed {r['seed']}, exit code {r['exit_code']}: {r['error']}"
            for r in found["failed"]
        ]
        lines.append("")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines), encoding="utf-8")
    if rows:
        table = pd.concat(rows, ignore_index=True)
        keep = [
            "dataset",
            "model",
            "model_name",
            "popk",
            "seed",
            "status",
            *METRICS,
            "epochs",
            "best_epoch",
            "epoch_time_s",
            "peak_memory_mb",
            "wall_s",
        ]
        table[[c for c in keep if c in table]].to_csv(output.with_suffix(".csv"), index=False)
    print(f"[news] wrote {output} and {output.with_suffix('.csv')}", flush=True)


def report_scope(args, store: ResultStore) -> argparse.Namespace:
    """What the report shows: the command's datasets and every dataset with stored results, all models and both
    variants, looked up in the store only; so a command that runs part of the matrix keeps the rest in the report."""
    scope = argparse.Namespace(**vars(args))
    stored = [e["dataset"] for e in store.entries() if e.get("kind") in ("news-run", "news-random")]
    scope.datasets = list(dict.fromkeys([*args.datasets, *stored]))
    scope.models, scope.variants, scope.report_only = list(MODELS), ["plain", "popk"], True
    return scope


def stored_quality(scope: argparse.Namespace, store: ResultStore, failed: dict[str, list[dict]]) -> dict[str, dict]:
    """Per dataset of the report: its stored runs, random reference and POPK coverage, and this command's failures."""
    return {
        dataset: {
            "runs": quality_runs(scope, store, dataset)[0],
            "failed": failed.get(dataset, []),
            "random": random_reference(scope, store, dataset),
            "coverage": popk_coverage(scope, store, dataset),
        }
        for dataset in scope.datasets
    }


def quality(args, argv: list[str]) -> int:
    store = ResultStore(Path(args.output).with_suffix(".jsonl"))
    scope = report_scope(args, store)
    for dataset in scope.datasets:  # converted before any key is computed
        prepare(args, dataset)
    failed: dict[str, list[dict]] = {}
    for dataset in args.datasets:
        coverage = popk_coverage(args, store, dataset)
        failed[dataset] = quality_runs(without_inert_popk(args, dataset, coverage), store, dataset)[1]
        random_reference(args, store, dataset)
        write_quality_report(scope, stored_quality(scope, store, failed), command_line(argv))
    return 1 if any(failed.values()) else 0


def popk_adds_nothing(coverage: dict | None) -> bool:
    """True when no training sample got a POPK item (a dataset without times has no earlier bucket)."""
    return coverage is not None and coverage["share_with_any"] == 0


def without_inert_popk(args, dataset: str, coverage: dict | None) -> argparse.Namespace:
    """``args`` without the popk variant where POPK adds nothing: its runs would repeat the plain ones
    (hours of CPU for a copy of the plain rows); the report says why they are missing."""
    if "popk" not in args.variants or not popk_adds_nothing(coverage):
        return args
    print(f"[news] {dataset}: POPK adds no item to any training sample; its +POPK runs are skipped", flush=True)
    return argparse.Namespace(**{**vars(args), "variants": [v for v in args.variants if v != "popk"]})


# ----------------------------------------------------------------------------- speed
def counted(loader, limit: int, seen: list[tuple[int, int]]):
    """The loader's batches (the first ``limit`` when > 0), recording (rows, real candidates) of each."""
    from recbole_llm.news.data import CANDIDATE_MASK

    for batch in itertools.islice(loader, limit) if limit else loader:
        seen.append((len(batch), int(batch[CANDIDATE_MASK].sum())))
        yield batch


def clocks() -> tuple[float, float]:
    """(wall, CPU time of this process): on a busy machine the CPU time is the steadier figure."""
    return time.perf_counter(), time.process_time()


def timed_pass(trainer, loader, limit: int, train: bool) -> dict[str, float]:
    """One training pass (RecBole's ``_train_epoch``) or one evaluation, timed: rows, candidates, seconds."""
    seen: list[tuple[int, int]] = []
    wall, cpu = clocks()
    if train:
        trainer._train_epoch(counted(loader, limit, seen), 1)
    else:
        trainer.evaluate(counted(loader, limit, seen), load_best_model=False)
    wall_end, cpu_end = clocks()
    return {
        "rows": sum(r for r, _ in seen),
        "candidates": sum(c for _, c in seen),
        "batches": len(seen),
        "wall_s": wall_end - wall,
        "cpu_s": cpu_end - cpu,
    }


def measure_speed(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: ``warmup`` untimed batches, then a timed training pass and a timed test evaluation."""
    import torch

    from recbole_llm.config import Config
    from recbole_llm.metrics import register_metrics
    from recbole_llm.quick_start import build

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    register_metrics()
    wall, _ = clocks()
    config = Config(spec["model"], spec["dataset"], config_dict=spec["config"])
    _, train, _, test, _, trainer = build(config)  # title vectors come from the text cache here
    setup_s = time.perf_counter() - wall
    trainer._train_epoch(counted(train, spec["warmup"], []), 0)
    fit = timed_pass(trainer, train, spec["max_batches"], train=True)
    scored = timed_pass(trainer, test, spec["max_eval_batches"], train=False)
    per_impression = train.sample_size / max(len(train.table), 1)
    return {
        "setup_s": setup_s,
        "threads": torch.get_num_threads(),
        "train_batch_size": int(config["train_batch_size"]),
        "eval_batch_size": int(config["eval_batch_size"]),
        "samples_per_impression": per_impression,
        "train": fit,
        "eval": scored,
        "samples_per_s": fit["rows"] / fit["wall_s"],
        "samples_per_cpu_s": fit["rows"] / fit["cpu_s"],
        "train_impressions_per_s": fit["rows"] / fit["wall_s"] / per_impression,
        "eval_impressions_per_s": scored["rows"] / scored["wall_s"],
        "eval_impressions_per_cpu_s": scored["rows"] / scored["cpu_s"],
        "eval_candidates_per_s": scored["candidates"] / scored["wall_s"],
    }


def speed_entries(args, store: ResultStore) -> tuple[list[dict], list[str]]:
    """(stored speed entries of this configuration, failures of this invocation)."""
    settings = {**base_settings(args), "use_gpu": False, "title_encoder": "plm_pooled_frozen", "seed": args.seeds[0]}
    entries, failures = [], []
    for dataset in args.datasets:
        prepare(args, dataset)
        for label, model, overrides in variants(args):
            config = {**settings, **overrides}
            payload = {
                "dataset": dataset,
                "label": label,
                "config": stable_config(model, dataset, config),
                "batches": [args.warmup, args.max_batches, args.max_eval_batches],
                "threads": args.threads,
                "machine": machine_description(),
            }
            key = content_key("news-speed", model, payload)
            if key not in store and not args.report_only:
                print(f"[news] timing {label} on {dataset} ...", flush=True)
                spec = {
                    "model": model,
                    "dataset": dataset,
                    "config": config,
                    "threads": args.threads,
                    "warmup": args.warmup,
                    "max_batches": args.max_batches,
                    "max_eval_batches": args.max_eval_batches,
                }
                outcome = run_in_child(measure_speed, spec)
                if not outcome.ok:
                    failures.append(f"{label} on {dataset}: {outcome.error.strip().splitlines()[0]}")
                    continue
                store.add({"kind": "news-speed", "key": key, "dataset": dataset, "model": label, **outcome.result})
            if key in store:
                entries.append(store.get(key))
    return entries, failures


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def mind_small_times(entry: dict, cpu: bool) -> tuple[float, float, float]:
    """Seconds of (a pass over MINDsmall_train, one mind-small epoch with its validation, the test) at the
    measured wall-clock or CPU-time rates."""
    samples = entry["samples_per_cpu_s"] if cpu else entry["samples_per_s"]
    train_rate = samples / entry["samples_per_impression"]
    eval_rate = entry["eval_impressions_per_cpu_s"] if cpu else entry["eval_impressions_per_s"]
    train_split = MIND_SMALL_TRAIN_IMPRESSIONS * MIND_SMALL_TRAIN_SHARE
    valid_split = MIND_SMALL_TRAIN_IMPRESSIONS - train_split
    return (
        MIND_SMALL_TRAIN_IMPRESSIONS / train_rate,
        train_split / train_rate + valid_split / eval_rate,
        MIND_SMALL_DEV_IMPRESSIONS / eval_rate,
    )


def estimate_lines(entries: list[dict]) -> list[str]:
    """One MIND-small epoch from the throughput measured on MIND rows (the sample of MINDsmall_train)."""
    train_split = MIND_SMALL_TRAIN_IMPRESSIONS * MIND_SMALL_TRAIN_SHARE
    lines = [
        "## Estimated time of one MIND-small epoch",
        "",
        "From the throughput on the MIND rows above (mind-small-sample: real MINDsmall_train impressions, so "
        "MIND's history lengths, impression sizes and clicks per impression). MINDsmall_train has "
        f"{MIND_SMALL_TRAIN_IMPRESSIONS:,} impressions, MINDsmall_dev {MIND_SMALL_DEV_IMPRESSIONS:,}; "
        f"`--dataset=mind-small` trains on the ~{train_split:,.0f} before 2019-11-14 and validates on the "
        f"~{MIND_SMALL_TRAIN_IMPRESSIONS - train_split:,.0f} of that day after every epoch. Each cell: at the "
        "wall-clock rate measured here / at the CPU-time rate (the wall time on an otherwise idle machine with "
        "the same number of threads, when they are 1; with more threads it adds their CPU time up).",
        "",
        "| model | threads | a pass over all of MINDsmall_train | one mind-small epoch (train + validation) "
        "| test (MINDsmall_dev) |",
        "|---|---|---|---|---|",
    ]
    for entry in entries:
        if entry["dataset"].startswith("mind"):
            wall, cpu = mind_small_times(entry, cpu=False), mind_small_times(entry, cpu=True)
            cells = [f"{hours(w)} / {hours(c)}" for w, c in zip(wall, cpu)]
            lines.append(f"| {entry['model']} | {entry['threads']} | " + " | ".join(cells) + " |")
    return lines + [""]


def write_speed_report(args, entries: list[dict], failures: list[str], command: str) -> None:
    lines = [
        "# News models: training and evaluation throughput on the CPU (frozen title vectors)",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine_line(args)}",
        f"- Seed {args.seeds[0]}; each model's yaml defaults (batch sizes below); titles as frozen MiniLM "
        "sentence vectors (`title_encoder: plm_pooled_frozen`), read from the text cache before the clock starts.",
        f"- Training: {args.warmup} untimed warm-up batches, then "
        + (f"{args.max_batches} timed batches" if args.max_batches else "one timed pass over the training split")
        + " through RecBole's `_train_epoch` (loader, forward, loss, backward, Adam step). A training sample is "
        "one click + `npratio` in-impression negatives; impressions/s = samples/s / samples per training impression.",
        "- Evaluation: "
        + (f"{args.max_eval_batches} batches" if args.max_eval_batches else "the whole test split")
        + " scored (every candidate of every impression), metrics computed.",
        "- Rates per wall-clock second (per CPU second of the process in brackets). Each model in its own fresh "
        "process, one at a time.",
        "",
        "| dataset | model | batch (train/eval) | threads | train samples/s | train impressions/s "
        "| eval impressions/s | eval candidates/s | setup s | timed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        lines.append(
            f"| {e['dataset']} | {e['model']} | {e['train_batch_size']}/{e['eval_batch_size']} | {e['threads']} | "
            f"{e['samples_per_s']:.1f} ({e['samples_per_cpu_s']:.1f}) | {e['train_impressions_per_s']:.1f} | "
            f"{e['eval_impressions_per_s']:.1f} ({e['eval_impressions_per_cpu_s']:.1f}) | "
            f"{e['eval_candidates_per_s']:.0f} | {e['setup_s']:.1f} | {e['train']['rows']:,} samples, "
            f"{e['eval']['rows']:,} impressions |"
        )
    lines += ["", *estimate_lines(entries), *(f"- failed: {f}" for f in failures)]
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"[news] wrote {output}", flush=True)


def speed(args, argv: list[str]) -> int:
    store = ResultStore(Path(args.output).with_suffix(".jsonl"))
    entries, failures = speed_entries(args, store)
    write_speed_report(args, entries, failures, command_line(argv))
    return 1 if failures else 0


# ----------------------------------------------------------------------------- command line
def parse_args(argv: list[str]):
    from recbole_llm.compare import parse_seeds

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("mode", choices=("quality", "speed"))
    parser.add_argument("--datasets", default="mind-small-sample,dkn-bing-news")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--variants", default=None, help="plain,popk (quality default); plain (speed default)")
    parser.add_argument("--seeds", default="3", help="a count (2020, 2021, ...) or a comma list")
    parser.add_argument("--epochs", type=int, default=30, help="epoch cap (early stopping ends most runs before)")
    parser.add_argument("--stopping_step", type=int, default=3, help="validations without improvement before stopping")
    parser.add_argument("--popk", type=int, default=2, help="POPK items per training sample in the +POPK variants")
    parser.add_argument("--max_batches", type=int, default=0, help="speed: timed training batches (0 = a full pass)")
    parser.add_argument("--max_eval_batches", type=int, default=0, help="speed: timed test batches (0 = all)")
    parser.add_argument("--warmup", type=int, default=2, help="speed: untimed training batches first")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads of every run (0 = torch's default; 1 on a shared machine)"
    )
    parser.add_argument("--gpu", action="store_true", help="quality: train on the GPU")
    parser.add_argument("--data_path", default=None, help="RecBole data_path (default: dataset/ here)")
    parser.add_argument("--download_raw", action="store_true", help="download missing raw files (mind-small)")
    parser.add_argument("--workdir", default="saved/news_benchmark", help="checkpoints")
    parser.add_argument("--output", default=None, help="default benchmarks/results/news.md or news_speed.md")
    parser.add_argument("--report_only", action="store_true", help="write the report from the store, run nothing")
    args = parser.parse_args(argv)
    args.datasets = args.datasets.split(",")
    args.models = args.models.split(",")
    args.variants = (args.variants or ("plain,popk" if args.mode == "quality" else "plain")).split(",")
    unknown = sorted(set(args.variants) - {"plain", "popk"})
    if unknown:
        parser.error(f"--variants takes plain and/or popk, not {', '.join(unknown)}")
    args.seeds = parse_seeds(args.seeds)
    default = "news.md" if args.mode == "quality" else "news_speed.md"
    args.output = args.output or str(RESULTS / default)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    os.environ.setdefault("RECBOLE_LLM_RAW_DATA", str(PROJECT.parent / "shared" / "datasets"))  # inherited by runs
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:  # the runs' fresh processes read it when torch starts
        import torch

        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)
    return quality(args, argv) if args.mode == "quality" else speed(args, argv)


if __name__ == "__main__":
    sys.exit(main())
