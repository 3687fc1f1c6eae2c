"""Impression data for the news models: per-split impression tables and their data loaders.

RecBole loads the converter's benchmark files (``<name>.{train,valid,test}.inter``, one row per
shown news item, and ``<name>.imp``, the click history shown with each impression, its ids remapped
with the item ids through ``alias_of_item_id: [history]``). :func:`impression_table` regroups one
split's rows into compressed per-impression arrays; the loaders build batches from them:

- :class:`ImpressionTrainDataLoader`: one clicked item + ``npratio`` negatives drawn from the same
  impression (``impression_sampling: per_positive``, microsoft/recommenders) or every click of an impression
  + ``npratio`` negatives per click (``per_impression``, NewsRecLib); an impression with too few
  negatives is padded (``neg_shortfall: pad``, masked out of the loss) or drawn from with
  replacement (``replace``). With ``popk > 0`` the POPK items P(t, popk) are appended as negatives.
- :class:`ImpressionEvalDataLoader`: whole impressions, every shown candidate with its label.

Every batch is an ``Interaction`` with ``[B]`` fields ``impression_id``, the user id field and
``timestamp``, and ``[B, L]`` / ``[B, C]`` fields ``history``, ``candidates``, ``candidate_mask`` and
``candidate_label`` (0 = padding everywhere).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from recbole.data.dataloader.abstract_dataloader import AbstractDataLoader
from recbole.data.interaction import Interaction

if TYPE_CHECKING:
    from collections.abc import Sequence

    from recbole.config import Config
    from recbole.data.dataset import Dataset

logger = logging.getLogger(__name__)

HISTORY = "history"
CANDIDATES = "candidates"
CANDIDATE_MASK = "candidate_mask"
CANDIDATE_LABEL = "candidate_label"
IMPRESSION_ID = "impression_id"
NEG_SAMPLING = ("per_positive", "per_impression")
NEG_SHORTFALL = ("pad", "replace")


class NewsDataError(ValueError):
    """The dataset is not an impression dataset, or a news setting has a value that is not allowed."""


@dataclass
class ImpressionTable:
    """One split's impressions in compressed rows: impression k owns rows ``offsets[k]:offsets[k+1]``."""

    impression_ids: torch.Tensor  # [n] int64
    users: torch.Tensor  # [n] int64
    times: torch.Tensor  # [n] float64
    offsets: torch.Tensor  # [n + 1] int64
    items: torch.Tensor  # [rows] int64, grouped by impression, in shown order
    labels: torch.Tensor  # [rows] float32
    history: torch.Tensor  # [n, max_history] int64, the most recent clicks last, 0-padded in front

    def __len__(self) -> int:
        return len(self.impression_ids)

    @property
    def sizes(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]


def _checked_choice(config, key: str, allowed: tuple[str, ...]) -> str:
    value = str(config[key])
    if value not in allowed:
        raise NewsDataError(f"{key} must be one of {', '.join(allowed)}, got '{value}'")
    return value


def recent_history(history: torch.Tensor, max_history: int) -> torch.Tensor:
    """The last ``max_history`` non-padding ids of each row, right-aligned (0-padded in front)."""
    lengths = (history > 0).sum(1, keepdim=True)
    positions = lengths - max_history + torch.arange(max_history)
    taken = torch.gather(history, 1, positions.clamp(min=0, max=max(history.shape[1] - 1, 0)))
    return torch.where(positions >= 0, taken, torch.zeros_like(taken))


def _histories(dataset, impression_ids: torch.Tensor, max_history: int) -> torch.Tensor:
    imp_feat = getattr(dataset, "imp_feat", None)
    if imp_feat is None or HISTORY not in imp_feat:
        raise NewsDataError(
            f"dataset '{dataset.dataset_name}' has no impression histories: the news models need the "
            "<name>.imp file of `python -m dataset_converters.mind --format benchmark` loaded with "
            "additional_feat_suffix: [imp] and alias_of_item_id: [history]"
        )
    keys = imp_feat[IMPRESSION_ID].double().round().long()
    order = torch.argsort(keys)
    where = torch.searchsorted(keys[order], impression_ids)
    found = (where < len(keys)) & (keys[order][where.clamp(max=len(keys) - 1)] == impression_ids)
    if not bool(found.all()):
        missing = impression_ids[~found][:3].tolist()
        raise NewsDataError(f"impressions {missing} of '{dataset.dataset_name}' have no row in its .imp file")
    history = imp_feat[HISTORY]
    if history.dim() == 1:
        history = history.view(-1, 1)
    return recent_history(history.long()[order[where]], max_history)


