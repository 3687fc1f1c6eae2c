"""Negative samplers: POPK (popularity-based counterfactual negatives)."""
from recbole_llm.sampler.args import POPK_DEFAULTS, PopkConfigError, is_popk, normalize_popk_args
from recbole_llm.sampler.popk import PopkSampler, PopkTrainDataLoader, popk_data_preparation
from recbole_llm.sampler.popularity import PopularityTable

__all__ = [
    "POPK_DEFAULTS",
    "PopkConfigError",
    "PopkSampler",
    "PopkTrainDataLoader",
    "PopularityTable",
    "is_popk",
    "normalize_popk_args",
    "popk_data_preparation",
]
