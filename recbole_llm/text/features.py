"""Text side features aligned with RecBole's internal ids.

A model gets its texts from the dataset it was built with (``config[...]`` names the fields), never
by re-reading files: token fields map back to their strings through ``dataset.field2id_token``.
Ids without text get ``mask == False`` (and a zero row), so no model mistakes a missing text for
a real embedding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from recbole.utils import FeatureType

from recbole_llm.config import setting
from recbole_llm.text.encoder import TextEncoder

if TYPE_CHECKING:
    from recbole.config import Config
    from recbole.data.dataset import Dataset

DEFAULT_SEPARATOR = ". "


@dataclass
class TextEmbeddings:
    """Per-id text embeddings.

    ``embeddings``: [n, dim] float32, row ``k`` = RecBole internal id ``k`` (row 0 = padding id)
    or row ``k`` of ``inter_feat``. ``mask``: [n] bool, True where a real, non-empty text exists.
    """

    embeddings: torch.Tensor
    mask: torch.Tensor

    def __post_init__(self) -> None:
        if self.embeddings.shape[0] != self.mask.shape[0]:
            raise ValueError(f"embeddings has {self.embeddings.shape[0]} rows but mask has {self.mask.shape[0]}")

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def to(self, device: torch.device | str) -> TextEmbeddings:
        return TextEmbeddings(self.embeddings.to(device), self.mask.to(device))


def _fields_from_config(config, key: str, fields) -> list[str]:
    if fields is None:
        fields = setting(config, key) or []
    if isinstance(fields, str):
        fields = [fields]
    return list(fields)


def _column(feat, field: str):
    """A column of an Interaction or DataFrame as a Python/NumPy sequence."""
    values = feat[field]
    if isinstance(values, torch.Tensor):
        return values.cpu().numpy()
    if hasattr(values, "to_numpy"):
        return values.to_numpy()
    return np.asarray(values)


def _field_strings(dataset, feat, field: str) -> list[str | None]:
    """One string (or None) per row of ``feat`` for ``field``."""
    ftype = dataset.field2type[field]
    column = _column(feat, field)
    if ftype == FeatureType.TOKEN:
        tokens = dataset.field2id_token[field]
        out: list[str | None] = []
        for token_id in column:
            token_id = int(token_id)
            text = str(tokens[token_id]).strip() if token_id > 0 else ""
            out.append(text or None)
        return out
    if ftype == FeatureType.TOKEN_SEQ:
        tokens = dataset.field2id_token[field]
        out = []
        for row in column:
            words = [str(tokens[int(t)]) for t in np.atleast_1d(row) if int(t) > 0]
            text = " ".join(words).strip()
            out.append(text or None)
        return out
    if ftype == FeatureType.FLOAT:
        out = []
        for value in column:
            value = float(value)
            out.append(None if math.isnan(value) else f"{value:g}")
        return out
    raise ValueError(f"Text field '{field}' has type {ftype.value}: only token, token_seq and float fields hold text")


def _joined_texts(config, dataset, feat, fields: list[str], where: str, n_rows: int) -> list[str | None]:
    if not fields:
        return [None] * n_rows
    if feat is None:
        raise ValueError(
            f"Text fields {fields} were asked for, but the dataset has no {where} features loaded: "
            f"check that the {where} atomic file exists and load_col includes them."
        )
    loaded = set(feat.columns) if hasattr(feat, "columns") else set(feat.interaction.keys())
    missing = [f for f in fields if f not in loaded]
    if missing:
        raise ValueError(
            f"Text field(s) {missing} are not loaded in the dataset's {where} features (loaded: "
            f"{sorted(loaded)}): add them to load_col in the dataset yaml or config."
        )
    separator = setting(config, "text_field_separator")
    per_field = [_field_strings(dataset, feat, f) for f in fields]
    texts: list[str | None] = []
    for parts in zip(*per_field):
        kept = [p for p in parts if p]
        texts.append(separator.join(kept) if kept else None)
    return texts


def item_texts(config: Config, dataset: Dataset, fields: Sequence[str] | None = None) -> list[str | None]:
    """Joined item text per internal item id (index 0 = padding, None = no text)."""
    fields = _fields_from_config(config, "item_text_fields", fields)
    return _joined_texts(config, dataset, dataset.item_feat, fields, "item", dataset.item_num)


def user_texts(config: Config, dataset: Dataset, fields: Sequence[str] | None = None) -> list[str | None]:
    """Joined user text per internal user id (index 0 = padding, None = no text)."""
    fields = _fields_from_config(config, "user_text_fields", fields)
    return _joined_texts(config, dataset, dataset.user_feat, fields, "user", dataset.user_num)


def interaction_texts(config: Config, dataset: Dataset, fields: Sequence[str] | None = None) -> list[str | None]:
    """Joined text per row of ``dataset.inter_feat`` (None = no text)."""
    fields = _fields_from_config(config, "inter_text_fields", fields)
    return _joined_texts(config, dataset, dataset.inter_feat, fields, "interaction", len(dataset.inter_feat))


def embed_texts(texts: Sequence[str | None], encoder: TextEncoder) -> TextEmbeddings:
    """Encode the non-missing texts; missing ones get a zero row and ``mask == False``."""
    mask = torch.tensor([t is not None for t in texts], dtype=torch.bool)
    present = [t for t in texts if t is not None]
    if present:
        encoded = encoder.encode(present)
        embeddings = torch.zeros((len(texts), encoded.shape[1]), dtype=torch.float32)
        embeddings[mask] = encoded
    else:
        embeddings = torch.zeros((len(texts), encoder.dim), dtype=torch.float32)
    return TextEmbeddings(embeddings, mask)


def _encoder(config, encoder: TextEncoder | None) -> TextEncoder:
    return encoder if encoder is not None else TextEncoder.from_config(config)


def item_text_embeddings(
    config: Config, dataset: Dataset, fields: Sequence[str] | None = None, encoder: TextEncoder | None = None
) -> TextEmbeddings:
    """Per internal item id: [dataset.item_num, dim]; fields default to ``config['item_text_fields']``."""
    return embed_texts(item_texts(config, dataset, fields), _encoder(config, encoder))


def user_text_embeddings(
    config: Config, dataset: Dataset, fields: Sequence[str] | None = None, encoder: TextEncoder | None = None
) -> TextEmbeddings:
    """Per internal user id: [dataset.user_num, dim]; fields default to ``config['user_text_fields']``."""
    return embed_texts(user_texts(config, dataset, fields), _encoder(config, encoder))


def interaction_text_embeddings(
    config: Config, dataset: Dataset, fields: Sequence[str] | None = None, encoder: TextEncoder | None = None
) -> TextEmbeddings:
    """Per row of ``dataset.inter_feat``; pass the TRAIN split (what ``model.__init__`` receives)
    so no validation/test text is read. Fields default to ``config['inter_text_fields']``."""
    return embed_texts(interaction_texts(config, dataset, fields), _encoder(config, encoder))
