"""Text side features: a cached sentence-transformers encoder and per-id text embeddings.

``TextEncoder`` turns strings into vectors (cached on disk by encoder and text hash);
``item_text_embeddings`` / ``user_text_embeddings`` / ``interaction_text_embeddings`` give a model
embeddings aligned with RecBole's internal ids, plus a mask of which ids really have text.
"""

from recbole_llm.text.encoder import DEFAULT_TEXT_ENCODER, EmbeddingCache, TextEncoder
from recbole_llm.text.features import (
    TextEmbeddings,
    interaction_text_embeddings,
    interaction_texts,
    item_text_embeddings,
    item_texts,
    user_text_embeddings,
    user_texts,
)

__all__ = [
    "DEFAULT_TEXT_ENCODER",
    "EmbeddingCache",
    "TextEmbeddings",
    "TextEncoder",
    "interaction_text_embeddings",
    "interaction_texts",
    "item_text_embeddings",
    "item_texts",
    "user_text_embeddings",
    "user_texts",
]
