"""``benchmarks/results/editing.md`` from the experiment's per-seed result files.

Reads only the small committed files under ``--results-dir`` (``<dataset>/run.json``, ``<dataset>/seed<k>.json``),
never the trained states, so the report can be rebuilt on a machine that never trained.

Means and standard deviations over seeds of Hit/NDCG@5/10 per arm and prompt, the change against the
rec-only arm, a paired Wilcoxon signed-rank test of per-user NDCG@10 against rec-only (users of all
seeds pooled), the lambda chosen per seed, and the poster's and OpenP5's published figures beside ours.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

METRICS = ("hit@5", "hit@10", "ndcg@5", "ndcg@10")
ARMS = ("rec", "edit", "negation", "joint")
PROMPT_LABELS = {"seen:0": "seen", "unseen:0": "unseen"}
# Published figures (HR@5, HR@10, NDCG@5, NDCG@10): ../shared/specs/editing.md.
REFERENCE = """| source | dataset, prompt | hit@5 | hit@10 | ndcg@5 | ndcg@10 |
|---|---|---|---|---|---|
| OpenP5-S (t5-small, OpenP5_more_results.pdf Tables 1-2) | ML-100K seen | 0.0678 | 0.1208 | 0.0427 | 0.0595 |
| OpenP5-S | ML-100K unseen | 0.0689 | 0.1155 | 0.0430 | 0.0578 |
| poster, edited model (arithmetic task vector) | ML-100K unseen (u) | 0.0848 (+29.0% vs its 0.0657) | | | |
| poster, edited model | Taobao seen (s1) | 0.1835 (+0.9% vs its 0.1819) | | | |
"""


def load_seeds(results_dir: Path, dataset: str) -> dict[int, dict]:
    """Every stored seed of ``dataset`` (``<results_dir>/<dataset>/seed<k>.json``, finished or not) by seed."""
    seeds = {}
    for path in sorted((results_dir / dataset).glob("seed*.json")):
        seeds[int(path.stem[4:])] = json.loads(path.read_text())
    return seeds


def _arm_rows(seeds: dict[int, dict], prompt: str) -> list[str]:
    rows = []
    base = {m: np.mean([np.mean(r[f"rec/test/{prompt}"][m]) for r in seeds.values()]) for m in METRICS}
    for arm in ARMS:
        key = f"{arm}/test/{prompt}"
        if not all(key in r for r in seeds.values()):
            continue
        cells = []
        for metric in METRICS:
            values = [np.mean(r[key][metric]) for r in seeds.values()]
            change = f" ({100 * (np.mean(values) / base[metric] - 1):+.1f}%)" if arm != "rec" and base[metric] else ""
            cells.append(f"{np.mean(values):.4f} ± {np.std(values):.4f}{change}")
        cells.append(_distinct(seeds, key))
        rows.append(f"| {arm} | {PROMPT_LABELS[prompt]} | " + " | ".join(cells) + f" | {_paired(seeds, arm, prompt)} |")
    return rows


def _distinct(seeds: dict[int, dict], key: str) -> str:
    """Mean share of users with their own top-10 set (``evaluation.distinct_share``); n/a before it was stored."""
    shares = [r[key]["distinct_lists"] for r in seeds.values() if "distinct_lists" in r[key]]
    return f"{np.mean(shares):.3f}" if len(shares) == len(seeds) else "n/a"


def _paired(seeds: dict[int, dict], arm: str, prompt: str) -> str:
    """Wilcoxon signed-rank p of per-user NDCG@10, arm vs rec (users of every seed pooled)."""
    if arm == "rec":
        return ""
    ours = np.concatenate([r[f"{arm}/test/{prompt}"]["ndcg@10"] for r in seeds.values()])
    rec = np.concatenate([r[f"rec/test/{prompt}"]["ndcg@10"] for r in seeds.values()])
    if np.all(ours == rec):
        return "identical"
    return f"{wilcoxon(ours, rec, zero_method='zsplit').pvalue:.3g}"


def _dataset_section(dataset: str, run: dict, seeds: dict[int, dict]) -> list[str]:
    """Budget, lambda choice and the arms table of one dataset."""
    lines = [
        f"## {dataset}",
        "",
        f"Command: `python -m recbole_llm.editing.experiment --dataset={dataset} --seeds={run['seeds']} "
        f"--device={run['device']} --epochs={run['epochs']} --max-his={run['max_his']} "
        f"--prefixes-per-user={run['prefixes_per_user']} --beam-size={run['beam_size']} --backbone={run['backbone']} "
        f"--lambdas={run['lambdas']}"
        + (f" --config-json='{run['config_json']}'" if run.get("config_json", "{}") != "{}" else "")
        + "".join(f" --{flag.replace('_', '-')}={run[flag]}" for flag in ("results_dir", "out") if flag in run)
        + "`",
        "",
        f"Budget: backbone {run['backbone']}; {run['epochs']} epoch(s) on "
        + (f"each user's last {run['prefixes_per_user']}" if run["prefixes_per_user"] else "all")
        + " training prefixes, 1 prompt each (OpenP5: 20 epochs on all prefixes, "
        f"3 prompts each); history "
        f"{run['max_his']} items; beam {run['beam_size']}; arithmetic arm: as many steps as the rec arm; lambda "
        f"chosen on validation NDCG@10 (seen prompt); device {run['device']}; training seconds per seed and arm: "
        + "; ".join(
            f"{s}: " + ", ".join(f"{k[5:]} {v:.0f}" for k, v in r.items() if k.startswith("time/"))
            for s, r in seeds.items()
        )
        + f"; last invocation {run['minutes']:.1f} min.",
        "",
        "lambda*: " + ", ".join(f"seed {s}: {r.get('lambda')}" for s, r in seeds.items()),
        "",
        "Validation NDCG@10 (seen prompt) per lambda: "
        + "; ".join(
            f"seed {s}: "
            + ", ".join(
                f"{k.split('/')[0][5:]}={np.mean(v['ndcg@10']):.4f}"
                for k, v in r.items()
                if k.startswith("edit@") and k.endswith("/valid/seen:0")
            )
            for s, r in seeds.items()
        ),
        "",
        "Arithmetic exact-match accuracy (200 held-out questions, mean over seeds): "
        + ", ".join(
            f"{arm} {np.mean([r[f'arith_acc/{arm}'] for r in seeds.values()]):.3f}"
            for arm in ("arith", *ARMS)
            if seeds and all(f"arith_acc/{arm}" in r for r in seeds.values())
        ),
        "",
        "Test, mean ± std over seeds; change vs rec-only; p: paired Wilcoxon signed-rank on per-user NDCG@10 vs rec "
        "(users of all seeds pooled).",
        "",
        "distinct top-10 lists: the share of test users whose top-10 item set is their own (1 = all differ; "
        "1/users = one list for everybody, i.e. the model ignores its prompt and ranks by an item prior).",
        "",
        "| arm | prompt | hit@5 | hit@10 | ndcg@5 | ndcg@10 | distinct top-10 lists | p vs rec |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for prompt in PROMPT_LABELS:
        if seeds and all(f"rec/test/{prompt}" in r for r in seeds.values()):
            lines += _arm_rows(seeds, prompt)
    return lines + [""]


def write_report(results_dir: Path, out: Path) -> None:
    """Write the markdown report for every dataset with a ``<results_dir>/<dataset>/run.json``.

    Every dataset ever run is reported, not only the last invocation's, since the results files are committed.
    """
    lines = [
        "# Editing P5Edit by task arithmetic (issue #17)",
        "",
        "Arms: rec = theta_0 trained on next-item prompts; edit = rec + lambda* tau_arith (tau_arith = theta_arith - "
        "theta_0, theta_arith = theta_0 trained on successor / predecessor / small-sum questions over the item-number "
        "range); negation = rec - lambda* tau_arith (identical to rec when lambda* = 0); joint = theta_0 trained on "
        "next-item and arithmetic prompts mixed 1:1. Every vector is taken from the same saved theta_0 per seed.",
        "",
    ]
    for run_file in sorted(results_dir.glob("*/run.json")):
        run = json.loads(run_file.read_text())
        lines += _dataset_section(run_file.parent.name, run, load_seeds(results_dir, run_file.parent.name))
    lines += ["## Published figures", "", REFERENCE]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
