"""General recommenders of recbole-llm: each class is imported from its file on first use (lookup by name)."""

from recbole_llm.model import lazy_exports

__all__ = ["P4R", "ReviewGCN", "ReviewGNN"]
__getattr__, __dir__ = lazy_exports(__name__, {"P4R": "p4r", "ReviewGCN": "reviewgnn", "ReviewGNN": "reviewgnn"})
