"""recbole-llm models, one per file, imported by type in ``recbole_llm/model/<type>/__init__.py``."""
