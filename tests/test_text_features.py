"""Text encoder, its on-disk cache, and text embeddings aligned with RecBole's internal ids."""
from __future__ import annotations

import gzip
import json

import pytest
import torch

from recbole_llm.config import Config
from recbole_llm.data import create_dataset, data_preparation
from recbole_llm.text import (
    TextEncoder,
    interaction_text_embeddings,
    interaction_texts,
    item_text_embeddings,
    item_texts,
    user_text_embeddings,
)
from recbole_llm.text.features import embed_texts
from recbole_llm.text.encoder import encoder_id
FAST = {"epochs": 1, "show_progress": False, "state": "ERROR", "use_gpu": False}


@pytest.fixture(scope="module")
def beauty_titles(shared_datasets) -> list[str]:
    lines = (shared_datasets / "amazon-2014-beauty" / "Amazon_Beauty.item").read_text(encoding="utf-8").splitlines()
    return [line.split("\t")[1] for line in lines[1:61]]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("text_cache")


@pytest.fixture(scope="module")
def encoder(cache_dir) -> TextEncoder:
    return TextEncoder(cache_dir=cache_dir, show_progress=False)


@pytest.fixture(scope="module")
def gift_cards(tmp_path_factory, cache_dir):
    """amazon-gift-cards converted from the raw files, loaded and split by RecBole."""
    data_root = tmp_path_factory.mktemp("data")
    config = Config("LightGCN", "amazon-gift-cards",
                    config_dict={**FAST, "data_path": str(data_root), "text_cache_dir": str(cache_dir)})
    dataset = create_dataset(config)
    train, _, _ = data_preparation(config, dataset)
    return config, dataset, train.dataset


def test_encoder_matches_sentence_transformers_and_caches(encoder, beauty_titles, cache_dir):
    first = encoder
    beauty_titles = beauty_titles[:40]
    vectors = first.encode(beauty_titles)
    assert vectors.shape == (len(beauty_titles), 384) and vectors.dtype == torch.float32
    assert first.dim == 384
    direct = first.model.encode(beauty_titles, convert_to_tensor=True).cpu()
    assert torch.allclose(vectors, direct, atol=1e-5)
    assert first.cache_misses == len(set(beauty_titles))
    # A second encoder (a "second run") reads everything from disk and never loads the model.
    second = TextEncoder(cache_dir=cache_dir, show_progress=False)
    again = second.encode(beauty_titles)
    assert second.cache_hits == len(set(beauty_titles)) and second.cache_misses == 0
    assert second._model is None
    assert torch.equal(again, vectors)
    shards = list((cache_dir / second.id).iterdir())
    assert shards and all(p.name.startswith("shard-") for p in shards), "no temporary files may remain"


def test_encoder_encodes_new_texts_only_and_deduplicates(encoder, beauty_titles):
    encoder.encode(beauty_titles[40:50])
    hits, misses = encoder.cache_hits, encoder.cache_misses
    texts = beauty_titles[45:55] + beauty_titles[45:55]  # 5 cached, 5 new, each twice
    out = encoder.encode(texts)
    assert encoder.cache_hits - hits == 5 and encoder.cache_misses - misses == 5
    assert torch.equal(out[:10], out[10:])


def test_encoder_rejects_missing_text_and_resolves_default_offline(encoder):
    with pytest.raises(TypeError, match="item 1 is NoneType"):
        encoder.encode(["a title", None])
    assert encoder_id("all-MiniLM-L6-v2") == encoder_id("sentence-transformers/all-MiniLM-L6-v2")
    assert encoder.encode([]).shape == (0, 384)


def test_item_embeddings_align_with_recbole_ids(gift_cards, encoder, shared_datasets):
    config, dataset, _ = gift_cards
    meta = {}
    with gzip.open(shared_datasets / "amazon-2018-5core" / "meta_Gift_Cards.json.gz", "rt") as handle:
        for line in handle:
            record = json.loads(line)
            meta.setdefault(record["asin"], record)
    texts = item_texts(config, dataset)
    assert len(texts) == dataset.item_num and texts[0] is None  # padding id
    for item_id in (1, 7, dataset.item_num - 1):
        asin = dataset.id2token(dataset.iid_field, item_id)
        assert texts[item_id].startswith(meta[asin]["title"].strip())
    # Titles only: long descriptions are slow to encode on 2 shared cores; alignment is the same code.
    features = item_text_embeddings(config, dataset, fields=["title"], encoder=encoder)
    assert features.embeddings.shape == (dataset.item_num, 384)
    assert not features.mask[0] and features.mask[1:].all()
    assert torch.count_nonzero(features.embeddings[0]) == 0
    for item_id in (1, 7, dataset.item_num - 1):
        title = meta[dataset.id2token(dataset.iid_field, item_id)]["title"].strip()
        assert torch.allclose(features.embeddings[item_id], encoder.encode([title])[0], atol=1e-6)


