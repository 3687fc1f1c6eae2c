"""P4R item profiles: an offline, resumable generation stage (template or any causal LM).

    python run_recbole_llm.py profiles --dataset=ml-100k                       # template, no LLM
    python run_recbole_llm.py profiles --dataset=beauty-seq --backend=transformers --llm=Qwen/Qwen2.5-1.5B-Instruct

See :mod:`recbole_llm.profiles.generate` for where the JSON-lines file goes.
"""
from recbole_llm.profiles.attributes import ItemAttributes, collect_item_attributes
from recbole_llm.profiles.backends import TemplateBackend, TransformersBackend
from recbole_llm.profiles.generate import (
    GenerationResult,
    ProfilesMissingError,
    generate_profiles,
    load_item_profiles,
    profile_path,
)
from recbole_llm.profiles.prompt import PromptTemplate, parse_profile, profile_text
from recbole_llm.profiles.store import ProfileSettingsMismatch, ProfileStore, read_profiles

__all__ = [
    "GenerationResult",
    "ItemAttributes",
    "ProfileSettingsMismatch",
    "ProfileStore",
    "ProfilesMissingError",
    "PromptTemplate",
    "TemplateBackend",
    "TransformersBackend",
    "collect_item_attributes",
    "generate_profiles",
    "load_item_profiles",
    "parse_profile",
    "profile_path",
    "profile_text",
    "read_profiles",
]
