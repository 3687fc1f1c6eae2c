"""Sequential recommenders of recbole-llm: every model class is imported here, so lookup by name finds it."""

from recbole_llm.model.sequential_recommender.bsarec import BSARec

__all__ = ["BSARec"]
