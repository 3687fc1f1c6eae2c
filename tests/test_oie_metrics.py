"""OIE metrics against brute force, on known orders, on random tables; padding/mask rows excluded."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from recbole_llm.oie.metrics import (
    average_adjacent_distance,
    item_embedding_table,
    max_pairwise_distance,
    oie_metrics,
    random_reference,
    sequential_alignment,
)


def _brute_force(z: torch.Tensor) -> tuple[float, float, float]:
    z = z.double()
    n = len(z)
    dist = lambda i, j: float((z[i] - z[j]).norm())  # noqa: E731
    d_max = max(dist(i, j) for i, j in itertools.combinations(range(n), 2))
    aae = sum(dist(i, i + 1) for i in range(n - 1)) / (n - 1) / d_max
    ordered = [dist(i, i + 2) > dist(i, i + 1) and dist(i, i + 2) > dist(i + 1, i + 2) for i in range(n - 2)]
    return d_max, aae, sum(ordered) / len(ordered)


@pytest.mark.parametrize("seed", range(6))
def test_metrics_match_brute_force(seed):
    generator = torch.Generator().manual_seed(seed)
    n, d = 40 + 17 * seed, 1 + 3 * seed
    # anisotropic rows with varied norms, plus exact duplicates for seed 0
    scales = torch.rand(d, generator=generator) * torch.rand(n, 1, generator=generator)
    z = torch.randn(n, d, generator=generator) * scales
    if seed == 0:
        z = torch.cat([z, z[:5]])
    d_max, aae, sa = _brute_force(z)
    assert max_pairwise_distance(z, chunk_size=7) == pytest.approx(d_max, rel=1e-6)
    assert average_adjacent_distance(z) == pytest.approx(aae, rel=1e-5)
    assert sequential_alignment(z) == pytest.approx(sa, abs=1e-12)


def test_exact_max_distance_on_a_larger_table_in_chunks():
    z = torch.randn(3000, 32, generator=torch.Generator().manual_seed(1))
    expected = torch.cdist(z.double(), z.double()).max().item()
    assert max_pairwise_distance(z, chunk_size=256) == pytest.approx(expected, rel=1e-6)


def test_perfectly_ordered_line():
    z = torch.arange(50, dtype=torch.float32).unsqueeze(1)  # 1-D, id order = position
    assert sequential_alignment(z) == 1.0
    assert average_adjacent_distance(z) == pytest.approx(1 / 49)
    shuffled = z[torch.randperm(50, generator=torch.Generator().manual_seed(0))]
    assert sequential_alignment(shuffled) < 0.7


def test_random_reference_and_relative_change():
    aae_random, sa_random = random_reference(4000, 16, 0)
    assert sa_random == pytest.approx(1 / 3, abs=0.03)
    assert 0.3 < aae_random < 0.8
    ordered = torch.linspace(0, 1, 4000).unsqueeze(1).repeat(1, 16) + 1e-4 * torch.randn(4000, 16)
    metrics = oie_metrics(ordered)
    assert metrics["sa_random"] == sa_random and metrics["aae_random"] == aae_random
    assert metrics["sa_rel_change"] == pytest.approx((metrics["sa"] - sa_random) / sa_random * 100)
    assert metrics["aae_rel_change"] < -90 and metrics["sa_rel_change"] > 50


class _TableModel(nn.Module):
    """Mimics RecBole: n_items counts padding; BERT4Rec-style tables have an extra mask row."""

    def __init__(self, n_items: int, extra_rows: int) -> None:
        super().__init__()
        self.n_items = n_items
        self.item_embedding = nn.Embedding(n_items + extra_rows, 1)
        with torch.no_grad():
            self.item_embedding.weight.copy_(torch.arange(n_items + extra_rows, dtype=torch.float32).unsqueeze(1))
            self.item_embedding.weight[0] = 1e6  # padding row: would dominate D_max if included
            if extra_rows:
                self.item_embedding.weight[n_items:] = -1e6  # mask row


@pytest.mark.parametrize("extra_rows", [0, 1])
def test_padding_and_mask_rows_are_excluded(extra_rows):
    model = _TableModel(n_items=21, extra_rows=extra_rows)
    table = item_embedding_table(model)
    assert table.shape == (20, 1)
    assert torch.equal(table[:, 0], torch.arange(1, 21, dtype=torch.float32))
    assert average_adjacent_distance(table) == pytest.approx(1 / 19)


def test_errors_are_clear():
    with pytest.raises(ValueError, match="N >= 3"):
        sequential_alignment(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="identical"):
        average_adjacent_distance(torch.ones(5, 3))
    with pytest.raises(TypeError, match="item_embedding"):
        item_embedding_table(nn.Linear(2, 2))
