"""StockMixer (Fan & Shen, AAAI 2024) and Feng et al.'s Rank-LSTM baseline, on ``[stocks, lookback, channels]``.

Both predict the next close (in the scaled units of the input) for every stock of one day; the
return ratio ``(prediction - last close) / last close`` enters the loss and the metrics. Architecture
as in the authors' released code (SJTU-DMTai/StockMixer ``src/model.py``):

- indicator mixing: an MLP across channels after each time mixing (``MixerBlock``, GELU);
- temporal mixing: ``TriU``, an upper-triangular (causal) linear map over the lookback, so step ``i``
  of the window only mixes steps ``<= i``; multi-scale: each scale ``k > 1`` first averages ``k``
  consecutive steps with a stride-``k`` convolution. The released model uses scales {1, 2}
  (``scale_dim = 8`` for a lookback of 16, its ``scale_factor = 3`` argument is unused); the paper
  text says {1, 2, 4}: ``time_scales`` chooses;
- stock mixing: the window summaries of all stocks pass through ``stocks -> market -> stocks``
  (``NoGraphMixer``: ``market`` hidden "market states", 20 on NASDAQ), added to the per-stock path.

``TriU`` is computed as one masked matrix product instead of the released code's ``T`` separate
``nn.Linear(i + 1, 1)`` layers; each row is initialised like that layer (uniform in ±1/sqrt(i + 1)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def ranking_loss(
    prediction: torch.Tensor, base: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor, alpha: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """StockMixer's loss on one day: ``MSE(return) + alpha * pairwise ranking hinge``; also the returns.

    All inputs are ``[stocks]``; ``mask`` is 1 for stocks whose window and target day are all traded.
    As in the released code, the MSE averages over every stock (masked ones contribute 0) and the
    hinge penalises each pair whose predicted order disagrees with the realised one.
    """
    ratio = (prediction - base) / base
    mse = F.mse_loss(ratio * mask, truth * mask)
    pred_diff = ratio[:, None] - ratio[None, :]
    true_diff = truth[None, :] - truth[:, None]
    hinge = torch.mean(F.relu(pred_diff * true_diff * (mask[:, None] * mask[None, :])))
    return mse + alpha * hinge, mse, hinge, ratio


class TriU(nn.Module):
    """Causal linear map over time: ``out[..., i] = sum_{j <= i} W[i, j] x[..., j] + b[i]``."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        bound = 1.0 / torch.sqrt(torch.arange(1, steps + 1, dtype=torch.float32))[:, None]
        self.weight = nn.Parameter((torch.rand(steps, steps) * 2 - 1) * bound)
        self.bias = nn.Parameter((torch.rand(steps) * 2 - 1) * bound[:, 0])
        self.register_buffer("lower", torch.tril(torch.ones(steps, steps)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.lower, self.bias)


class MixerBlock(nn.Module):
    """Two dense layers with GELU between (indicator mixing across channels)."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dense_1, self.dense_2, self.dropout = nn.Linear(dim, hidden), nn.Linear(hidden, dim), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.dense_2(self.dropout(F.gelu(self.dense_1(x)))))


class TimeChannelMixer(nn.Module):
    """``Mixer2dTriU``: causal time mixing, then indicator mixing, each with a residual and LayerNorm."""

    def __init__(self, steps: int, channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_1, self.norm_2 = nn.LayerNorm([steps, channels]), nn.LayerNorm([steps, channels])
        self.time_mixer = TriU(steps)
        self.channel_mixer = MixerBlock(channels, channels, dropout)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = self.time_mixer(self.norm_1(inputs).transpose(1, 2)).transpose(1, 2)
        x = self.norm_2(x + inputs)
        return x + self.channel_mixer(x)


class StockMixing(nn.Module):
    """``NoGraphMixer``: each time feature mixed across all stocks through ``market`` hidden states."""

    def __init__(self, stocks: int, market: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(stocks)
        self.dense_1, self.dense_2 = nn.Linear(stocks, market), nn.Linear(market, stocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [stocks, features]
        return self.dense_2(F.hardswish(self.dense_1(self.norm(x.T)))).T


class StockModel(nn.Module):
    """Base of the stock models: built from the run's config and the data's shape."""

    def __init__(self, config, stocks: int, lookback: int, channels: int) -> None:
        super().__init__()
        self.stocks, self.lookback, self.channels = stocks, lookback, channels


class StockMixer(StockModel):
    """Indicator, multi-scale temporal and stock mixing (see the module docstring)."""

    def __init__(self, config, stocks: int, lookback: int, channels: int) -> None:
        super().__init__(config, stocks, lookback, channels)
        scales = [int(k) for k in config["time_scales"]]
        if not scales or scales[0] != 1 or any(lookback % k for k in scales):
            raise ValueError(
                f"time_scales = {scales} is not allowed: expected [1, k2, ...] with each k dividing lookback"
            )
        dropout = float(config["dropout"])
        self.scales = scales
        self.downsample = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size=k, stride=k) for k in scales[1:])
        self.mixers = nn.ModuleList(TimeChannelMixer(lookback // k, channels, dropout) for k in scales)
        width = lookback + sum(lookback // k for k in scales)
        self.channel_fc = nn.Linear(channels, 1)
        self.time_fc = nn.Linear(width, 1)
        self.stock_mixer = StockMixing(stocks, int(config["market"]))
        self.time_fc_mixed = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[stocks, lookback, channels]`` -> ``[stocks]`` predicted next close."""
        parts = [x, self.mixers[0](x)]
        for conv, mixer in zip(self.downsample, self.mixers[1:]):
            parts.append(mixer(conv(x.transpose(1, 2)).transpose(1, 2)))
        y = self.channel_fc(torch.cat(parts, dim=1)).squeeze(-1)  # [stocks, width]
        return (self.time_fc(y) + self.time_fc_mixed(self.stock_mixer(y))).squeeze(-1)


class RankLSTM(StockModel):
    """Feng et al.'s Rank-LSTM (TOIS 2019): an LSTM over each stock's window, a linear head, the same loss."""

    def __init__(self, config, stocks: int, lookback: int, channels: int) -> None:
        super().__init__(config, stocks, lookback, channels)
        hidden = int(config["hidden_size"])
        self.lstm = nn.LSTM(channels, hidden, num_layers=int(config["num_layers"]), batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output, _ = self.lstm(x)
        return F.leaky_relu(self.head(output[:, -1])).squeeze(-1)  # Feng's dense layer has a leaky ReLU


class EDSMF(StockMixer):
    """EDSMF's member model: StockMixer over the price channels plus event-signal channels.

    The ensemble of one member per context, with weights chosen on validation, is
    :func:`recbole_llm.stock.trainer.fit_edsmf`.
    """


STOCK_MODELS: dict[str, type[StockModel]] = {"StockMixer": StockMixer, "RankLSTM": RankLSTM, "EDSMF": EDSMF}
