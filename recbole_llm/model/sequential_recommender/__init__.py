"""Sequential recommenders of recbole-llm: each class is imported from its file on first use (lookup by name)."""

from recbole_llm.model import lazy_exports

__all__ = ["BSARec", "P5Edit"]
__getattr__, __dir__ = lazy_exports(__name__, {name: name.lower() for name in __all__})
