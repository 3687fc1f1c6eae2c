"""recbole-llm: LLM-enhanced recommenders as RecBole plugins."""
from recbole_llm import compat as _compat

_compat.apply()

__version__ = "0.1.0"
