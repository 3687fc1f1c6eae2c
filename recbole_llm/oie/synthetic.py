"""The synthetic ordered dataset of the OIE-inducing training (Putra et al., authors' code OIE-SRS).

Ids 1..N are cut into consecutive runs of ``run_length`` (each run is one user), then random
contiguous sub-runs of those runs are added until there are ``num_sequences`` sequences. Written
as a RecBole atomic ``.inter`` file whose rows list the runs first, so RecBole's first-appearance
remapping gives token k -> internal id k (checked after loading by :func:`check_literal_ids`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from recbole.data.dataset import Dataset


class OIEMappingError(ValueError):
    """The token -> id mapping is not literal, or differs between the synthetic and real datasets."""


def synthetic_sequences(
    n_items: int,
    num_sequences: int = 25000,
    run_length: int = 20,
    min_subrun: int = 3,
    max_subrun: int = 18,
    seed: int = 2020,
) -> list[np.ndarray]:
    """Runs ``[1..20], [21..40], ...`` covering 1..N, then seeded random contiguous sub-runs."""
    if n_items < 2:
        raise ValueError(f"Need at least 2 items for a synthetic ordered dataset, got {n_items}.")
    if not 2 <= min_subrun <= max_subrun:
        raise ValueError(f"Need 2 <= oie_min_subrun <= oie_max_subrun, got {min_subrun}, {max_subrun}.")
    runs = [np.arange(start, min(start + run_length, n_items + 1)) for start in range(1, n_items + 1, run_length)]
    if len(runs) > num_sequences:
        raise ValueError(f"oie_num_sequences={num_sequences} is fewer than the {len(runs)} runs covering 1..{n_items}.")
    rng = np.random.default_rng(seed)
    sequences = list(runs)
    usable = [run for run in runs if len(run) >= min_subrun]
    if not usable:
        raise ValueError(f"No run is at least {min_subrun} long (run_length={run_length}, N={n_items}).")
    while len(sequences) < num_sequences:
        run = usable[rng.integers(len(usable))]
        length = int(rng.integers(min_subrun, min(max_subrun, len(run)) + 1))
        start = int(rng.integers(0, len(run) - length + 1))
        sequences.append(run[start : start + length])
    return sequences


def write_atomic(sequences: list[np.ndarray], folder: str | Path, name: str) -> Path:
    """Write ``<folder>/<name>/<name>.inter`` (user_id, item_id, timestamp = position); atomic rename."""
    target_dir = Path(folder) / name
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{name}.inter"
    temporary = target.with_suffix(f".inter.tmp{os.getpid()}")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for user, sequence in enumerate(sequences, start=1):
            handle.writelines(f"{user}\t{item}\t{position}\n" for position, item in enumerate(sequence))
    os.replace(temporary, target)
    return target


def item_tokens(dataset: Dataset) -> list[str]:
    """The item token of each internal id (index 0 = padding)."""
    return [str(token) for token in dataset.field2id_token[dataset.iid_field]]


def check_literal_ids(tokens: list[str], what: str) -> None:
    """Raise unless token k has internal id k for every item (the benchmark files' literal ids)."""
    wrong = [(index, token) for index, token in enumerate(tokens) if index > 0 and token != str(index)]
    if wrong:
        examples = ", ".join(f"id {i} <- token {t!r}" for i, t in wrong[:5])
        raise OIEMappingError(
            f"{what}: item tokens are not literal ids (token k must have internal id k; {len(wrong)} differ, e.g. "
            f"{examples}). OIE transfer needs integer item ids 1..N numbered by first appearance, written in "
            f"that order (e.g. the S3-Rec files of lastfm-seq / beauty-seq)."
        )


def check_same_mapping(real_tokens: list[str], synthetic_tokens: list[str]) -> None:
    """Raise unless the real and synthetic datasets map every token to the same id."""
    check_literal_ids(real_tokens, "real dataset")
    check_literal_ids(synthetic_tokens, "synthetic dataset")
    if real_tokens != synthetic_tokens:
        raise OIEMappingError(
            f"Token -> id mappings differ: real dataset has {len(real_tokens) - 1} items, synthetic "
            f"{len(synthetic_tokens) - 1}; transferred item rows would be meaningless."
        )
