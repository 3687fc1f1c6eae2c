"""News recommenders on impression logs (one model per file; file name = class name lower-cased).

Shared pieces (base class, encoders, impression loaders, trainer) are in :mod:`recbole_llm.news`. Each class
is imported from its file on first use.
"""

from recbole_llm.model import lazy_exports

__all__ = ["AWRS", "LSTUR", "NAML", "NRMS"]
__getattr__, __dir__ = lazy_exports(__name__, {name: name.lower() for name in __all__})
