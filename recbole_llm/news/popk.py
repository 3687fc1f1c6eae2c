"""POPK on news: the popk most popular news at an impression's time appended to its candidates.

POPK (Azevedo, Suzumura, Yasui, arXiv 2407.09939) evaluates inside NRMS, NAML and LSTUR: the
popk most popular news P(t, popk) at the impression's time t are added to the 1 + K in-impression
candidates as extra negatives. Popularity comes from the *training* clicks only, counted in time
buckets strictly before the impression's bucket (the current bucket is excluded), through the
existing :class:`recbole_llm.sampler.popularity.PopularityTable`; the positive and every news item
of the impression itself are skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from recbole_llm.sampler.popularity import PopularityTable

if TYPE_CHECKING:
    from recbole.config import Config

    from recbole_llm.news.data import ImpressionTable


class NewsPopk:
    """Popular-news negatives for training batches (``popk`` per sample, 0 = fewer qualified)."""

    def __init__(
        self,
        table,
        n_items: int,
        popk: int,
        metric: str = "count",
        logic: str = "acc",
        bucket: float = 3600,
        window: int = 24,
    ) -> None:
        clicked = table.labels > 0
        impression_of_row = torch.searchsorted(table.offsets, torch.arange(len(table.items)), right=True) - 1
        times = table.times[impression_of_row][clicked].numpy()
        longest = int(table.sizes.max()) if len(table) else 0
        self.popk = int(popk)
        self.n_items = int(n_items)
        self.popularity = PopularityTable(
            table.items[clicked].numpy(),
            times,
            self.n_items,
            metric=metric,
            logic=logic,
            bucket=bucket,
            leak_free=True,
            window=window,
            depth=self.popk + longest + 1,
        )
        # (impression row, item) pairs shown together, for skipping an impression's own news
        self._shown = np.unique(impression_of_row.numpy() * self.n_items + table.items.numpy())

    @classmethod
    def from_config(cls, config: Config, table: ImpressionTable, n_items: int) -> NewsPopk:
        """The sampler from a RecBole config's ``popk*`` keys: news models take the general sampler's settings."""
        return cls(
            table,
            n_items,
            int(config["popk"]),
            metric=str(config["popk_metric"]),
            logic=str(config["popk_logic"]),
            bucket=float(config["popk_bucket"]),
            window=int(config["popk_window"]),
        )

    def extra_negatives(self, table: ImpressionTable, rows: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        """[B, popk] popular news of each sample's time, none shown in its impression (0 = padding)."""
        rows_np = rows.numpy()

        def is_excluded(impressions: np.ndarray, items: np.ndarray) -> np.ndarray:
            return np.isin(impressions * self.n_items + items, self._shown)

        found = self.popularity.lookup(
            table.times[rows].numpy(), positives[:, 0].numpy(), rows_np, self.popk, is_excluded
        )
        return torch.from_numpy(found)
