"""Does P5Edit's rec arm personalise at a given budget? A cheap look before spending hours on every arm.

    python -m recbole_llm.editing.probe --dataset=ml-100k --epochs=1 --config-json='{"learning_rate": 1e-4}'

Takes the experiment's flags, trains only the rec arm of the first seed (2020) and evaluates it on VALIDATION
with the seen prompt: NDCG@10, Hit@10 and the distinct top-10 lists share (a prompt-blind model gives every
user one list). Results go to ``<--results-dir>/probes/<settings hash>/`` (committed, resumable like the
experiment's) and ``<--results-dir>/<dataset>/probes.md`` lists every probe of the dataset, so a budget or
learning rate is chosen on validation and the reason stays beside the results. Nothing reads the test split.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recbole_llm.editing.experiment import SeedRun, parse_args, settings_key

if TYPE_CHECKING:
    from collections.abc import Sequence

PROBE_SEED = 2020


def probe_row(results: dict) -> str:
    """One markdown row: the probe's settings, its validation figures and the rec arm's training seconds.

    The seconds read "n/a" for a state trained before its time was kept beside it: a row must not fail for that.
    """
    settings, valid = results["settings"], results["rec/valid/seen:0"]
    seconds = results.get("time/rec")
    return (
        f"| {settings['backbone']} | {settings['epochs']} | {settings['prefixes_per_user'] or 'all'} | "
        f"{settings['max_his']} | "
        f"{json.dumps(settings['config'], sort_keys=True)} | {np.mean(valid['ndcg@10']):.4f} | "
        f"{np.mean(valid['hit@10']):.4f} | {valid['distinct_lists']:.3f} | "
        f"{'n/a' if seconds is None else f'{seconds:.0f}'} |"
    )


def write_probe_table(results_dir: Path, dataset: str) -> Path:
    """``<results_dir>/<dataset>/probes.md`` from every finished probe of ``dataset``."""
    rows = []
    for path in sorted((results_dir / "probes").glob(f"*/{dataset}/seed{PROBE_SEED}.json")):
        results = json.loads(path.read_text())
        if "rec/valid/seen:0" in results:
            rows.append(probe_row(results))
    out = results_dir / dataset / "probes.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    header = [
        f"# P5Edit rec-arm probes on {dataset} (seed {PROBE_SEED}, validation, seen prompt)",
        "",
        "Command: `python -m recbole_llm.editing.probe` with the experiment's flags. distinct: share of users "
        "with their own top-10 set (1/users = one list for all: the prompt is ignored).",
        "",
        "| backbone | epochs | prefixes/user | history | config | NDCG@10 | Hit@10 | distinct | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    out.write_text("\n".join(header + rows) + "\n")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Train (or read back) the rec arm of seed 2020 under the given flags and score it on validation."""
    args = parse_args(argv)
    results_root = Path(args.results_dir)
    args.results_dir = str(results_root / "probes" / settings_key(args))
    run = SeedRun(args, PROBE_SEED)
    run.evaluate("rec", run.state("rec", run.train_rec), "valid", "seen:0")
    print(probe_row(run.results), flush=True)
    print(f"wrote {write_probe_table(results_root, args.dataset)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
