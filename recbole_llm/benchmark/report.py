"""Stage (c): ``<suite>.md`` / ``.csv`` / ``.png`` (test bars) / ``_curves.png`` (validation curves)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recbole_llm.benchmark.suite import Suite
from recbole_llm.compare import machine_description, metric_columns, summarise
from recbole_llm.compare.report import SIGNIFICANCE, paired_p_value, paired_scores

LOWER_IS_BETTER = ("rmse", "mae", "logloss", "averagepopularity", "giniindex")
#: Training epochs after which the variants table compares validation scores: the horizon of the earlier,
#: capped comparisons (3 to 5 epochs), so a gain seen there can be followed to the early-stopped checkpoint.
EARLY_EPOCHS = 5


def bigger_is_better(metric: str) -> bool:
    return not metric.lower().startswith(LOWER_IS_BETTER)


def flag_runs(runs: pd.DataFrame, suite: Suite) -> pd.Series:
    """Per run: 'best in first N epochs' when its checkpoint is that early, 'hit epoch cap' when it never stopped."""

    def flags(row: pd.Series) -> str:
        notes = []
        if pd.notna(row.get("best_epoch")) and row["best_epoch"] < suite.min_epochs:
            notes.append(f"best in first {suite.min_epochs} epochs")
        if row.get("epochs", 0) >= suite.epoch_cap_on(row.get("dataset"), row.get("model")):
            notes.append("hit epoch cap")
        return "; ".join(notes)

    return runs.apply(flags, axis=1) if len(runs) else pd.Series(dtype=str)


def strongest_baseline(runs: pd.DataFrame, suite: Suite) -> str | None:
    """The baseline with the best mean validation score (never a test number)."""
    column = f"valid_{suite.valid_metric}"
    baselines = [m.name for m in suite.models if m.baseline and m.name in set(runs["model"])]
    if not baselines or column not in runs:
        return None
    means = runs[runs["model"].isin(baselines)].groupby("model")[column].mean()
    return str(means.idxmax() if bigger_is_better(suite.valid_metric) else means.idxmin())


def _cell(row: pd.Series, metric: str, summary: pd.DataFrame, reference: str | None) -> str:
    text = f"{row[f'{metric}_mean']:.4f}" + (f" ± {row[f'{metric}_std']:.4f}" if row["n_seeds"] > 1 else "")
    p = row.get(f"{metric}_p", float("nan"))
    if reference and not pd.isna(p) and p < SIGNIFICANCE:
        text += (
            " ▲" if row[f"{metric}_mean"] > summary.loc[summary.model == reference, f"{metric}_mean"].item() else " ▼"
        )
    return text


def results_table(runs: pd.DataFrame, metrics: list[str], reference: str | None) -> list[str]:
    """One dataset's markdown table: mean ± std per metric, ▲/▼ against ``reference``, epochs, speed, flags."""
    summary = summarise(runs, metrics, reference)
    header = [
        "model",
        *metrics,
        "best epoch (mean, min-max)",
        "epochs run",
        "s/epoch",
        "× ref s/epoch",
        "peak MB",
        "flags",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in summary.iterrows():
        sub = runs[runs["model"] == row["model"]]
        best = sub["best_epoch"].dropna()
        epochs = f"{best.mean():.1f} ({best.min():.0f}-{best.max():.0f})" if len(best) else ""
        counts = pd.Series([f for text in sub["flags"] if text for f in text.split("; ")], dtype=str).value_counts()
        flags = "; ".join(f"{flag} ({n}/{len(sub)} runs)" for flag, n in sorted(counts.items()))
        cells = [str(row["model"]) + (" (strongest baseline)" if row["model"] == reference else "")]
        cells += [_cell(row, m, summary, reference) for m in metrics]
        cells += [
            epochs,
            f"{sub['epochs'].mean():.1f}",
            f"{row['epoch_time_s']:.2f}",
            "" if pd.isna(row.get("time_ratio")) else f"{row['time_ratio']:.2f}",
            f"{row['peak_memory_mb']:.0f}",
            f"⚠ {flags}" if flags else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def verdicts(runs: pd.DataFrame, suite: Suite, metric: str, reference: str | None) -> list[str]:
    """One line per non-baseline model: does it beat the strongest tuned baseline on ``metric``?"""
    if reference is None or metric not in runs:
        return []
    summary = summarise(runs, [metric], reference).set_index("model")
    base = summary.loc[reference, f"{metric}_mean"]
    lines = []
    for model in (m.name for m in suite.models if not m.baseline and m.name in summary.index):
        mean, p = summary.loc[model, f"{metric}_mean"], summary.loc[model, f"{metric}_p"]
        change = (mean - base) / base * 100 if base else float("nan")
        better = mean > base if bigger_is_better(metric) else mean < base
        verdict = (
            "beats it"
            if better and not pd.isna(p) and p < SIGNIFICANCE
            else (
                "not significantly different"
                if not pd.isna(p) and p >= SIGNIFICANCE
                else "does NOT beat it"
                if not better
                else "higher, but not tested (fewer than 2 paired seeds)"
            )
        )
        p_text = "n/a" if pd.isna(p) else f"{p:.3g}"
        shared = _shared_seed_change(runs, model, reference, metric)
        lines.append(
            f"- {model} vs {reference} on test {metric}: {change:+.1f}%{shared} (paired t-test p = {p_text}): "
            f"{verdict}."
        )
    return lines


def _shared_seed_change(runs: pd.DataFrame, model: str, reference: str, metric: str) -> str:
    """Part-way through a suite the two models may have run different seeds: then also give the change on the
    seeds both ran, because that is the difference the paired test judges (the means above use all seeds)."""
    sub, ref = (set(runs[runs["model"] == m].dropna(subset=[metric])["seed"]) for m in (model, reference))
    if sub == ref:
        return ""
    paired = paired_scores(runs, model, reference, metric)
    if paired.empty:
        return " over all seeds (no seed shared)"
    change = _change(paired[metric].mean(), paired[f"{metric}_ref"].mean())
    return f" over all seeds, {change} on the {len(paired)} shared seed{'s' * (len(paired) > 1)}"


def _change(value: float, base: float) -> str:
    return f"{(value - base) / base * 100:+.1f}%" if base and not pd.isna(value) and not pd.isna(base) else "n/a"


def early_valid_score(runs: pd.DataFrame, model: str, epochs: int = EARLY_EPOCHS) -> float:
    """Mean over seeds of the validation score after ``epochs`` training epochs (NaN where no run got there)."""
    scores = [s for h in runs[runs["model"] == model]["valid_history"] for e, s in _history(h) if e == epochs - 1]
    return float(np.mean(scores)) if scores else float("nan")


def _survival(variant: float, base: float, p: float, metric: str) -> str:
    if pd.isna(p):
        return "not tested (fewer than 2 paired seeds)"
    if p >= SIGNIFICANCE:
        return "no significant difference"
    better = variant > base if bigger_is_better(metric) else variant < base
    return "gain survives" if better else "significantly worse"


def variants_table(runs: pd.DataFrame, suite: Suite, metric: str) -> list[str]:
    """Each ``variant_of`` entry against its own base: early in training, and at the early-stopped checkpoint.

    Why: a variant can lead its base after a few epochs only because it starts nearer to where the base
    ends up; the claim that counts is the test score of the best-validation checkpoint after early stopping.
    """
    present = set(runs["model"]) if len(runs) else set()
    pairs = [(m.name, m.variant_of) for m in suite.models if m.variant_of and {m.name, m.variant_of} <= present]
    if not pairs or metric not in runs:
        return []
    lines = [
        f"Variants against their own base (validation {metric} after {EARLY_EPOCHS} epochs, mean over seeds; test "
        f"{metric} of the best-validation checkpoint after early stopping, paired t-test over seeds):",
        "",
        f"| variant | base | valid after {EARLY_EPOCHS} epochs: variant / base (change) | test after early stopping: "
        "variant / base (change, p) | best epoch: variant / base | after early stopping |",
        "|---|---|---|---|---|---|",
    ]
    for variant, base in pairs:
        early = early_valid_score(runs, variant), early_valid_score(runs, base)
        final = [runs.loc[runs["model"] == m, metric].mean() for m in (variant, base)]
        best = [runs.loc[runs["model"] == m, "best_epoch"].mean() for m in (variant, base)]
        p = paired_p_value(runs, variant, base, metric)
        p_text = "n/a" if pd.isna(p) else f"{p:.3g}"
        lines.append(
            f"| {variant} | {base} | {early[0]:.4f} / {early[1]:.4f} ({_change(*early)}) | {final[0]:.4f} / "
            f"{final[1]:.4f} ({_change(*final)}, p = {p_text}) | {best[0]:.1f} / {best[1]:.1f} | "
            f"{_survival(final[0], final[1], p, metric)} |"
        )
    return lines + [""]


def numbering_lines(runs: pd.DataFrame) -> list[str]:
    """Sequential data: the share of test targets whose item id is the previous item's id + 1, as the runs saw it."""
    shares = runs["test_consecutive_share"].dropna() if "test_consecutive_share" in runs else pd.Series(dtype=float)
    if not len(shares):
        return []
    low, high = shares.min(), shares.max()
    value = f"{low:.1%}" if np.isclose(low, high) else f"{low:.1%} to {high:.1%} (the runs' test splits differ)"
    return [
        f"Test targets whose item id is the previous item's id + 1: {value} (RecBole's test split, internal item "
        "ids; about 1 / number of items by chance). Where it is far above chance, the numbering carries order: a "
        "gain that vanishes when item ids are permuted (`oie_permute_ids`) comes from the numbering, not the method.",
        "",
    ]


def early_peak_counts(trials: list[dict[str, Any]], suite: Suite) -> dict[str, int]:
    """Trial set key -> its trials that early stopping ended with their best score before ``min_epochs``.

    ``min_epochs`` postpones such a stop, it does not discount the early peak, so a configuration still
    climbing back after an early dip is judged at the dip. Trials stored without ``best_epoch`` (before the
    ledger kept it) count when early stopping ended them exactly at ``min_epochs``: a lower bound.
    """
    counts: dict[str, int] = {}
    for trial in trials:
        early = trial.get("status") == "completed" and (
            trial["best_epoch"] < suite.min_epochs
            if trial.get("best_epoch") is not None
            else trial.get("epochs") == suite.min_epochs
        )
        counts[trial["set_key"]] = counts.get(trial["set_key"], 0) + int(early)
    return counts


def tuning_table(trial_sets: list[dict[str, Any]], early_peaks: dict[str, int] | None = None) -> list[str]:
    """One row per tuned model; ``early_peaks`` (:func:`early_peak_counts`) adds the trials stopped at an early peak
    ('n/a' for a set stored without its trials, as in stores older than the per-trial ledger)."""
    lines = [
        "| model | trials (budget / completed) | early-stopped, best before min_epochs | best validation score "
        "| tuned hyperparameters |",
        "|---|---|---|---|---|",
    ]
    for entry in trial_sets:
        params = (
            ", ".join(f"{k}={_short(v)}" for k, v in sorted(entry["best_params"].items())) or "(not tuned: defaults)"
        )
        score = "" if entry.get("best_valid_score") is None else f"{entry['best_valid_score']:.4f}"
        peaks = "" if early_peaks is None else str(early_peaks.get(entry.get("key"), "n/a (trials not stored)"))
        lines.append(
            f"| {entry['model']} | {entry['budget']} / {entry.get('completed', 0)} | {peaks} | {score} | {params} |"
        )
    return lines


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def unfinished_models(
    suite: Suite,
    dataset: str,
    runs: pd.DataFrame,
    trial_sets: list[dict[str, Any]],
    searching: dict[tuple[str, str], int] | None = None,
) -> list[str]:
    """'NGCF (not tuned yet)', 'SGL (tuned, 2 of 5 seeds)' for each model of ``dataset`` short of its seeds.

    ``searching`` ((dataset, model) -> trials stored of its unfinished search, :func:`stored_results`) turns
    'not tuned yet' into 'tuning, 3 of 8 trials stored': searches on large data span days, and a report
    committed in between should say how far they got.
    """
    entry = next(d for d in suite.datasets if d.name == dataset)
    tuned = {t["model"] for t in trial_sets if t.get("dataset") == dataset}
    seeds_done = runs[runs["dataset"] == dataset].groupby("model").size() if len(runs) else pd.Series(dtype=int)
    missing = []
    for model in suite.models_on(entry):
        done = int(seeds_done.get(model.name, 0))
        stored = (searching or {}).get((dataset, model.name), 0)
        if model.name not in tuned and stored:
            missing.append(f"{model.name} (tuning, {stored} of {suite.trials} trials stored)")
        elif model.name not in tuned:
            missing.append(f"{model.name} (not tuned yet)")
        elif done < len(suite.seeds):
            missing.append(f"{model.name} (tuned, {done} of {len(suite.seeds)} seeds)")
    return missing


def status_line(
    suite: Suite,
    runs: pd.DataFrame,
    trial_sets: list[dict[str, Any]],
    searching: dict[tuple[str, str], int] | None = None,
) -> str:
    """Whether every table is final, so a report written part-way through a suite says so itself."""
    pending = {d.name: unfinished_models(suite, d.name, runs, trial_sets, searching) for d in suite.datasets}
    pending = {name: models for name, models in pending.items() if models}
    if not pending:
        return f"- Status: complete: every model on every dataset tuned and run with all {len(suite.seeds)} seeds."
    todo = "; ".join(f"{name}: {', '.join(models)}" for name, models in pending.items())
    return f"- Status: partial (rerunning the command resumes from the store); still to run: {todo}."


def dataset_section(
    suite: Suite,
    dataset: str,
    runs: pd.DataFrame,
    trial_sets: list[dict[str, Any]],
    early_peaks: dict[str, int] | None = None,
    searching: dict[tuple[str, str], int] | None = None,
) -> list[str]:
    """Everything a reader needs about one dataset: the results table, verdicts, variants and the tuning table."""
    lines = [f"## {dataset}", ""]
    if not len(runs):
        return lines + ["(no finished final run yet)", ""]
    missing = unfinished_models(suite, dataset, runs, trial_sets, searching)
    if missing:
        lines += [
            f"**Partial**: not finished yet: {', '.join(missing)}. The strongest baseline, the ▲/▼ marks and the "
            "verdicts below may change when they are.",
            "",
        ]
    metrics = metric_columns(runs)
    reference = strongest_baseline(runs, suite)
    lines += [
        (
            f"Strongest tuned baseline by validation {suite.valid_metric}: {reference or '(no baseline finished)'}; "
            f"▲/▼ = paired t-test over seeds against it, p < {SIGNIFICANCE}."
        ),
        "",
    ]
    lines += numbering_lines(runs)
    lines += results_table(runs, metrics, reference) + [""]
    lines += verdicts(runs, suite, suite.valid_metric, reference) + [""]
    lines += variants_table(runs, suite, suite.valid_metric)
    lines += ["Tuning (validation split only; the same trial budget for every model):", ""]
    lines += tuning_table([t for t in trial_sets if t["dataset"] == dataset], early_peaks) + [""]
    return lines


def runs_frame(entries: list[dict[str, Any]], suite: Suite) -> pd.DataFrame:
    runs = pd.DataFrame(entries)
    if len(runs):
        runs["flags"] = flag_runs(runs, suite)
    return runs


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bars(axis, sub: pd.DataFrame, metrics: list[str], models: list[str]) -> None:
    """Grouped bars: one group per metric, one bar per model, std over seeds as error bars."""
    width = 0.8 / max(len(models), 1)
    for i, model in enumerate(models):
        scores = sub[sub["model"] == model][metrics]
        axis.bar(
            np.arange(len(metrics)) + i * width - 0.4 + width / 2,
            scores.mean(),
            width,
            yerr=scores.std(ddof=1).fillna(0),
            capsize=3,
            label=model,
        )
    axis.set_xticks(np.arange(len(metrics)), metrics, fontsize=8, rotation=20, ha="right")


def split_by_scale(sub: pd.DataFrame, metrics: list[str]) -> tuple[list[str], list[str]]:
    """(metrics within [0, 1], the others): AveragePopularity (counts in the hundreds) on the accuracy axis
    would flatten every accuracy bar to nothing, so it gets a panel and an axis of its own."""
    unit = [m for m in metrics if sub[m].dropna().between(0, 1).all()]
    return unit, [m for m in metrics if m not in unit]


def bar_png(runs: pd.DataFrame, path: Path, title: str) -> None:
    """One row per dataset: test metrics in [0, 1] on the left, metrics on other scales on the right."""
    plt = _pyplot()
    datasets = list(dict.fromkeys(runs["dataset"]))
    splits = [split_by_scale(runs[runs["dataset"] == d], metric_columns(runs[runs["dataset"] == d])) for d in datasets]
    wide = max((len(other) for _, other in splits), default=0)
    ratios = [max(len(unit) for unit, _ in splits) or 1] + ([wide] if wide else [])
    figure, axes = plt.subplots(
        len(datasets),
        len(ratios),
        figsize=(10 + 1.2 * wide, 3.8 * len(datasets)),
        squeeze=False,
        gridspec_kw={"width_ratios": ratios},
    )
    for row, (dataset, (unit, other)) in enumerate(zip(datasets, splits)):
        sub = runs[runs["dataset"] == dataset]
        models = list(dict.fromkeys(sub["model"]))
        _bars(axes[row, 0], sub, unit, models)
        axes[row, 0].set_title(f"{dataset}: test, mean ± std over seeds", fontsize=10)
        axes[row, 0].legend(fontsize=7)
        if other:
            _bars(axes[row, 1], sub, other, models)
        elif wide:
            axes[row, 1].axis("off")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def curve_groups(suite: Suite, models: list[str]) -> list[tuple[str, list[str]]]:
    """Panels of the curves figure: every model in one, or, with ``variant_of``, each base with its variants."""
    bases = [m.variant_of for m in suite.models if m.variant_of]
    if not bases:
        return [("", models)]
    groups = [
        (base, [base] + [m.name for m in suite.models if m.variant_of == base and m.name in models])
        for base in dict.fromkeys(bases)
        if base in models
    ]
    grouped = {name for _, names in groups for name in names}
    others = [m for m in models if m not in grouped]
    return groups + ([("other models", others)] if others else [])


def _plot_curves(axis, sub: pd.DataFrame, models: list[str], suite: Suite, title: str) -> None:
    for model in models:
        points = [p for h in sub[sub["model"] == model]["valid_history"] for p in _history(h)]
        if points:
            curve = pd.DataFrame(points, columns=["epoch", "score"]).groupby("epoch")["score"].mean()
            axis.plot(curve.index, curve.values, marker="o", ms=2, label=model)
    axis.axvline(suite.min_epochs - 0.5, color="grey", ls="--", lw=1, label="min_epochs")
    if any(m.variant_of for m in suite.models):
        axis.axvline(EARLY_EPOCHS - 1, color="grey", ls=":", lw=1, label=f"after {EARLY_EPOCHS} epochs")
    axis.set_xlabel("epoch")
    axis.set_ylabel(f"validation {suite.valid_metric}")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=7)


def curves_png(runs: pd.DataFrame, path: Path, suite: Suite) -> None:
    """Validation score per epoch (mean over seeds): a row per dataset, a panel per group of :func:`curve_groups`."""
    plt = _pyplot()
    datasets = list(dict.fromkeys(runs["dataset"]))
    groups = curve_groups(suite, list(dict.fromkeys(runs["model"])))
    grid = (len(datasets), len(groups)) if len(groups) > 1 else (1, len(datasets))  # one group: datasets side by side
    figure, axes = plt.subplots(*grid, figsize=(5.5 * grid[1], 4 * grid[0]), squeeze=False)
    axes = axes.reshape(len(datasets), len(groups))
    for row, dataset in enumerate(datasets):
        sub = runs[runs["dataset"] == dataset]
        for column, (group, models) in enumerate(groups):
            _plot_curves(axes[row, column], sub, models, suite, _panel_title(dataset, group, suite))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _panel_title(dataset: str, group: str, suite: Suite) -> str:
    """Name a panel after its base model *and* its variants, so the title does not read as one model's curve."""
    if not group:
        return dataset
    if any(m.variant_of == group for m in suite.models):
        return f"{dataset}: {group} and its variants"
    return f"{dataset}: {group}"


def _history(value: Any) -> list:
    return json.loads(value) if isinstance(value, str) else list(value or [])


def _settings(values: dict[str, Any]) -> str:
    return ", ".join(f"`{k}: {v}`" for k, v in values.items()) or "none"


def _schedule(entries: list[dict[str, Any]]) -> str:
    """How the final runs shared the machine: their s/epoch means one-at-a-time speed only when run alone."""
    side_by_side = sorted({e["concurrent_jobs"] for e in entries if e.get("concurrent_jobs", 1) > 1})
    if not side_by_side:
        return "training runs one at a time, each in its own process"
    threads = sorted({e.get("threads") for e in entries if e.get("concurrent_jobs", 1) > 1} - {None})
    return (
        f"final runs {' or '.join(map(str, side_by_side))} at a time, each in its own process with "
        f"{' or '.join(map(str, threads))} torch thread(s) (`--jobs`): their s/epoch is not the one-at-a-time "
        "figure; tuning one search at a time"
    )


def header_lines(
    suite: Suite,
    command: str,
    trial_sets: list[dict[str, Any]],
    failed: list[dict[str, Any]],
    entries: list[dict[str, Any]],
    searching: dict[tuple[str, str], int] | None = None,
) -> list[str]:
    """The preamble: command, machine, protocol, budgets, wall times and status, so the numbers can be rerun."""
    protocol = {k: v for k, v in suite.protocol.items() if k != "config"}
    lines = [
        f"# Benchmark suite `{suite.name}`",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine_description()}; {_schedule(entries)}.",
        f"- Protocol: {_settings(protocol)}; shared settings: {_settings(suite.protocol.get('config', {}))}.",
        (
            f"- Tuning: {suite.trials} Ray Tune trials per model on the validation split "
            f"({suite.tuning or 'defaults'}); "
            f"final runs: the best configuration with seeds {', '.join(map(str, suite.seeds))}, early stopping on "
            f"validation {suite.valid_metric} (patience {suite.protocol['stopping_step']}, never before epoch "
            f"{suite.min_epochs}, cap {suite.caps_text()}); test metrics of the best-validation checkpoint."
        ),
        (
            f"- Time (wall): tuning {sum(t.get('seconds', 0) for t in trial_sets) / 60:.1f} min, "
            f"final runs {sum(e.get('wall_s') or 0 for e in entries) / 60:.1f} min."
        ),
        (
            "- Flags: `best in first N epochs` = the run's best validation score came before `min_epochs` (its "
            "checkpoint "
            "may be under-trained); `hit epoch cap` = early stopping never fired (not converged); tuning tables: "
            "`early-stopped, best before min_epochs` = trials that early stopping ended with their best validation "
            "score before `min_epochs` (`min_epochs` postpones that stop, it does not discount the early peak; a "
            "trial stored without its best epoch counts when it ended exactly at `min_epochs`, a lower bound)."
        ),
    ]
    lines.append(status_line(suite, pd.DataFrame(entries), trial_sets, searching))
    if suite.report.get("paper"):
        lines.append(f"- The paper's claim: {suite.report['paper']}")
    lines += [f"- Note: {note}" for note in suite.report.get("notes", [])]
    if failed:
        lines.append(
            "- Failed final runs (not stored; a rerun tries them again): "
            + "; ".join(
                f"{f['model']} on {f['dataset']} seed {f['seed']}: exit code {f['exit_code']}, {f['error']}"
                for f in failed
            )
        )
    return lines + [""]


