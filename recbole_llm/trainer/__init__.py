"""Custom trainers, looked up by name as ``<Model>Trainer`` (RecBole's convention)."""
