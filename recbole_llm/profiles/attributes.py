"""What is known about each item: intrinsic attributes (facts) and extrinsic ones (user feedback).

P4R splits item information into intrinsic attributes (title, categories, brand, price: stable
facts from the ``.item`` atomic file) and extrinsic attributes (ratings and reviews). Extrinsic
attributes are read only from the dataset passed in, which should be the TRAINING split: a
profile that mentioned test-time ratings or reviews would leak the answer into the model.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from recbole.utils import FeatureType

from recbole_llm.config import setting

if TYPE_CHECKING:
    from recbole.config import Config
    from recbole.data.dataset import Dataset

logger = logging.getLogger(__name__)

# Human labels for well-known field names; ``profile_field_labels`` in the config adds to these.
DEFAULT_FIELD_LABELS = {
    "movie_title": "Title",
    "title": "Title",
    "release_year": "Release year",
    "class": "Genres",
    "genre": "Genres",
    "categories": "Categories",
    "category": "Categories",
    "brand": "Brand",
    "price": "Price",
    "description": "Description",
    "sales_type": "Sales category",
    "sales_rank": "Sales rank",
}


@dataclass
class ItemAttributes:
    """One item's raw material for its profile, keyed by its original token (not the remapped id)."""

    token: str
    intrinsic: list[tuple[str, str]] = field(default_factory=list)  # (label, value)
    rating_summary: str | None = None
    reviews: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.intrinsic[0][1] if self.intrinsic else self.token

    def attributes_text(self) -> str:
        return "\n".join(f"{label}: {value}" for label, value in self.intrinsic) or f"Item id: {self.token}"

    def feedback_text(self) -> str:
        lines = [self.rating_summary] if self.rating_summary else []
        lines += [f'Review: "{review}"' for review in self.reviews]
        return "\n".join(lines) or "No user feedback available."


def _array(column) -> np.ndarray:
    """A column of an Interaction (tensor) or of a not-yet-built dataset's DataFrame as NumPy."""
    return column.cpu().numpy() if hasattr(column, "cpu") else np.asarray(column)


def field_label(name: str, config: Config | None = None) -> str:
    labels = dict(DEFAULT_FIELD_LABELS)
    labels.update((setting(config, "profile_field_labels") if config is not None else None) or {})
    return labels.get(name, name.replace("_", " ").strip().capitalize())


def _clean(text: str, max_chars: int | None = None) -> str:
    text = " ".join(str(text).split())
    if max_chars and len(text) > max_chars:
        text = text[: max_chars - 3].rstrip() + "..."
    return text


def _intrinsic_from_dataset(config, dataset, fields: list[str] | None) -> dict[str, list[tuple[str, str]]] | None:
    """Attributes read from the loaded ``item_feat`` (None when it holds no attribute field)."""
    feat = dataset.item_feat
    iid = dataset.iid_field
    if feat is None:
        return None
    loaded = [f for f in feat.columns if f != iid]
    if fields is None:
        fields = [
            f for f in loaded if dataset.field2type[f] in (FeatureType.TOKEN, FeatureType.TOKEN_SEQ, FeatureType.FLOAT)
        ]
    elif any(f not in loaded for f in fields):
        return None
    if not fields:
        return None
    from recbole_llm.text import item_texts

    ids = _array(feat[iid])
    tokens = dataset.field2id_token[iid]
    out: dict[str, list[tuple[str, str]]] = {}
    per_field = {f: item_texts(config, dataset, fields=[f]) for f in fields}
    # item_texts is indexed by internal item id; feat rows are too, but go through the id column.
    for item_id in ids:
        item_id = int(item_id)
        if item_id == 0:
            continue
        values = [(field_label(f, config), _clean(per_field[f][item_id])) for f in fields if per_field[f][item_id]]
        out[str(tokens[item_id])] = values
    return out


