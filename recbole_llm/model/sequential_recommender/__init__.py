"""Sequential recommenders of recbole-llm: every model class is imported here, so lookup by name finds it."""

from recbole_llm.model.sequential_recommender.bsarec import BSARec
from recbole_llm.model.sequential_recommender.p5edit import P5Edit

__all__ = ["BSARec", "P5Edit"]
