"""Extra RecBole metrics (registered into RecBole's metric registry by :func:`register_metrics`)."""
from __future__ import annotations

from recbole_llm.metrics.category_diversity import ITEM_CATEGORIES, CategoryDiversity, item_category_matrix
from recbole_llm.metrics.news import NEWS_METRICS

METRICS = (CategoryDiversity, *NEWS_METRICS)

__all__ = ["CategoryDiversity", "ITEM_CATEGORIES", "METRICS", "item_category_matrix", "register_metrics"]


def register_metrics() -> None:
    """Make our metrics usable by name in ``metrics: [...]`` (idempotent).

    RecBole builds its registry once from ``recbole.evaluator.metrics``; Config, Register and
    Evaluator read the same dict objects, so adding entries in place is enough.
    """
    from recbole.evaluator import register

    for metric in METRICS:
        name = metric.__name__.lower()
        register.metrics_dict[name] = metric
        register.metric_information[name] = metric.metric_need
        register.metric_types[name] = metric.metric_type
        if metric.smaller and name not in register.smaller_metrics:
            register.smaller_metrics.append(name)
