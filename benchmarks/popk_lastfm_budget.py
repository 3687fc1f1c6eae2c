"""Budget checks for the lastfm part of benchmarks/results/popk_early_training.md (issue #6).

1. LightGCN with uniform k=1 negatives, 100 epochs without early stopping (with stopping_step 5 it
   stopped at epoch 7, far from converged), seeds 2020-2022;
2. BPR with uniform k=1, uniform k=5 and the chosen POPK setting, 300 epochs with early stopping 10,
   seed 2020: does the 100-epoch ranking survive a budget that lets uniform k=1 converge?

    OMP_NUM_THREADS=1 python benchmarks/popk_lastfm_budget.py --output=benchmarks/results/popk_extra_lastfm.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import popk as bench  # noqa: E402

SHOWN = ("model", "seed", "ndcg@10", "recall@10", "mrr@10", "averagepopularity@10", "epochs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="popk_extra_lastfm.json")
    args = parser.parse_args(argv)
    records = []

    def record(model: str, label: str, seed: int, config: dict) -> None:
        result = bench.run(model, "lastfm", config)
        result.update(model=label, seed=seed)
        records.append(result)
        print(json.dumps({k: result[k] for k in SHOWN}), flush=True)

    uniform1 = {"distribution": "uniform", "sample_num": 1}
    for seed in (2020, 2021, 2022):
        config = {**bench.base_config("lastfm", 100, 100), "seed": seed, "train_neg_sample_args": uniform1}
        record("LightGCN", "LightGCN uniform k=1, 100 epochs no early stop", seed, config)
    chosen = bench.popk_args(bench.DATASETS["lastfm"]["bucket"], 4, "ratio", "ptb")
    for negatives, name in (
        (uniform1, "uniform k=1"),
        ({"distribution": "uniform", "sample_num": 5}, "uniform k=5"),
        (chosen, "POPK(p=4,ratio,ptb)"),
    ):
        config = {**bench.base_config("lastfm", 300, 10), "seed": 2020, "train_neg_sample_args": negatives}
        record("BPR", f"BPR {name}, 300 epochs, early stop 10", 2020, config)
    Path(args.output).write_text(json.dumps(records, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