def write_suite_report(
    suite: Suite,
    output_dir: Path,
    entries: list[dict[str, Any]],
    trial_sets: list[dict[str, Any]],
    failed: list[dict[str, Any]],
    command: str,
    trials: list[dict[str, Any]] | None = None,
    searching: dict[tuple[str, str], int] | None = None,
) -> Path:
    """Write ``<suite>.md``, ``.csv``, ``.png`` and ``_curves.png`` from the stored runs of this configuration;
    ``trials`` (the stored tuning trials) add to each tuning table the trials ended at an early peak;
    ``searching`` counts the trials of searches not finished (:func:`unfinished_models`)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    runs = runs_frame(entries, suite)
    lines = header_lines(suite, command, trial_sets, failed, entries, searching)
    peaks = None if trials is None else early_peak_counts(trials, suite)
    for dataset in (d.name for d in suite.datasets):
        sub = runs[runs["dataset"] == dataset] if len(runs) else runs
        lines += dataset_section(suite, dataset, sub, trial_sets, peaks, searching)
    stem = output_dir / suite.name
    if len(runs):
        table = runs.drop(columns=["valid_history", "oie_history"], errors="ignore").copy()
        table["params"] = table["params"].map(lambda p: json.dumps(p, sort_keys=True))
        table.to_csv(stem.with_suffix(".csv"), index=False)
        bar_png(runs, stem.with_suffix(".png"), f"suite {suite.name}")
        curves_png(runs, output_dir / f"{suite.name}_curves.png", suite)
        lines += [f"![test metrics]({suite.name}.png)", "", f"![validation curves]({suite.name}_curves.png)", ""]
    stem.with_suffix(".md").write_text("\n".join(lines), encoding="utf-8")
    return stem.with_suffix(".md")
