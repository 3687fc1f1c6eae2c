"""Extra RecBole metrics, usable by name in ``metrics: [...]``.

They are written into RecBole's metric registry by the ``metric_registry`` patch of
:mod:`recbole_llm.compat` (applied when ``recbole_llm`` is imported).
"""

from __future__ import annotations

from recbole_llm.metrics.category_diversity import ITEM_CATEGORIES, CategoryDiversity, item_category_matrix
from recbole_llm.metrics.news import NEWS_METRICS

METRICS = (CategoryDiversity, *NEWS_METRICS)

__all__ = ["CategoryDiversity", "ITEM_CATEGORIES", "METRICS", "item_category_matrix", "register_metrics"]


def register_metrics() -> None:
    """Make our metrics usable by name (idempotent): applies :mod:`recbole_llm.compat`, which registers them."""
    from recbole_llm import compat

    compat.apply()
