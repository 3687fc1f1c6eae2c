"""Time-bucketed popularity tables P(t, popk) for the POPK sampler.

POPK (Azevedo, Suzumura, Yasui, "Popular News Always Compete for the User's Attention! POPK:
Mitigating Popularity Bias via a Temporal-Counterfactual", arXiv 2407.09939) adds, to each
positive at time t, the popk most popular items at t as extra negatives.

Time is cut into buckets of ``bucket`` time units; only buckets that hold at least one training
interaction count (the "training buckets" ``b_0 < b_1 < ... < b_{m-1}``). The table has one row
per *state* j = 0..m: the popularity known after the first j training buckets. An interaction in
bucket b reads state ``j = #training buckets before b`` (leak-free: the last completed bucket is
the newest one used) or ``#training buckets up to and including b`` (not leak-free).

Scores of state j (``c_b[i]``: clicks of item i in training bucket b, ``n_b`` all clicks in b):

- acc/count: sum of c_b over b < j; acc/ratio: sum of c_b / n_b (every bucket weighs the same);
  acc/variance: population variance of c_b over the buckets b < j.
- ptb/count: c_{j-1}; ptb/ratio: c_{j-1} / n_{j-1} (same order as count inside one bucket);
  ptb/variance: variance of c_b over the last ``window`` training buckets before the state.

Items with score 0 are never popular. Ties go to the smaller item id (a stable sort), so the
table is deterministic. Everything is computed from the training interactions only, with numpy /
torch over chunks of buckets (no Python loop over interactions).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger(__name__)

#: Keep the dense [chunk of buckets x items] work matrices around 64 MB.
_CHUNK_ELEMENTS = 8_000_000
#: Most ranked entries the table stores ([states x depth] int64).
_TABLE_BUDGET = 40_000_000


def bucket_of(times: np.ndarray, bucket: float) -> np.ndarray:
    """Bucket number of each time (floor(t / bucket)), computed in float64."""
    return np.floor(np.asarray(times, dtype=np.float64) / float(bucket)).astype(np.int64)


class PopularityTable:
    """Ranked popular items per time state, built once from training interactions.

    Args:
        item_ids: internal item id of each training interaction.
        times: time of each training interaction (the same values the batches carry).
        n_items: number of item ids, padding id 0 included.
        metric: ``count``, ``ratio`` or ``variance``.
        logic: ``acc`` or ``ptb``.
        bucket: bucket length in time units.
        leak_free: read the state before the interaction's bucket (True) or including it.
        window: number of past training buckets for ``ptb`` + ``variance``.
        depth: how many ranked items to keep per state (popk plus room for excluded items).
    """

    def __init__(
        self,
        item_ids: np.ndarray,
        times: np.ndarray,
        n_items: int,
        *,
        metric: str = "count",
        logic: str = "acc",
        bucket: float = 3600,
        leak_free: bool = True,
        window: int = 24,
        depth: int = 2,
        show_progress: bool = False,
    ) -> None:
        item_ids = np.asarray(item_ids, dtype=np.int64)
        if len(item_ids) == 0:
            raise ValueError("POPK needs training interactions to compute popularity; the training split is empty.")
        self.n_items = int(n_items)
        self.metric, self.logic, self.bucket = metric, logic, float(bucket)
        self.leak_free, self.window = bool(leak_free), int(window)
        buckets = bucket_of(times, bucket)
        self.bucket_ids, bucket_index = np.unique(buckets, return_inverse=True)
        n_buckets = len(self.bucket_ids)
        depth = max(1, min(int(depth), self.n_items - 1))
        if (n_buckets + 1) * depth > _TABLE_BUDGET:
            capped = max(1, _TABLE_BUDGET // (n_buckets + 1))
            logger.warning(
                "POPK table capped at %d ranked items per state (asked %d, %d buckets): rows whose "
                "popular items are all excluded get uniform negatives instead.",
                capped,
                depth,
                n_buckets,
            )
            depth = capped
        self.depth = depth
        order = np.argsort(bucket_index, kind="stable")
        self._sorted_items = item_ids[order]
        self._bucket_starts = np.searchsorted(bucket_index[order], np.arange(n_buckets + 1))
        self.ranked = torch.zeros((n_buckets + 1, depth), dtype=torch.int64)  # row j = state j; 0 = none
        self._build(show_progress)

    # ----------------------------------------------------------------- building
    def _bucket_counts(self, lo: int, hi: int) -> np.ndarray:
        """Dense click counts [hi - lo, n_items] (float64) of training buckets lo..hi-1."""
        start, end = self._bucket_starts[lo], self._bucket_starts[hi]
        rows = np.repeat(np.arange(hi - lo), np.diff(self._bucket_starts[lo : hi + 1]))
        flat = rows * self.n_items + self._sorted_items[start:end]
        counts = np.bincount(flat, minlength=(hi - lo) * self.n_items)
        return counts.reshape(hi - lo, self.n_items).astype(np.float64)

    def _rank(self, scores: np.ndarray) -> torch.Tensor:
        """Top ``depth`` item ids per row by descending score, ties to the smaller id, 0 where score <= 0."""
        if self.metric != "count":  # shares and variances: equal values summed in another order stay ties
            scores = np.round(scores, 12)
        scores_t = torch.from_numpy(scores)
        values, index = torch.sort(scores_t, dim=1, descending=True, stable=True)
        values, index = values[:, : self.depth], index[:, : self.depth]
        return torch.where(values > 0, index, torch.zeros_like(index))

    def _build(self, show_progress: bool) -> None:
        n_buckets = len(self.bucket_ids)
        chunk = max(1, _CHUNK_ELEMENTS // max(self.n_items, 1))
        carry_count = np.zeros(self.n_items)  # acc: sum of counts (or shares) so far
        carry_square = np.zeros(self.n_items)  # acc variance: sum of squared counts so far
        starts = range(0, n_buckets, chunk)
        for lo in tqdm(starts, desc="POPK popularity", disable=not show_progress):
            hi = min(n_buckets, lo + chunk)
            states = np.arange(lo + 1, hi + 1)  # state j uses training buckets < j
            if self.logic == "acc":
                counts = self._bucket_counts(lo, hi)
                if self.metric == "ratio":
                    counts = counts / counts.sum(axis=1, keepdims=True)
                cum = carry_count + np.cumsum(counts, axis=0)
                if self.metric == "variance":
                    cum_sq = carry_square + np.cumsum(counts**2, axis=0)
                    n = states[:, None].astype(np.float64)
                    scores = (n * cum_sq - cum**2) / (n * n)
                    carry_square = cum_sq[-1]
                else:
                    scores = cum
                carry_count = cum[-1]
            else:
                width = self.window if self.metric == "variance" else 1
                base = max(0, lo - width + 1)
                counts = self._bucket_counts(base, hi)
                if self.metric == "ratio":
                    counts = counts / counts.sum(axis=1, keepdims=True)
                padded = np.zeros((1, self.n_items))
                cum = np.concatenate([padded, np.cumsum(counts, axis=0)])
                upper = states - base  # rows of cum holding buckets < j
                lower = np.maximum(states - width, base) - base
                window_sum = cum[upper] - cum[lower]
                if self.metric == "variance":
                    cum_sq = np.concatenate([padded, np.cumsum(counts**2, axis=0)])
                    window_sq = cum_sq[upper] - cum_sq[lower]
                    n = (upper - lower)[:, None].astype(np.float64)
                    scores = (n * window_sq - window_sum**2) / (n * n)
                else:
                    scores = window_sum
            self.ranked[lo + 1 : hi + 1] = self._rank(scores)

    # ----------------------------------------------------------------- lookup
    def states_of(self, times: np.ndarray) -> np.ndarray:
        """State row of each time: training buckets strictly before (leak-free) or up to its bucket."""
        side = "left" if self.leak_free else "right"
        return np.searchsorted(self.bucket_ids, bucket_of(times, self.bucket), side=side)

    def top_items(self, times: np.ndarray) -> torch.Tensor:
        """The ranked popular items [len(times), depth] at each time (0 = no further popular item)."""
        return self.ranked[torch.from_numpy(self.states_of(times))]

    def lookup(
        self,
        times: np.ndarray,
        positives: np.ndarray,
        users: np.ndarray,
        popk: int,
        is_excluded: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """P(t, popk) per row: the popk best-ranked items that are neither the positive nor excluded.

        ``is_excluded(users[:, None], items)`` says which (user, item) pairs must be skipped (the
        user's training items). Returns [n, popk] int64, 0 where fewer than popk items qualify.
        Reads the table progressively deeper only for rows that still miss items, so a batch
        usually touches ``2 * popk + 8`` columns.
        """
        n = len(times)
        states = self.states_of(times)
        ranked = self.ranked.numpy()
        positives = np.asarray(positives, dtype=np.int64)
        users = np.asarray(users, dtype=np.int64)
        out = np.zeros((n, popk), dtype=np.int64)
        found = np.zeros(n, dtype=np.int64)
        pending = np.arange(n)
        lo, width = 0, 2 * popk + 8
        while pending.size and lo < self.depth:
            hi = min(self.depth, lo + width)
            cand = ranked[states[pending], lo:hi]
            valid = (cand > 0) & (cand != positives[pending, None]) & ~is_excluded(users[pending, None], cand)
            slot = np.cumsum(valid, axis=1) + found[pending, None]  # 1-based slot of each valid item
            take = valid & (slot <= popk)
            rows, cols = np.nonzero(take)
            out[pending[rows], slot[rows, cols] - 1] = cand[rows, cols]
            found[pending] = np.minimum(slot[:, -1], popk)
            exhausted = cand[:, -1] == 0  # ranking ran out of items with a positive score
            pending = pending[(found[pending] < popk) & ~exhausted]
            lo, width = hi, width * 2
        return out
