"""News recommendation on impression logs: impression loaders, POPK on news, the news trainer.

The models live in :mod:`recbole_llm.model.news_recommender`; the metrics in
:mod:`recbole_llm.metrics.news`; the converter in :mod:`dataset_converters.mind` (``--format benchmark``).
"""

from recbole_llm.news.data import (
    ImpressionEvalDataLoader,
    ImpressionTable,
    ImpressionTrainDataLoader,
    NewsDataError,
    impression_table,
    news_data_preparation,
)
from recbole_llm.news.trainer import NewsTrainer

__all__ = [
    "ImpressionEvalDataLoader",
    "ImpressionTable",
    "ImpressionTrainDataLoader",
    "NewsDataError",
    "NewsTrainer",
    "impression_table",
    "news_data_preparation",
]
