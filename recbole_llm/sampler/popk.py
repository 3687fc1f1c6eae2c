"""POPK negative sampler for RecBole (a ``Sampler`` subclass plus a ``TrainDataLoader`` subclass).

Paper: Azevedo, Suzumura, Yasui, "Popular News Always Compete for the User's Attention! POPK:
Mitigating Popularity Bias via a Temporal-Counterfactual", arXiv 2407.09939.

Selected with ``train_neg_sample_args: {distribution: popk, sample_num: k, popk: p, ...}``. For each
training positive (u, i, t) the loader asks for k uniform negatives plus P(t, p), the p most
popular items at t (see :mod:`recbole_llm.sampler.popularity`), minus i and u's training items.

How the negatives arrive (RecBole's own batch format, so models need no change):

- pairwise models (BPR, LightGCN, NGCF, ...): with ``popk_mode: add`` every positive row appears
  k + p times as (user, pos, neg) rows, k with uniform negatives then p with popular ones; the
  pairwise loss averages over all rows. ``replace``: k rows, the last p of them popular.
- pointwise models: 1 + k + p rows (``add``) or 1 + k (``replace``) with label 1 for the positive.

When fewer than p popular items qualify (the first buckets, a user who saw them all), the
missing slots get uniform negatives, so every batch keeps its shape.

P(t, p) minus the positive and the user's training items depends only on the training row, so the
sampler computes it once for every training row when it is built; per batch the loader gathers
those rows by index and only the k uniform negatives are drawn anew.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from recbole.data.dataloader import TrainDataLoader
from recbole.sampler import Sampler
from tqdm import tqdm

from recbole_llm.sampler.args import is_popk, negatives_per_positive, normalize_popk_args
from recbole_llm.sampler.popularity import PopularityTable

if TYPE_CHECKING:
    from collections.abc import Sequence

    from recbole.data.dataset import Dataset
    from recbole.data.interaction import Interaction

logger = logging.getLogger(__name__)

#: Largest users x items bool matrix (bytes) used for the training-item check.
_DENSE_USED_LIMIT = 200_000_000
#: Training rows per chunk when P(t, popk) is precomputed for every training row.
_PRECOMPUTE_CHUNK = 262_144


class PopkSampler(Sampler):
    """RecBole ``Sampler`` for the training phase that also returns P(t, popk).

    Built on the TRAIN split only: its ``used_ids`` (the items never sampled for a user) and its
    popularity table come from the training interactions. ``sample_by_user_ids`` keeps RecBole's
    uniform behaviour; :meth:`sample_with_popk` is what :class:`PopkTrainDataLoader` calls.
    """

    def __init__(self, train_dataset, neg_sample_args: dict[str, Any], time_field: str, show_progress: bool = False):
        super().__init__(["train"], [train_dataset], distribution="uniform", alpha=1.0)
        self.phase = "train"
        self.used_ids = self.used_ids["train"]
        self.args = normalize_popk_args(neg_sample_args)
        self.popk = self.args["popk"]
        self.time_field = time_field
        inter = train_dataset.inter_feat
        users = inter[self.uid_field].numpy().astype(np.int64)
        items = inter[self.iid_field].numpy().astype(np.int64)
        times = train_times(train_dataset, time_field)
        # Vectorised "is it a training item of this user?": a dense bit matrix when it is small,
        # else sorted (user, item) keys searched with np.searchsorted.
        if self.user_num * self.item_num <= _DENSE_USED_LIMIT:
            self._used_matrix = np.zeros((self.user_num, self.item_num), dtype=bool)
            self._used_matrix[users, items] = True
            self._used_keys = None
        else:
            self._used_matrix = None
            self._used_keys = np.unique(users * self.item_num + items)
        max_degree = int(np.bincount(users).max()) if len(users) else 0
        self.table = PopularityTable(
            items,
            times,
            self.item_num,
            metric=self.args["popk_metric"],
            logic=self.args["popk_logic"],
            bucket=self.args["popk_bucket"],
            leak_free=self.args["popk_leak_free"],
            window=self.args["popk_window"],
            depth=self.popk + max_degree + 1,  # deep enough to skip every training item of any user
            show_progress=show_progress,
        )
        self._row_users, self._row_items = users, items
        self._row_popular = self._precompute_popular(users, items, times, show_progress)

    def _precompute_popular(self, users, items, times, show_progress: bool) -> np.ndarray:
        """P(t, popk) of every training row, block-major [popk, n_train] like RecBole's negatives
        (0 = slot left to a uniform negative)."""
        dtype = np.int32 if self.item_num < np.iinfo(np.int32).max else np.int64
        out = np.zeros((self.popk, len(users)), dtype=dtype)
        starts = range(0, len(users), _PRECOMPUTE_CHUNK)
        for lo in tqdm(starts, desc="POPK negatives per training row", disable=not show_progress):
            hi = lo + _PRECOMPUTE_CHUNK
            out[:, lo:hi] = self.popular_negatives(users[lo:hi], items[lo:hi], times[lo:hi]).T
        return out

    def is_used(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Boolean array (broadcast shape): is ``items`` a training item of ``users``?"""
        if self._used_matrix is not None:
            return self._used_matrix[users, items]
        keys = np.asarray(users, dtype=np.int64) * self.item_num + np.asarray(items, dtype=np.int64)
        pos = np.searchsorted(self._used_keys, keys)
        pos = np.minimum(pos, len(self._used_keys) - 1)
        return self._used_keys[pos] == keys

    def uniform_negatives(self, user_ids: np.ndarray, num: int) -> np.ndarray:
        """[num, len(user_ids)] uniform item ids, never a training item of the row's user (rejection)."""
        users = np.broadcast_to(np.asarray(user_ids, dtype=np.int64), (num, len(user_ids)))
        values = np.random.randint(1, self.item_num, size=users.shape)
        bad = np.nonzero(self.is_used(users, values))
        while bad[0].size:
            values[bad] = np.random.randint(1, self.item_num, size=bad[0].size)
            still = self.is_used(users[bad], values[bad])
            bad = (bad[0][still], bad[1][still])
        return values

    def popular_negatives(self, user_ids: np.ndarray, item_ids: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
        """P(t, popk) per row, [len(user_ids), popk], 0 where fewer items qualify."""
        return self.table.lookup(np.asarray(timestamps), item_ids, user_ids, self.popk, self.is_used)

    def _cached_popular(self, rows, user_ids, item_ids) -> np.ndarray | None:
        """Precomputed P(t, popk) of training rows ``rows`` ([popk, n]), or None if they are not those rows."""
        if rows is None:
            return None
        rows = np.asarray(rows, dtype=np.int64)
        if (
            len(rows) != len(user_ids)
            or (len(rows) and (rows.min() < 0 or rows.max() >= len(self._row_items)))
            or not np.array_equal(self._row_items[rows], item_ids)
            or not np.array_equal(self._row_users[rows], user_ids)
        ):
            return None  # not the training rows the cache was built from: look them up instead
        return self._row_popular[:, rows]

    def sample_with_popk(
        self,
        user_ids: np.ndarray,
        item_ids: np.ndarray,
        timestamps: np.ndarray,
        num: int,
        rows: np.ndarray | None = None,
    ) -> torch.Tensor:
        """``num`` negatives per row in RecBole's layout (block c holds the c-th negative of every row).

        The last ``popk`` blocks are P(t, popk); the others (and any popular slot left empty) are
        uniform negatives. ``rows``: the rows' indices in the training split, to read P(t, popk)
        from the table built with the sampler instead of looking it up again.
        """
        user_ids = np.asarray(user_ids, dtype=np.int64)
        item_ids = np.asarray(item_ids, dtype=np.int64)
        popular = self._cached_popular(rows, user_ids, item_ids)  # [popk, n]
        if popular is None:
            popular = self.popular_negatives(user_ids, item_ids, timestamps).T
        uniform_blocks = num - self.popk
        negatives = np.empty((num, len(user_ids)), dtype=np.int64)
        if uniform_blocks:
            negatives[:uniform_blocks] = self.uniform_negatives(user_ids, uniform_blocks)
        negatives[uniform_blocks:] = popular
        # uniform draws only for the popular slots left empty (few: the first buckets, exhausted rankings)
        empty_block, empty_row = np.nonzero(negatives[uniform_blocks:] == 0)
        if empty_row.size:
            negatives[uniform_blocks + empty_block, empty_row] = self.uniform_negatives(user_ids[empty_row], 1)[0]
        return torch.from_numpy(negatives.reshape(-1))


def train_times(dataset: Dataset, time_field: str) -> np.ndarray:
    """The time of every interaction of ``dataset``, or a clear error if POPK cannot use it."""
    if not time_field or time_field not in dataset.inter_feat:
        raise ValueError(
            f"POPK needs the interaction time: TIME_FIELD is {time_field!r} but that field is not loaded. "
            "Set TIME_FIELD and include it in load_col (e.g. load_col: {inter: [user_id, item_id, timestamp]})."
        )
    config = dataset.config
    normalized = config["normalize_all"] or time_field in (config["normalize_field"] or [])
    if normalized:
        raise ValueError(
            f"POPK buckets raw times, but '{time_field}' is min-max normalised: set normalize_all: False "
            f"(RecBole's ml-100k default is True) and keep '{time_field}' out of normalize_field."
        )
    return dataset.inter_feat[time_field].numpy()


class PopkTrainDataLoader(TrainDataLoader):
    """RecBole's ``TrainDataLoader`` that hands the batch's times to :class:`PopkSampler`.

    Two hooks: ``collate_fn`` hands the batch's row indices on (they select the precomputed
    P(t, popk) rows), and ``_neg_sampling`` sees the batch ``inter_feat`` with the time field,
    while RecBole's sampler only receives user and item ids.
    """

    def _set_neg_sample_args(self, config, dataset, dl_format, neg_sample_args):
        if not is_popk(neg_sample_args):
            return super()._set_neg_sample_args(config, dataset, dl_format, neg_sample_args)
        args = normalize_popk_args(neg_sample_args)
        # RecBole sets up times / labels / neg_ fields for "k + popk" uniform negatives ...
        super()._set_neg_sample_args(
            config,
            dataset,
            dl_format,
            {**args, "distribution": "uniform", "sample_num": negatives_per_positive(args)},
        )
        # ... and we keep the popk arguments so _neg_sampling takes our branch.
        self.neg_sample_args = args
        self.time_field = config["TIME_FIELD"]

    def collate_fn(self, index: Sequence[int]) -> Interaction:
        if not is_popk(self.neg_sample_args):
            return super().collate_fn(index)
        index = np.array(index)
        data = self.transform(self._dataset, self._dataset[index])
        return self._neg_sampling(data, rows=index)

    def _neg_sampling(self, inter_feat, rows=None):
        if not is_popk(self.neg_sample_args):
            return super()._neg_sampling(inter_feat)
        user_ids = inter_feat[self.uid_field].numpy()
        item_ids = inter_feat[self.iid_field].numpy()
        times = inter_feat[self.time_field].numpy()
        neg_item_ids = self._sampler.sample_with_popk(user_ids, item_ids, times, self.neg_sample_num, rows=rows)
        return self.sampling_func(inter_feat, neg_item_ids)