def _intrinsic_from_file(config, dataset, fields: list[str] | None) -> dict[str, list[tuple[str, str]]]:
    """Attributes read straight from ``<data_path>/<dataset>.item`` (when load_col left them out).

    Keyed by the raw item token, so no id remapping is involved.
    """
    path = Path(config["data_path"]) / f"{config['dataset']}.item"
    if not path.is_file():
        logger.warning("No item attributes: %s does not exist and the dataset loaded no item fields.", path)
        return {}
    separator = config["field_separator"] or "\t"
    seq_separator = config["seq_separator"] or " "
    iid = dataset.iid_field
    out: dict[str, list[tuple[str, str]]] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter=separator, quoting=csv.QUOTE_NONE)
        header = next(reader)
        names = [h.split(":")[0] for h in header]
        types = [h.split(":")[1] if ":" in h else "token" for h in header]
        if iid not in names:
            logger.warning("No item attributes: %s has no '%s' column.", path, iid)
            return {}
        id_col = names.index(iid)
        wanted = (
            fields
            if fields is not None
            else [n for n, t in zip(names, types) if n != iid and t in ("token", "token_seq", "float")]
        )
        columns = [(names.index(f), f, types[names.index(f)]) for f in wanted if f in names]
        for row in reader:
            if len(row) <= id_col:
                continue
            values = []
            for col, name, ftype in columns:
                value = row[col].strip() if col < len(row) else ""
                if ftype == "token_seq" and seq_separator != " ":
                    value = ", ".join(v for v in value.split(seq_separator) if v)
                if value:
                    values.append((field_label(name, config), _clean(value)))
            out[row[id_col]] = values
    return out


def _normalised_float_fields(config, dataset, fields: list[str] | None) -> list[str]:
    if dataset.item_feat is None:
        return []
    candidates = fields if fields is not None else [f for f in dataset.item_feat.columns if f != dataset.iid_field]
    floats = [f for f in candidates if dataset.field2type.get(f) == FeatureType.FLOAT]
    if setting(config, "normalize_all"):
        return floats
    normalised = set(setting(config, "normalize_field") or [])
    return [f for f in floats if f in normalised]


def _rating_phrase(count: int, ratings: np.ndarray | None) -> str:
    noun = "user" if count == 1 else "users"
    text = f"Interacted with by {count} {noun} in the training data"
    if ratings is not None and len(ratings):
        mean = float(np.mean(ratings))
        if np.allclose(ratings, np.round(ratings)) and ratings.max() > 1:
            text += f"; average rating {mean:.1f} out of {round(float(ratings.max()))}"
        elif not math.isnan(mean):
            text += f"; average rating {100 * mean:.0f}% of the rating scale"
    return text + "."


def distinct_users_per_item(item_ids: np.ndarray, user_ids: np.ndarray, item_num: int) -> np.ndarray:
    """Per item id, how many DIFFERENT users interacted with it (repeated rows of one user count once)."""
    pairs = np.unique(np.stack([np.asarray(item_ids, dtype=np.int64), np.asarray(user_ids, dtype=np.int64)]), axis=1)
    return np.bincount(pairs[0], minlength=item_num)


