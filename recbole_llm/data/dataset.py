"""Custom ``<Model>Dataset`` classes, looked up by model name (RecBole's convention)."""
