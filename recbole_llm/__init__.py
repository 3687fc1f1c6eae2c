"""recbole-llm: LLM-enhanced recommenders as RecBole plugins."""
from recbole_llm import compat as _compat

_compat.apply()

from recbole_llm.metrics import register_metrics as _register_metrics  # noqa: E402

_register_metrics()  # CategoryDiversity usable in `metrics: [...]`

__version__ = "0.1.0"
