"""News recommenders on impression logs (one model per file; file name = class name lower-cased).

Shared pieces (base class, encoders, impression loaders, trainer) are in :mod:`recbole_llm.news`.
"""

from recbole_llm.model.news_recommender.awrs import AWRS
from recbole_llm.model.news_recommender.lstur import LSTUR
from recbole_llm.model.news_recommender.naml import NAML
from recbole_llm.model.news_recommender.nrms import NRMS

__all__ = ["AWRS", "LSTUR", "NAML", "NRMS"]
