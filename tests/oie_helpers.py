"""Shared helpers of the OIE / BSARec tests: a tiny literal-id slice of the S3-Rec LastFM file.

The slice is cut from ``<raw_root>/seqrec/LastFM.txt``: the committed mini file (``mini_raw``, 120 users)
or the full one. Tests that run RecBole in a module-scoped folder use :func:`contextlib.chdir`, which
restores the working directory when the block ends.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch

TINY = "lastfm-tiny"


def write_lastfm_slice(raw_root: Path, folder: Path, n_users: int = 100) -> Path:
    """First users of ``raw_root/seqrec/LastFM.txt`` as RecBole atomic files.

    The file numbers items by first appearance while walking users in order, so the first users'
    items are exactly 1..M (whole users are kept: cutting sequences would leave gaps in the ids).
    """
    lines = (raw_root / "seqrec" / "LastFM.txt").read_text().splitlines()
    if len(lines) < n_users:
        raise ValueError(f"{raw_root}/seqrec/LastFM.txt has {len(lines)} users, fewer than the {n_users} asked for")
    lines = lines[:n_users]
    target = folder / TINY
    target.mkdir(parents=True, exist_ok=True)
    seen: set[int] = set()
    rows = ["user_id:token\titem_id:token\ttimestamp:float"]
    for line in lines:
        user, *items = line.split()
        for position, item in enumerate(items):
            seen.add(int(item))
            rows.append(f"{user}\t{item}\t{position}")
    # keep the slice literal: ids seen must be exactly 1..M
    assert seen == set(range(1, max(seen) + 1)), "slice is not contiguous in ids"
    (target / f"{TINY}.inter").write_text("\n".join(rows) + "\n")
    return folder


def tiny_config(data_path: Path, **overrides) -> dict:
    config = {
        "data_path": str(data_path),
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "MAX_ITEM_LIST_LENGTH": 10,
        "hidden_size": 16,
        "inner_size": 32,
        "train_neg_sample_args": None,
        "epochs": 1,
        "train_batch_size": 512,
        "eval_batch_size": 4096,
        "show_progress": False,
        "state": "ERROR",
        "use_gpu": False,
        "seed": 2020,
        "reproducibility": True,
    }
    config.update(overrides)
    return config


@contextmanager
def single_thread():
    """Torch with one thread while the block runs (much faster on a shared, oversubscribed CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
