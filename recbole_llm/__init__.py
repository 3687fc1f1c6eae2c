"""recbole-llm: LLM-enhanced recommenders as RecBole plugins."""

from recbole_llm import compat as _compat

_compat.apply()  # every RecBole patch, incl. registering our metrics (see recbole_llm/compat.py)

__version__ = "0.1.0"
