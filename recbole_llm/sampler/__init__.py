"""Negative samplers: POPK (popularity-based counterfactual negatives).

The POPK train loader is installed by :func:`recbole_llm.data.data_preparation`; its per-key
defaults live in ``properties/sampler/popk.yaml``.
"""

from recbole_llm.sampler.args import PopkConfigError, is_popk, normalize_popk_args, popk_defaults
from recbole_llm.sampler.popk import PopkSampler, PopkTrainDataLoader
from recbole_llm.sampler.popularity import PopularityTable

__all__ = [
    "PopkConfigError",
    "PopkSampler",
    "PopkTrainDataLoader",
    "PopularityTable",
    "is_popk",
    "normalize_popk_args",
    "popk_defaults",
]
