"""Custom trainers: ``recbole_llm/trainer/<model lower-case>.py`` defines ``<Model>Trainer``."""
