"""Sequential recommenders (one model per file; file name = class name lower-cased)."""
from recbole_llm.model.sequential_recommender.p5edit import P5Edit  # noqa: F401
