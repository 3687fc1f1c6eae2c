"""General recommenders of recbole-llm: every model class is imported here, so lookup by name finds it."""

from recbole_llm.model.general_recommender.p4r import P4R
from recbole_llm.model.general_recommender.reviewgnn import ReviewGCN, ReviewGNN

__all__ = ["P4R", "ReviewGCN", "ReviewGNN"]
