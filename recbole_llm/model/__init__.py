"""recbole-llm models, one per file, looked up by name like RecBole's."""