def _add_extrinsic(config, dataset, train_dataset, items: list[ItemAttributes]) -> None:
    """Rating summary (distinct users, mean rating) and a few reviews per item, from the training split."""
    iid = dataset.iid_field
    inter = train_dataset.inter_feat
    item_ids = _array(inter[iid]).astype(np.int64)
    counts = np.bincount(item_ids, minlength=dataset.item_num)
    user_counts = distinct_users_per_item(item_ids, _array(inter[dataset.uid_field]), dataset.item_num)
    rating_field = setting(config, "RATING_FIELD")
    ratings = _array(inter[rating_field]).astype(float) if rating_field in inter.columns else None
    order = np.argsort(item_ids, kind="stable")
    bounds = np.searchsorted(item_ids[order], np.arange(dataset.item_num + 1))
    review_field = setting(config, "profile_review_field")
    max_reviews = int(setting(config, "profile_max_reviews"))
    review_chars = int(setting(config, "profile_review_chars"))
    review_texts = None
    if review_field and review_field in inter.columns and max_reviews > 0:
        from recbole_llm.text import interaction_texts

        review_texts = interaction_texts(config, train_dataset, fields=[review_field])
    for item_id, item in enumerate(items, start=1):
        rows = order[bounds[item_id] : bounds[item_id + 1]]
        if counts[item_id] == 0:
            item.rating_summary = "No interactions in the training data."
            continue
        item.rating_summary = _rating_phrase(int(user_counts[item_id]), ratings[rows] if ratings is not None else None)
        if review_texts is not None:
            for row in rows:
                text = review_texts[int(row)]
                if text:
                    item.reviews.append(_clean(text, review_chars))
                if len(item.reviews) >= max_reviews:
                    break


def collect_item_attributes(
    config: Config, dataset: Dataset, train_dataset: Dataset | None = None
) -> list[ItemAttributes]:
    """Attributes of every item of ``dataset`` (padding excluded), in internal id order.

    ``train_dataset`` (default: ``dataset``) supplies the extrinsic attributes; pass the training
    split. Config keys: ``profile_item_fields`` (None = every token/float item field),
    ``profile_field_labels``, ``profile_extrinsic``, ``profile_review_field``,
    ``profile_max_reviews``, ``profile_review_chars``.
    """
    train_dataset = train_dataset if train_dataset is not None else dataset
    fields = setting(config, "profile_item_fields")
    fields = list(fields) if fields else None
    intrinsic = _intrinsic_from_dataset(config, dataset, fields)
    if intrinsic is None:
        intrinsic = _intrinsic_from_file(config, dataset, fields)
    else:
        # RecBole min-max scales float fields (normalize_all): their raw values come from the file.
        scaled = _normalised_float_fields(config, dataset, fields)
        if scaled:
            raw = _intrinsic_from_file(config, dataset, scaled)
            for token, values in intrinsic.items():
                scaled_labels = {field_label(f, config) for f in scaled}
                intrinsic[token] = [v for v in values if v[0] not in scaled_labels] + raw.get(token, [])

    iid = dataset.iid_field
    tokens = dataset.field2id_token[iid]
    items = [
        ItemAttributes(token=str(tokens[i]), intrinsic=intrinsic.get(str(tokens[i]), []))
        for i in range(1, dataset.item_num)
    ]

    if setting(config, "profile_extrinsic"):
        _add_extrinsic(config, dataset, train_dataset, items)
    return items


def split_fingerprint(train_dataset: Dataset) -> str:
    """Short hash of the training interactions (user, item): names the split profiles were built on."""
    inter = train_dataset.inter_feat
    users = _array(inter[train_dataset.uid_field]).astype(np.int64)
    items = _array(inter[train_dataset.iid_field]).astype(np.int64)
    utok = np.asarray(train_dataset.field2id_token[train_dataset.uid_field])[users]
    itok = np.asarray(train_dataset.field2id_token[train_dataset.iid_field])[items]
    pairs = sorted(zip(utok.tolist(), itok.tolist()))
    digest = hashlib.sha256()
    for user, item in pairs:
        digest.update(f"{user}\t{item}\n".encode())
    return digest.hexdigest()[:12]


def attribute_settings(config: Config) -> dict[str, Any]:
    """The config values that change what goes into a profile (recorded in the profile file)."""
    keys = (
        "profile_item_fields",
        "profile_field_labels",
        "profile_extrinsic",
        "profile_review_field",
        "profile_max_reviews",
        "profile_review_chars",
    )
    return {k: setting(config, k) for k in keys}


def writable_dir(path: str | os.PathLike) -> bool:
    path = Path(path)
    while not path.exists():
        path = path.parent
    return os.access(path, os.W_OK)
