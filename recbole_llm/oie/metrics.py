"""OIE metrics of an item embedding table (Putra et al., "Ordered Item Embeddings in Sequential
Recommender Systems"; definitions from the authors' code ``refaldiputra/OIE-SRS``).

``Z`` = item rows in id order, padding row 0 and any mask row excluded; ``d`` = Euclidean distance.

- AAE (average adjacent distance) = mean_i d(z_i, z_{i+1}) / D_max, D_max = the largest pairwise
  distance in Z (exact). Lower = adjacent ids closer.
- SA (sequential alignment) = fraction of consecutive triples (i, i+1, i+2) where d(z_i, z_{i+2})
  is strictly the largest of the three distances. Higher = more ordered; 1/3 for random rows.
- Both are also reported relative to a seeded random Gaussian table of the same shape:
  ``(value - random) / random * 100``.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

__all__ = [
    "item_embedding_table",
    "max_pairwise_distance",
    "average_adjacent_distance",
    "sequential_alignment",
    "random_reference",
    "oie_metrics",
]


def item_embedding_table(model: nn.Module) -> torch.Tensor:
    """The real item rows ``[1, n_items)`` of a RecBole sequential model's ``item_embedding``.

    RecBole's ``n_items`` counts the padding id 0, so rows ``1 .. n_items - 1`` are the items and any
    extra row beyond (BERT4Rec's mask token at index ``n_items``) is excluded.
    """
    embedding = getattr(model, "item_embedding", None)
    if not isinstance(embedding, nn.Embedding):
        raise TypeError(f"{type(model).__name__} has no nn.Embedding 'item_embedding': OIE metrics need one.")
    return embedding.weight.detach()[1 : model.n_items]


def _as_matrix(z: torch.Tensor) -> torch.Tensor:
    if z.dim() != 2 or z.size(0) < 3:
        raise ValueError(f"OIE metrics need a [N >= 3, d] table, got shape {tuple(z.shape)}.")
    return z.detach().float()


def _farthest_from(points: torch.Tensor, anchor: int) -> tuple[int, float]:
    distances = (points - points[anchor]).norm(dim=1)
    index = int(distances.argmax())
    return index, float(distances[index])


def max_pairwise_distance(z: torch.Tensor, chunk_size: int = 2048, margin: float = 1e-4) -> float:
    """Exact largest Euclidean distance between two rows of ``z``, in chunks (never a loop over pairs).

    Brute force is N^2/2 distances (100k rows x 64 dims: 6.4e11 flops, about 20 s on 2 CPU cores),
    so pairs that provably cannot be the farthest are skipped, without approximation:

    1. A lower bound ``LB`` from a few farthest-point hops (each O(N d)).
    2. With ``r_i`` = distance of row i to the centroid, ``d(i, j) <= r_i + r_j``. Rows are sorted by
       decreasing ``r``; row i is compared only with rows j > i (each pair once) that have
       ``r_i + r_j > LB`` -- a prefix of the sorted order -- and the scan stops when no pair is left.
    3. Blocks use the ``|a|^2 + |b|^2 - 2ab`` matrix product (``torch.addmm``); bounds keep a relative
       ``margin`` against its float32 rounding, and the winning row is re-measured directly in float64
       against every row, so the value returned is a directly measured distance.
    """
    z = _as_matrix(z)
    centred = z - z.mean(0, keepdim=True)
    radius = centred.norm(dim=1)
    order = torch.argsort(radius, descending=True)
    centred, radius = centred[order].contiguous(), radius[order]
    squared = (centred * centred).sum(1)
    n = centred.size(0)

    best, best_row, anchor = 0.0, 0, 0
    for _ in range(3):  # farthest-point hops: a good lower bound to prune with
        far, distance = _farthest_from(centred, anchor)
        if distance > best:
            best, best_row = distance, anchor
        anchor = far
    ascending = radius.flip(0)  # for searchsorted
    for start in range(0, n - 1, chunk_size):
        threshold = best * (1 - margin)
        if float(radius[start] + radius[start + 1]) <= threshold:
            break  # every remaining pair has r_i + r_j <= LB
        # columns j with r_j > threshold - r_start: a prefix [0, stop) of the sorted order
        stop = n - int(torch.searchsorted(ascending, torch.tensor(threshold - float(radius[start])), right=True))
        stop = max(stop, start + 2)
        rows = centred[start : start + chunk_size]
        cols = centred[start:stop]
        if cols.size(0) == 0:
            continue
        block = torch.addmm(squared[start:stop].unsqueeze(0), rows, cols.t(), alpha=-2.0)
        row_best, _ = block.max(dim=1)
        row_best += squared[start : start + rows.size(0)]
        value, index = row_best.max(dim=0)
        if float(value) > best * best:
            best, best_row = float(value) ** 0.5, start + int(index)
    # Re-measure the winning row directly (float64 differences) against every row.
    anchor_row = centred[best_row].double()
    exact = 0.0
    for start in range(0, n, 65536):
        exact = max(exact, float((centred[start : start + 65536].double() - anchor_row).norm(dim=1).max()))
    return exact


def _adjacent(z: torch.Tensor, step: int) -> torch.Tensor:
    return (z[step:] - z[:-step]).norm(dim=1)


def average_adjacent_distance(z: torch.Tensor, d_max: float | None = None) -> float:
    """AAE: mean distance between rows i and i+1, divided by the largest pairwise distance."""
    z = _as_matrix(z)
    d_max = max_pairwise_distance(z) if d_max is None else d_max
    if d_max <= 0:
        raise ValueError("All item rows are identical (D_max = 0): AAE is undefined.")
    return float(_adjacent(z, 1).double().mean()) / d_max


def sequential_alignment(z: torch.Tensor) -> float:
    """SA: fraction of triples (i, i+1, i+2) whose outer distance d(i, i+2) is strictly the largest."""
    z = _as_matrix(z)
    d01 = _adjacent(z, 1)
    outer = _adjacent(z, 2)
    ordered = (outer > d01[:-1]) & (outer > d01[1:])
    return int(ordered.sum()) / ordered.numel()


@lru_cache(maxsize=16)
def random_reference(n_rows: int, dim: int, seed: int = 0) -> tuple[float, float]:
    """(AAE, SA) of a seeded standard Gaussian table ``[n_rows, dim]`` (the "no order" baseline)."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n_rows, dim, generator=generator)
    return average_adjacent_distance(z), sequential_alignment(z)


def oie_metrics(z: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """AAE, SA, their random-table references and relative changes in percent."""
    z = _as_matrix(z).cpu()
    aae, sa = average_adjacent_distance(z), sequential_alignment(z)
    aae_random, sa_random = random_reference(z.size(0), z.size(1), seed)
    return {
        "aae": aae,
        "sa": sa,
        "aae_random": aae_random,
        "sa_random": sa_random,
        "aae_rel_change": (aae - aae_random) / aae_random * 100,
        "sa_rel_change": (sa - sa_random) / sa_random * 100,
    }