def test_interaction_texts_use_train_rows_and_mask_empty_reviews(gift_cards, encoder):
    config, dataset, train = gift_cards
    reviews = interaction_texts(config, train, fields=["review_text"])
    assert len(reviews) == len(train.inter_feat) < len(dataset.inter_feat)
    missing = [i for i, t in enumerate(reviews) if t is None]
    assert 0 < len(missing) <= 6  # the raw file has 6 reviews without text
    # Per-row embeddings through the public API on a field with few distinct texts (fast to encode).
    ratings = interaction_text_embeddings(config, train, fields=["rating"], encoder=encoder)
    assert ratings.embeddings.shape == (len(train.inter_feat), 384) and ratings.mask.all()
    five = encoder.encode(["5"])[0]
    is_five = train.inter_feat["rating"] == 5.0
    assert torch.allclose(ratings.embeddings[is_five], five.expand(int(is_five.sum()), -1))
    assert not torch.allclose(ratings.embeddings[~is_five][0], five)
    both = interaction_texts(config, train)  # inter_text_fields: [summary, review_text]
    row = next(i for i, t in enumerate(reviews) if t)
    summary = interaction_texts(config, train, fields=["summary"])[row]
    assert both[row] == f"{summary}. {reviews[row]}"
    assert all(both[i] == interaction_texts(config, train, fields=["summary"])[i] for i in missing)


def test_missing_text_is_masked_not_a_silent_zero(gift_cards, encoder):
    config, dataset, train = gift_cards
    # Real reviews, with the empty ones first: the mask marks exactly the rows without text.
    texts = interaction_texts(config, train, fields=["review_text"])
    texts = [t for t in texts if t is None] + [t for t in texts if t][:8]
    features = embed_texts(texts, encoder)
    assert features.mask.tolist() == [t is not None for t in texts] and not features.mask.all()
    assert torch.count_nonzero(features.embeddings[~features.mask]) == 0
    assert features.embeddings[features.mask].norm(dim=1).min() > 0.5
    no_user_text = user_text_embeddings(config, dataset, encoder=encoder)  # no user text on this dataset
    assert no_user_text.embeddings.shape == (dataset.user_num, 384) and not no_user_text.mask.any()


def test_user_text_from_ml100k_and_missing_field_error(encoder):
    config = Config("BPR", "ml-100k", config_dict={
        **FAST, "load_col": {"inter": ["user_id", "item_id"], "user": ["user_id", "occupation"]},
        "user_text_fields": ["occupation"]})
    dataset = create_dataset(config)
    features = user_text_embeddings(config, dataset, encoder=encoder)
    assert features.embeddings.shape == (dataset.user_num, 384) and features.mask[1:].all()
    occupation = dataset.field2id_token["occupation"][int(dataset.user_feat["occupation"][5])]
    assert torch.allclose(features.embeddings[5], encoder.encode([occupation])[0])
    with pytest.raises(ValueError, match="movie_title.*load_col"):
        item_texts(config, dataset)  # ml-100k.yaml names title + genre, this config did not load them


def test_from_config_caches_next_to_the_dataset(gift_cards):
    config, _, _ = gift_cards
    encoder = TextEncoder.from_config(config)
    assert encoder.batch_size == config["text_batch_size"] == 64
    assert str(encoder.cache.folder).startswith(config["text_cache_dir"])


def test_cache_shards_are_merged_and_stay_readable(tmp_path):
    from recbole_llm.text.encoder import EmbeddingCache, text_hash

    cache = EmbeddingCache(tmp_path / "enc")
    keys = [text_hash(f"text {i}") for i in range(40)]
    vectors = torch.randn(40, 8).numpy()
    for start in range(0, 40, 2):  # 20 small writes -> merged after the 17th
        cache.add(keys[start:start + 2], vectors[start:start + 2])
    assert len(list((tmp_path / "enc").glob("shard-*.npz"))) < 20
    fresh = EmbeddingCache(tmp_path / "enc")  # another process reading the merged cache
    found, rows = fresh.lookup(keys[::-1])
    assert found.all() and torch.equal(torch.from_numpy(rows), torch.from_numpy(vectors[::-1].copy()))
    assert fresh.lookup([text_hash("never written")])[0].tolist() == [False]