def impression_table(dataset: Dataset, max_history: int) -> ImpressionTable:
    """Group a split's rows (one per shown news item) by impression, keeping their shown order."""
    feat = dataset.inter_feat
    for field in (IMPRESSION_ID, dataset.label_field, dataset.time_field):
        if field is None or field not in feat:
            raise NewsDataError(
                f"dataset '{dataset.dataset_name}' has no '{field}' field: convert it with "
                "`python -m dataset_converters.mind --format benchmark`"
            )
    impressions = feat[IMPRESSION_ID].double().round().long()
    order = torch.argsort(impressions, stable=True)
    ids, counts = torch.unique_consecutive(impressions[order], return_counts=True)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
    first = order[offsets[:-1]]
    return ImpressionTable(
        impression_ids=ids,
        users=feat[dataset.uid_field][first].long(),
        times=feat[dataset.time_field][first].double(),
        offsets=offsets,
        items=feat[dataset.iid_field][order].long(),
        labels=feat[dataset.label_field][order].float(),
        history=_histories(dataset, ids, max_history),
    )


def _padded_rows(table: ImpressionTable, rows: torch.Tensor, positive: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Items of ``rows``' impressions that are (not) clicked, padded: ([B, longest], counts [B])."""
    starts, sizes = table.offsets[rows], table.sizes[rows]
    longest = int(sizes.max()) if len(rows) else 0
    index = starts[:, None] + torch.arange(longest)
    inside = torch.arange(longest) < sizes[:, None]
    index = torch.where(inside, index, torch.zeros_like(index))
    items, labels = table.items[index], table.labels[index]
    keep = inside & ((labels > 0) if positive else (labels <= 0))
    counts = keep.sum(1)
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # kept items first, shown order
    items = torch.where(torch.arange(longest) < counts[:, None], torch.gather(items, 1, order), 0)
    return items, counts


def draw_negatives(
    pool: torch.Tensor, counts: torch.Tensor, k: torch.Tensor, shortfall: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``k[b]`` of row b's ``counts[b]`` pool items, without replacement when there are enough.

    With fewer than ``k[b]``: ``pad`` keeps them all and pads with 0, ``replace`` draws ``k[b]``
    with replacement. Returns [B, max k] (0 = padding).
    """
    width = int(k.max()) if len(k) else 0
    if width == 0:
        return torch.zeros((len(k), 0), dtype=torch.long)
    longest = pool.shape[1]
    keys = torch.rand(pool.shape, generator=generator)
    keys[torch.arange(longest) >= counts[:, None]] = float("inf")
    shuffled = torch.gather(pool, 1, torch.argsort(keys, dim=1))
    if shuffled.shape[1] < width:
        shuffled = torch.cat([shuffled, torch.zeros((len(k), width - shuffled.shape[1]), dtype=torch.long)], 1)
    chosen = shuffled[:, :width]
    if shortfall == "replace":
        draws = (torch.rand((len(k), width), generator=generator) * counts[:, None].clamp(min=1)).long()
        with_replacement = torch.gather(pool, 1, draws.clamp(max=max(longest - 1, 0))) if longest else chosen
        short = (counts < k)[:, None] & (counts > 0)[:, None]
        chosen = torch.where(short, with_replacement, chosen)
    wanted = torch.arange(width) < k[:, None]
    return torch.where(wanted, chosen, torch.zeros_like(chosen))


def _batch(
    table: ImpressionTable, rows: torch.Tensor, candidates: torch.Tensor, labels: torch.Tensor, uid_field: str
) -> Interaction:
    return Interaction(
        {
            IMPRESSION_ID: table.impression_ids[rows],
            uid_field: table.users[rows],
            "timestamp": table.times[rows],
            HISTORY: table.history[rows],
            CANDIDATES: candidates,
            CANDIDATE_MASK: candidates > 0,
            CANDIDATE_LABEL: labels,
        }
    )


class _ImpressionLoader(AbstractDataLoader):
    """Shared set-up: the split's impression table and the batch size in samples."""

    batch_size_key = "train_batch_size"

    def __init__(self, config, dataset, table: ImpressionTable, shuffle: bool) -> None:
        self.table = table
        self.uid_field = dataset.uid_field
        self.sample_size = self._sample_count()
        super().__init__(config, dataset, None, shuffle=shuffle)

    def _sample_count(self) -> int:
        return len(self.table)

    def _init_batch_size_and_step(self) -> None:
        batch_size = int(self.config[self.batch_size_key])
        self.step = batch_size
        self.set_batch_size(batch_size)


class ImpressionTrainDataLoader(_ImpressionLoader):
    """Training batches: clicked item(s) + in-impression negatives (+ POPK items), label per candidate."""

    def __init__(self, config, dataset, table: ImpressionTable, popk=None) -> None:
        self.per_positive = _checked_choice(config, "impression_sampling", NEG_SAMPLING) == "per_positive"
        self.shortfall = _checked_choice(config, "neg_shortfall", NEG_SHORTFALL)
        self.npratio = int(config["npratio"])
        if self.npratio < 0:
            raise NewsDataError(f"npratio must be >= 0, got {self.npratio}")
        clicked = torch.nonzero(table.labels > 0).view(-1)
        self.positive_rows = clicked
        self.positive_impression = torch.searchsorted(table.offsets, clicked, right=True) - 1
        has_click = torch.zeros(len(table), dtype=torch.bool)
        has_click[self.positive_impression] = True
        self.clicked_impressions = torch.nonzero(has_click).view(-1)
        self.popk = popk
        super().__init__(config, dataset, table, shuffle=True)

    def _sample_count(self) -> int:
        return len(self.positive_rows) if self.per_positive else len(self.clicked_impressions)

    def collate_fn(self, index: Sequence[int]) -> Interaction:
        index = torch.as_tensor(np.asarray(index), dtype=torch.long)
        if self.per_positive:
            rows = self.positive_impression[index]
            positives = self.table.items[self.positive_rows[index]].view(-1, 1)
        else:
            rows = self.clicked_impressions[index]
            positives, _ = _padded_rows(self.table, rows, positive=True)
        pool, counts = _padded_rows(self.table, rows, positive=False)
        n_pos = (positives > 0).sum(1)
        negatives = draw_negatives(pool, counts, n_pos * self.npratio, self.shortfall, self.generator)
        parts = [positives, negatives]
        if self.popk is not None:
            parts.append(self.popk.extra_negatives(self.table, rows, positives))
        candidates = torch.cat(parts, 1)
        labels = torch.zeros(candidates.shape, dtype=torch.float32)
        labels[:, : positives.shape[1]] = (positives > 0).float()
        return _batch(self.table, rows, candidates, labels, self.uid_field)


class ImpressionEvalDataLoader(_ImpressionLoader):
    """Evaluation batches of whole impressions (``eval_batch_size`` impressions each)."""

    batch_size_key = "eval_batch_size"

    def __init__(self, config, dataset, table: ImpressionTable) -> None:
        super().__init__(config, dataset, table, shuffle=False)

    def collate_fn(self, index: Sequence[int]) -> Interaction:
        rows = torch.as_tensor(np.asarray(index), dtype=torch.long)
        starts, sizes = self.table.offsets[rows], self.table.sizes[rows]
        longest = int(sizes.max())
        inside = torch.arange(longest) < sizes[:, None]
        index = torch.where(inside, starts[:, None] + torch.arange(longest), torch.zeros(1, dtype=torch.long))
        candidates = torch.where(inside, self.table.items[index], torch.zeros(1, dtype=torch.long))
        labels = torch.where(inside, self.table.labels[index], torch.zeros(1))
        return _batch(self.table, rows, candidates, labels, self.uid_field)


def news_data_preparation(
    config: Config, dataset: Dataset
) -> tuple[ImpressionTrainDataLoader, ImpressionEvalDataLoader, ImpressionEvalDataLoader]:
    """(train, valid, test) impression loaders from the benchmark splits of ``dataset``."""
    from recbole_llm.news.popk import NewsPopk

    if not config["benchmark_filename"]:
        raise NewsDataError(
            "news models read pre-split impressions: set benchmark_filename: [train, valid, test] "
            "(the dataset yaml written by `python -m dataset_converters.mind --format benchmark`)"
        )
    train_ds, valid_ds, test_ds = dataset.build()
    max_history = int(config["max_history"])
    tables = [impression_table(ds, max_history) for ds in (train_ds, valid_ds, test_ds)]
    popk = NewsPopk.from_config(config, tables[0], dataset.item_num) if int(config["popk"] or 0) > 0 else None
    train = ImpressionTrainDataLoader(config, train_ds, tables[0], popk=popk)
    logger.info(
        "news impressions: train %d (%d samples), valid %d, test %d",
        len(tables[0]),
        train.sample_size,
        len(tables[1]),
        len(tables[2]),
    )
    return (
        train,
        ImpressionEvalDataLoader(config, valid_ds, tables[1]),
        ImpressionEvalDataLoader(config, test_ds, tables[2]),
    )
