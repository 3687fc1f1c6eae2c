"""BSARec: frequency layer, right alignment, gradients (mini LastFM file), beating random (full LastFM file)."""

from __future__ import annotations

import math
from contextlib import chdir

import pytest
import torch

from recbole_llm.model.sequential_recommender.bsarec import FrequencyLayer, right_align
from recbole_llm.quick_start import run_recbole_llm

from oie_helpers import TINY, single_thread, tiny_config, write_lastfm_slice


def _low_frequency_signal(length: int, hidden: int, c: int) -> torch.Tensor:
    spectrum = torch.zeros(2, length // 2 + 1, hidden, dtype=torch.complex64)
    kept = c // 2 + 1
    spectrum[:, :kept] = torch.randn(2, kept, hidden, dtype=torch.complex64)
    spectrum[:, 0] = spectrum[:, 0].real.to(torch.complex64)  # DC bin of a real signal is real
    return torch.fft.irfft(spectrum, n=length, dim=1, norm="ortho")


@pytest.mark.parametrize("c", [3, 5])
def test_low_band_passes_unchanged_with_beta_zero(c):
    layer = FrequencyLayer(hidden_size=8, c=c, dropout=0.0, layer_norm_eps=1e-12)
    with torch.no_grad():
        layer.sqrt_beta.zero_()
    low = _low_frequency_signal(length=12, hidden=8, c=c)
    assert torch.allclose(layer.filtered(low), low, atol=1e-6)
    # and a purely high-frequency signal is removed entirely when beta = 0
    noise = torch.randn(2, 12, 8)
    high = noise - layer.low_pass(noise)
    assert layer.filtered(high).abs().max() < 1e-5


def test_beta_rescales_only_the_high_band():
    layer = FrequencyLayer(hidden_size=4, c=3, dropout=0.0, layer_norm_eps=1e-12)
    with torch.no_grad():
        layer.sqrt_beta.fill_(math.sqrt(2.0))
    x = torch.randn(3, 10, 4)
    low = layer.low_pass(x)
    assert torch.allclose(layer.filtered(x), low + 2.0 * (x - low), atol=1e-5)


def test_right_align_moves_items_to_the_end():
    seq = torch.tensor([[5, 6, 7, 0, 0], [1, 2, 3, 4, 5], [9, 0, 0, 0, 0]])
    lengths = torch.tensor([3, 5, 1])
    expected = torch.tensor([[0, 0, 5, 6, 7], [1, 2, 3, 4, 5], [0, 0, 0, 0, 9]])
    assert torch.equal(right_align(seq, lengths), expected)


@pytest.fixture(scope="module")
def bsarec_run(shared_datasets, tmp_path_factory):
    """Four epochs on the first 200 users of the full LastFM file: enough test users for a stable
    comparison with a random ranking (the 120-user mini file is too small; the smoke test trains on it)."""
    folder = tmp_path_factory.mktemp("bsarec")
    write_lastfm_slice(shared_datasets, folder, n_users=200)
    config = tiny_config(
        folder, oie_metrics=False, epochs=4, learning_rate=0.005, hidden_dropout_prob=0.2, attn_dropout_prob=0.2
    )
    with chdir(folder), single_thread():
        result = run_recbole_llm("BSARec", TINY, config_dict=config)
    n_items = max(int(line.split("\t")[1]) for line in (folder / TINY / f"{TINY}.inter").read_text().splitlines()[1:])
    return result, n_items


def test_bsarec_trains_and_beats_random(bsarec_run):
    result, n_items = bsarec_run
    test = result["test_result"]
    assert set(test) >= {"hit@10", "ndcg@10"}
    assert all(math.isfinite(v) for v in test.values())
    # a random full ranking of ~3,000 items hits the target in the top 10 with probability 10 / N
    random_hit = 10 / n_items
    assert result["best_valid_result"]["hit@10"] > 3 * random_hit
    assert test["hit@10"] > 3 * random_hit
    assert len(result["epoch_times"]) == 4


def test_bsarec_gradients_reach_every_parameter(mini_raw, tmp_path):
    from recbole_llm.config import Config
    from recbole_llm.quick_start import build

    write_lastfm_slice(mini_raw, tmp_path, n_users=20)
    config = Config("BSARec", TINY, config_dict=tiny_config(tmp_path, oie_metrics=False, train_batch_size=64))
    with single_thread():
        _, train_data, _, _, model, _ = build(config)
        batch = next(iter(train_data))
        model.calculate_loss(batch).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
