"""Dataset check: size, density, activity, and whether the evaluation split can be trusted.

``run_recbole_llm.py inspect --dataset=<name> [--key=value ...]`` prints users, items,
interactions, density, interactions per user and per item (mean / median / min / max), and for
the split the configuration chooses: the share of validation and test targets that never occur in
training, the share taken by the single most frequent target and, for sequential models, the share
of targets whose id is the previous item's id + 1 (a numbering that leaks order). A warning line
follows when one of the first two passes ``--warn_threshold`` (default 0.5). Why: on a small file
with a time split, 96% of test targets can be items with no training interaction and one item can
be 95% of validation targets; metrics then swing between seeds and say nothing about the model.

:func:`dataset_summary` is the one- or two-line version logged at every run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from recbole.config import Config
    from recbole.data.dataloader import AbstractDataLoader
    from recbole.data.dataset import Dataset

DEFAULT_WARN_THRESHOLD = 0.5
INSPECT_MODEL = "BPR"  # any general model: only the dataset and the split are built


def _column(dataset, field_name: str) -> np.ndarray:
    values = dataset.inter_feat[field_name]
    return values.cpu().numpy() if hasattr(values, "cpu") else np.asarray(values)


def _spread(counts: np.ndarray) -> dict[str, float]:
    if counts.size == 0:
        return {"mean": 0.0, "median": 0.0, "min": 0, "max": 0}
    return {
        "mean": float(counts.mean()),
        "median": float(np.median(counts)),
        "min": int(counts.min()),
        "max": int(counts.max()),
    }


def dataset_statistics(dataset: Dataset) -> dict[str, Any]:
    """Users, items, interactions, density and per-user / per-item interaction counts (padding id 0 excluded)."""
    users, items = dataset.user_num - 1, dataset.item_num - 1
    interactions = len(dataset.inter_feat)
    per_user = np.bincount(_column(dataset, dataset.uid_field).astype(np.int64), minlength=dataset.user_num)[1:]
    per_item = np.bincount(_column(dataset, dataset.iid_field).astype(np.int64), minlength=dataset.item_num)[1:]
    return {
        "users": users,
        "items": items,
        "interactions": interactions,
        "density": interactions / (users * items) if users and items else 0.0,
        "per_user": _spread(per_user[per_user > 0]),
        "per_item": _spread(per_item[per_item > 0]),
        "items_without_interactions": int((per_item == 0).sum()),
    }


def _as_dataset(split):
    """A RecBole Dataset from a dataset or a dataloader."""
    return split if hasattr(split, "inter_feat") else getattr(split, "_dataset", getattr(split, "dataset", split))


def _training_items(config, train) -> np.ndarray:
    """Item ids that occur in training, as targets or (sequential data) inside a history."""
    seen = [_column(train, train.iid_field)]
    list_field = f"{train.iid_field}{config['LIST_SUFFIX'] or '_list'}"
    if list_field in train.inter_feat.columns:
        seen.append(_column(train, list_field).reshape(-1))
    ids = np.unique(np.concatenate(seen).astype(np.int64))
    return ids[ids > 0]


def consecutive_share(previous: np.ndarray, targets: np.ndarray) -> float:
    """Share of targets whose item id is the previous item's id + 1 (0.0 when there are none).

    Why: files that number items by first appearance while walking users in order (the S3-Rec files)
    give an item that follows another the next id far more often than chance (~1/N), and anything
    that imprints id order on the item table (OIE pre-training) can score from the numbering alone.
    """
    previous, targets = np.asarray(previous, dtype=np.int64), np.asarray(targets, dtype=np.int64)
    if previous.shape != targets.shape:
        raise ValueError(f"previous items {previous.shape} and targets {targets.shape} differ in shape.")
    return float((targets == previous + 1).mean()) if targets.size else 0.0


def consecutive_target_share(config: Config, split: Dataset | AbstractDataLoader) -> float | None:
    """On a sequential split (RecBole's item history field): :func:`consecutive_share` of its targets.

    RecBole's internal ids (the rows of the item table), the previous item being the last of each
    target's history; None for a split without histories (general models).
    """
    split = _as_dataset(split)
    list_field = f"{split.iid_field}{config['LIST_SUFFIX'] or '_list'}"
    length_field = config["ITEM_LIST_LENGTH_FIELD"] or "item_length"
    columns = split.inter_feat.columns
    if list_field not in columns or length_field not in columns:
        return None
    histories = _column(split, list_field).astype(np.int64)
    lengths = _column(split, length_field).astype(np.int64)
    if histories.shape[0] == 0:
        return 0.0
    previous = histories[np.arange(len(lengths)), np.clip(lengths - 1, 0, None)]
    return consecutive_share(np.where(lengths > 0, previous, -1), _column(split, split.iid_field))


def split_statistics(config: Config, built_splits: Sequence[Any]) -> dict[str, dict[str, float]]:
    """Per evaluation split: targets, share never seen in training, share of the most frequent target,
    and on sequential splits the share of targets numbered right after the previous item."""
    train, *evaluated = (_as_dataset(s) for s in built_splits)
    in_training = _training_items(config, train)
    out: dict[str, dict[str, float]] = {"train": {"rows": len(train.inter_feat)}}
    for name, split in zip(("valid", "test"), evaluated):
        targets = _column(split, split.iid_field).astype(np.int64)
        if targets.size == 0:
            out[name] = {"targets": 0, "unseen_share": 0.0, "top_target_share": 0.0}
            continue
        counts = np.bincount(targets)
        out[name] = {
            "targets": int(targets.size),
            "unseen_share": float((~np.isin(targets, in_training)).mean()),
            "top_target_share": float(counts.max() / targets.size),
            "top_target": str(split.id2token(split.iid_field, int(counts.argmax()))),
        }
        share = consecutive_target_share(config, split)
        if share is not None:
            out[name]["consecutive_share"] = share
    return out


def split_warnings(splits: dict[str, dict[str, float]], threshold: float = DEFAULT_WARN_THRESHOLD) -> list[str]:
    """One line per split share above ``threshold``."""
    lines = []
    for name in ("valid", "test"):
        stats = splits.get(name)
        if not stats or not stats["targets"]:
            continue
        if stats["unseen_share"] > threshold:
            lines.append(
                f"WARNING: {stats['unseen_share']:.1%} of {name} targets never occur in training "
                f"(threshold {threshold:.0%}): the model cannot rank them from interactions; metrics will "
                "swing between seeds"
            )
        if stats["top_target_share"] > threshold:
            lines.append(
                f"WARNING: one item ({stats['top_target']}) is {stats['top_target_share']:.1%} of {name} "
                f"targets (threshold {threshold:.0%}): metrics mostly measure that item's rank"
            )
    return lines


def dataset_summary(
    config: Config, dataset: Dataset, built_splits: Sequence[Any], threshold: float = DEFAULT_WARN_THRESHOLD
) -> str:
    """One line (two with a warning) for the run log: size, density, and the split's trust numbers."""
    stats = dataset_statistics(dataset)
    splits = split_statistics(config, built_splits)
    line = (
        f"{config['dataset']}: {stats['users']:,} users, {stats['items']:,} items, "
        f"{stats['interactions']:,} interactions (density {stats['density']:.2%})"
    )
    for name in ("valid", "test"):
        if name in splits and splits[name]["targets"]:
            line += (
                f"; {name} targets unseen in training {splits[name]['unseen_share']:.1%}, "
                f"top target {splits[name]['top_target_share']:.1%}"
            )
            if "consecutive_share" in splits[name]:
                line += f", previous item's id + 1 {splits[name]['consecutive_share']:.1%}"
    warnings = split_warnings(splits, threshold)
    return line + (f"\n{'; '.join(warnings)}" if warnings else "")


def format_report(config: Config, stats: dict[str, Any], splits: dict[str, dict[str, float]], threshold: float) -> str:
    """The full ``inspect`` text."""
    size = (
        f"  users {stats['users']:,}, items {stats['items']:,}, interactions {stats['interactions']:,}, "
        f"density {stats['density']:.4%}"
    )
    lines = [f"Dataset {config['dataset']} ({config['data_path']})", size]
    for who in ("user", "item"):
        spread = stats[f"per_{who}"]
        lines.append(
            f"  interactions per {who}: mean {spread['mean']:.2f}, median {spread['median']:g}, "
            f"min {spread['min']}, max {spread['max']}"
        )
    if stats["items_without_interactions"]:
        lines.append(f"  items without interactions (only in the item file): {stats['items_without_interactions']:,}")
    lines.append(f"Split {config['eval_args']}: train {splits['train']['rows']:,} rows")
    for name in ("valid", "test"):
        if name in splits:
            s = splits[name]
            lines.append(
                f"  {name}: {s['targets']:,} targets; never seen in training {s['unseen_share']:.1%}; "
                f"most frequent target {s.get('top_target', '-')} takes {s['top_target_share']:.1%}"
                + (f"; id = previous item's id + 1: {s['consecutive_share']:.1%}" if "consecutive_share" in s else "")
            )
    return "\n".join(lines + split_warnings(splits, threshold))


def _parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="run_recbole_llm.py inspect",
        allow_abbrev=False,
        description="Check a dataset and its evaluation split before training.",
    )
    parser.add_argument("--dataset", required=True, help="dataset name (folder under data_path)")
    parser.add_argument("--model", default=INSPECT_MODEL, help="model whose split settings to use (default BPR)")
    parser.add_argument("--config_files", default="", help="comma-separated yaml files (as for a run)")
    parser.add_argument(
        "--warn_threshold",
        type=float,
        default=DEFAULT_WARN_THRESHOLD,
        help="warn when the unseen or top-target share of a split passes this (default 0.5)",
    )
    return parser.parse_known_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Print the dataset check; exit 0, or 2 with one stderr line when the dataset cannot be built."""
    from recbole_llm.config import Config
    from recbole_llm.data import DatasetNotFoundError, create_dataset, data_preparation

    args, overrides = _parse(sys.argv[1:] if argv is None else argv)
    files = [f for f in args.config_files.split(",") if f]
    try:
        config = Config(args.model, args.dataset, config_file_list=files or None, cmd_args=overrides)
        dataset = create_dataset(config)
        built = data_preparation(config, dataset)
    except (DatasetNotFoundError, KeyError, ValueError, FileNotFoundError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    print(format_report(config, dataset_statistics(dataset), split_statistics(config, built), args.warn_threshold))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
