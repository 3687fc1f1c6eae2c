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
from recbole_llm.text.encoder import encoder_id
from recbole_llm.text.features import embed_texts

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
    config = Config(
        "LightGCN",
        "amazon-gift-cards",
        config_dict={**FAST, "data_path": str(data_root), "text_cache_dir": str(cache_dir)},
    )
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
    config = Config(
        "BPR",
        "ml-100k",
        config_dict={
            **FAST,
            "load_col": {"inter": ["user_id", "item_id"], "user": ["user_id", "occupation"]},
            "user_text_fields": ["occupation"],
        },
    )
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
        cache.add(keys[start : start + 2], vectors[start : start + 2])
    assert len(list((tmp_path / "enc").glob("shard-*.npz"))) < 20
    fresh = EmbeddingCache(tmp_path / "enc")  # another process reading the merged cache
    found, rows = fresh.lookup(keys[::-1])
    assert found.all() and torch.equal(torch.from_numpy(rows), torch.from_numpy(vectors[::-1].copy()))
    assert fresh.lookup([text_hash("never written")])[0].tolist() == [False]


class _CountingModel:
    """Stands in for the transformer: deterministic vectors, counts texts, can fail after n batches."""

    def __init__(self, fail_after_batches: int | None = None) -> None:
        self.batches = 0
        self.encoded: list[str] = []
        self.fail_after_batches = fail_after_batches

    def encode(self, texts, batch_size, show_progress_bar, convert_to_numpy):
        if self.fail_after_batches is not None and self.batches >= self.fail_after_batches:
            raise KeyboardInterrupt("killed (simulated)")
        self.batches += 1
        self.encoded += list(texts)
        return torch.tensor([[float(len(t)), float(sum(map(ord, t)) % 97), 1.0] for t in texts]).numpy()


def test_encoding_is_cached_in_chunks_so_a_kill_keeps_the_work(tmp_path):
    texts = [f"profile text number {i:02d}" for i in range(50)]  # one length: encoded in input order
    killed = TextEncoder(cache_dir=tmp_path, batch_size=4, cache_chunk=8, show_progress=False)
    killed._model = _CountingModel(fail_after_batches=5)  # dies during the 6th batch of 4 texts
    with pytest.raises(KeyboardInterrupt):
        killed.encode(texts)
    resumed = TextEncoder(cache_dir=tmp_path, batch_size=4, cache_chunk=8, show_progress=False)
    model = _CountingModel()
    resumed._model = model
    out = resumed.encode(texts)
    assert resumed.cache_hits == 16 and resumed.cache_misses == 34  # two chunks of 8 survived the kill
    assert model.encoded == texts[16:]
    expected = _CountingModel().encode(texts, 4, False, True)
    assert torch.equal(out, torch.from_numpy(expected))


def test_texts_are_batched_by_length_and_returned_in_input_order(tmp_path):
    """Longest first, so a batch pads little; the rows still come back in the caller's order and the cache
    files each text under its own vector."""
    texts = ["a" * n for n in (3, 40, 7, 25, 1, 12, 33, 5)]
    encoder = TextEncoder(cache_dir=tmp_path, batch_size=2, cache_chunk=4, show_progress=False)
    model = _CountingModel()
    encoder._model = model
    out = encoder.encode(texts)
    assert model.encoded == sorted(texts, key=len, reverse=True)
    expected = torch.from_numpy(_CountingModel().encode(texts, 2, False, True))
    assert torch.equal(out, expected)
    cached = TextEncoder(cache_dir=tmp_path, show_progress=False)
    assert torch.equal(cached.encode(texts[::-1]), expected.flip(0)) and cached.cache_misses == 0


def test_encoding_progress_is_shown_even_with_show_progress_false(tmp_path, capsys):
    encoder = TextEncoder(cache_dir=tmp_path, batch_size=4, show_progress=False)
    encoder._model = _CountingModel()
    encoder.encode([f"t{i}" for i in range(10)])
    err = capsys.readouterr().err
    assert "Encoding texts" in err and "10/10" in err and "text/s" in err


def test_template_profile_counts_distinct_users(tmp_path):
    """Repeated rows of one user (kept by RecBole) must not inflate 'interacted with by N users'."""
    from dataset_converters._common import dataset_settings, write_atomic_file, write_dataset_yaml
    from recbole_llm.profiles.attributes import collect_item_attributes, distinct_users_per_item

    assert distinct_users_per_item([1, 1, 1, 2], [5, 5, 6, 5], 3).tolist() == [0, 2, 1]
    header = ["user_id:token", "item_id:token", "timestamp:float"]
    rows = [["u1", "a", 1], ["u1", "a", 2], ["u1", "a", 3], ["u2", "a", 4], ["u2", "b", 5], ["u3", "b", 6]]
    folder = tmp_path / "rep"
    folder.mkdir()
    write_atomic_file(folder / "rep.inter", header, rows)
    write_dataset_yaml(folder, "rep", dataset_settings(header), "fixture")
    config = Config("P4R", "rep", config_dict={**FAST, "data_path": str(tmp_path)})  # profile settings: P4R's
    dataset = create_dataset(config)
    by_token = {item.token: item for item in collect_item_attributes(config, dataset)}
    assert by_token["a"].rating_summary == "Interacted with by 2 users in the training data."
    assert by_token["b"].rating_summary == "Interacted with by 2 users in the training data."
