"""AWRS engagement signals: exposure per impression, avoidance and their M x M grid code, leak-free.

From the training impressions, exploded into (hour bucket, news, clicked), per news n and state j
(the popularity known after the first j training buckets; ``acc``: all of them, ``ptb``: bucket j-1):

- EPI = exposures of n / all shown (impression, news) pairs; AV = 1 - clicks of n / exposures of n;
- both min-max normalised over the news exposed so far and binned into M bins each:
  code = epi_bin * M + av_bin; news never exposed get the extra code M * M.

An impression at time t reads the state of the training buckets that end before t minus the
look-back (``awrs_lookback_hours``: the released code hard-codes 5 h, its comment says 1 h for MIND),
so nothing at or after that time reaches its features. The clicks feature of the relevance predictor
and the recency (hours since the news was first shown in training, 0 when not yet shown) follow the
same rule. RecBole stores float fields as float32, so unix times are rounded to 128 s; buckets,
look-back and impression times all use those same rounded values, so the rule holds exactly in them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recbole_llm.sampler.popularity import bucket_of

LOGICS = ("acc", "ptb")


class EngagementFeatures(nn.Module):
    """Per-state engagement codes and clicks of every news item (buffers), read at impression times."""

    def __init__(
        self,
        table,
        n_items: int,
        matrix_size: int = 5,
        bucket: float = 3600,
        lookback_hours: float = 1.0,
        logic: str = "acc",
    ) -> None:
        super().__init__()
        if logic not in LOGICS:
            raise ValueError(f"awrs_logic must be one of {', '.join(LOGICS)}, got '{logic}'")
        self.matrix_size, self.bucket, self.lookback = int(matrix_size), float(bucket), float(lookback_hours) * 3600
        self.n_items = int(n_items)
        row_impression = torch.searchsorted(table.offsets, torch.arange(len(table.items)), right=True) - 1
        times = table.times[row_impression].numpy()
        buckets = bucket_of(times, self.bucket)
        bucket_ids, index = np.unique(buckets, return_inverse=True)
        self.register_buffer("bucket_ids", torch.from_numpy(bucket_ids), persistent=False)
        items = table.items.numpy()
        shape = (len(bucket_ids), self.n_items)
        exposures = np.zeros(shape)
        clicks = np.zeros(shape)
        np.add.at(exposures, (index, items), 1.0)
        np.add.at(clicks, (index, items), table.labels.numpy())
        if logic == "acc":
            exposures, clicks = np.cumsum(exposures, 0), np.cumsum(clicks, 0)
        zero = np.zeros((1, self.n_items))
        exposures, clicks = np.concatenate([zero, exposures]), np.concatenate([zero, clicks])  # row j = state j
        self.register_buffer("codes", torch.from_numpy(self._codes(exposures, clicks)), persistent=False)
        self.register_buffer("clicks", torch.from_numpy(clicks).float(), persistent=False)
        first_seen = np.full(self.n_items, np.inf)
        np.minimum.at(first_seen, items, times)
        self.register_buffer("first_seen", torch.from_numpy(first_seen), persistent=False)

    def _codes(self, exposures: np.ndarray, clicks: np.ndarray) -> np.ndarray:
        """Grid code per (state, news): min-max normalised EPI and AV binned into M x M; M * M = never shown."""
        m = self.matrix_size
        shown = exposures > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            epi = exposures / exposures.sum(1, keepdims=True)
            avoidance = 1.0 - clicks / exposures
        codes = np.full(exposures.shape, m * m, dtype=np.int64)
        for j in range(len(exposures)):
            if not shown[j].any():
                continue
            bins = [self._bins(values[j, shown[j]]) for values in (epi, avoidance)]
            codes[j, shown[j]] = bins[0] * m + bins[1]
        return codes

    def _bins(self, values: np.ndarray) -> np.ndarray:
        low, high = values.min(), values.max()
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
        return np.minimum((scaled * self.matrix_size).astype(np.int64), self.matrix_size - 1)

    def states(self, times: torch.Tensor) -> torch.Tensor:
        """State of each impression time: the training buckets that end before ``time - look-back``."""
        shifted = torch.floor((times.double() - self.lookback) / self.bucket).long()
        return torch.searchsorted(self.bucket_ids, shifted.to(self.bucket_ids.device), right=False)

    def forward(self, times: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(codes, clicks, recency hours) of ``items`` [B, ...] at impression ``times`` [B]."""
        state = self.states(times).view(-1, *([1] * (items.dim() - 1))).expand_as(items)
        codes = self.codes[state, items]
        clicks = self.clicks[state, items]
        cutoff = (times.double() - self.lookback).view(-1, *([1] * (items.dim() - 1)))
        seen = self.first_seen[items]
        recency = torch.where(seen < cutoff, (cutoff - seen) / 3600.0, torch.zeros_like(seen)).float()
        return codes, clicks, recency
