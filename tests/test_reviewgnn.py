"""ReviewGNN on the real Gift_Cards_5 reviews (458 users, 148 items): one-epoch runs, gradients,
adaptive alpha, users without reviews, the GCN baseline, and the no-leakage guarantee.

The tests encode the default review text (summary + full review) with a tiny randomly
initialised BERT built with MiniLM's tokenizer: what they check (graph, gradients, leakage) does
not depend on the quality of the embeddings, and encoding the reviews with all-MiniLM-L6-v2 on two
shared CPU cores costs about a minute of the suite's budget (the text feature tests cover MiniLM;
the benchmark uses it).
"""

from __future__ import annotations

import shutil
from contextlib import chdir
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from recbole.utils import init_seed

from recbole_llm.config import Config
from recbole_llm.data import create_dataset, data_preparation
from recbole_llm.model.general_recommender.reviewgnn import ReviewGCN, ReviewGNN
from recbole_llm.quick_start import build
from recbole_llm.text import encoder as encoder_module
from recbole_llm.utils import get_model

from conftest import FAST, save_tiny_encoder

DATASET = "amazon-gift-cards"
EVAL = {
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
    "metrics": ["Recall", "MRR", "NDCG", "Hit"],
    "topk": [10],
    "valid_metric": "NDCG@10",
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """Atomic files of amazon-gift-cards converted once from the raw data, a text cache, and a
    tiny sentence encoder (``root/tiny_encoder``)."""
    root = tmp_path_factory.mktemp("reviewgnn")
    save_tiny_encoder(root / "tiny_encoder")
    config = _config(root / "data", root / "cache")
    create_dataset(config)  # converts the named dataset into root/data/amazon-gift-cards/
    return root


def _config(data_path: Path, cache: Path, model="ReviewGNN", **overrides) -> Config:
    values = {
        **FAST,
        **EVAL,
        "data_path": str(data_path),
        "text_cache_dir": str(cache),
        "seed": 7,
        "text_encoder": str(cache.parent / "tiny_encoder"),
        "text_batch_size": 256,
        **overrides,
    }
    return Config(model, DATASET, config_dict=values)


def _inter_file(data_path: Path) -> Path:
    return data_path / DATASET / f"{DATASET}.inter"


def _copy_data(data_root: Path, name: str) -> Path:
    target = data_root / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(data_root / "data" / DATASET, target / DATASET)
    return target


def _read_inter(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)


def _write_inter(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, sep="\t", index=False, quoting=3)


def _text_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.split(":")[0] in ("review_text", "summary")]


@pytest.fixture(scope="module")
def built(data_root):
    """Dataset, loaders and an untrained ReviewGNN built like the quick start does (in the module's own folder:
    RecBole's trainer makes ``saved/`` and ``log_tensorboard/`` in the working directory)."""
    config = _config(data_root / "data", data_root / "cache")
    with chdir(data_root):
        return build(config)


class _EncodeSpy:
    """Records every text handed to the sentence encoder (cache hits included)."""

    def __init__(self, monkeypatch):
        self.texts: list[str] = []
        original = encoder_module.TextEncoder.encode

        def encode(encoder, texts):
            self.texts.extend(texts)
            return original(encoder, texts)

        monkeypatch.setattr(encoder_module.TextEncoder, "encode", encode)


# ----------------------------------------------------------------------------- entry point
def test_one_epoch_through_entry_point(data_root, capsys):
    from recbole_llm.cli import main

    code = main(
        [
            "--model=ReviewGNN",
            f"--dataset={DATASET}",
            f"--data_path={data_root / 'data'}",
            f"--text_cache_dir={data_root / 'cache'}",
            f"--text_encoder={data_root / 'tiny_encoder'}",
            "--epochs=1",
            "--show_progress=False",
            "--state=ERROR",
            "--use_gpu=False",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "test result" in out and "hit@10" in out and "ndcg@10" in out


# ----------------------------------------------------------------------------- structure
def test_graph_comes_from_training_pairs(built):
    dataset, train_data, _, test_data, model, _ = built
    train = train_data._dataset
    assert isinstance(model, ReviewGNN) and model.use_reviews
    n_train_pairs = len(set(zip(train.inter_feat["user_id"].tolist(), train.inter_feat["item_id"].tolist())))
    # purchase adjacency: both directions of every training pair, nothing else
    assert model.adjacency.layout == torch.sparse_csr
    assert model.adjacency._nnz() == 2 * n_train_pairs
    assert 0 < model.n_review_edges <= n_train_pairs
    assert model.review_embeddings.shape == (model.n_review_edges, 32)  # the tiny encoder's size
    # no test pair is a review edge
    test_keys = test_data._dataset.inter_feat["user_id"] * model.n_items + test_data._dataset.inter_feat["item_id"]
    assert not torch.isin(test_keys, model.review_pair_keys).any()


def test_review_embeddings_are_centred_on_training_reviews(built, data_root):
    model = built[4]
    assert model.center_reviews
    assert model.review_embeddings.mean(dim=0).abs().max() < 1e-5
    raw = ReviewGNN(_config(data_root / "data", data_root / "cache", center_reviews=False), built[1]._dataset)
    assert torch.allclose(raw.review_embeddings - raw.review_embeddings.mean(dim=0), model.review_embeddings, atol=1e-6)


def test_hide_target_reviews_masks_exactly_the_batch_reviews(built, data_root):
    """A batch below the cap hides exactly its own reviews and keeps every row in the loss."""
    model = built[4]
    batch = next(iter(built[1]))[:256]
    index = model.review_edge_index(batch["user_id"], batch["item_id"])
    keep, rows = model.hidden_target_reviews(index)
    expected = torch.ones(model.n_review_edges)
    expected[index[index >= 0]] = 0
    assert torch.equal(keep, expected) and (expected == 0).any() and rows is None


def test_hidden_reviews_leave_the_review_sum(built):
    """The review relation's sum over a node's reviews drops exactly the hidden edges."""
    model = built[4]
    keep = torch.ones(model.n_review_edges)
    keep[torch.arange(0, model.n_review_edges, 3)] = 0.0
    with torch.no_grad():
        distinct = model.distinct_review_vectors()
        expected = torch.sparse.mm(model.review_incidence, model.review_vectors() * keep.unsqueeze(1))
        assert torch.allclose(model.review_sum(distinct, keep), expected, atol=1e-7)
        everything = torch.sparse.mm(model.review_incidence, model.review_vectors())
        assert torch.allclose(model.review_sum(distinct), everything, atol=1e-7)


def _review_part_gradient(model, batch) -> torch.Tensor:
    """Gradient of W_r on the summed review vectors (zero when no review reaches a message)."""
    model.zero_grad()
    model.calculate_loss(batch).backward()
    return model.review_weight.weight.grad[:, model.embedding_size :]


def test_one_batch_dataset_still_sends_review_messages(built, data_root):
    """Gift_Cards' mini split fits in one batch: hiding every batch review (share 1.0, the old
    behaviour) leaves no review in the messages; the default cap hides a random half, takes only
    those pairs (and pairs without review) into the loss, and the other reviews reach training."""
    train = built[1]
    batch = next(iter(train))
    assert len(batch) == len(train._dataset.inter_feat) < train.batch_size
    everything = ReviewGNN(
        _config(data_root / "data", data_root / "cache", max_hidden_review_share=1.0), train._dataset
    )
    assert _review_part_gradient(everything, batch).abs().sum() == 0

    model = ReviewGNN(_config(data_root / "data", data_root / "cache"), train._dataset)
    assert model.max_hidden_review_share == 0.5
    index = model.review_edge_index(batch["user_id"], batch["item_id"])
    torch.manual_seed(0)
    keep, rows = model.hidden_target_reviews(index)
    hidden = keep == 0
    assert hidden.sum() == int(0.5 * model.n_review_edges)
    # a uniform draw among the batch's distinct reviews, in torch.unique's order
    torch.manual_seed(0)
    distinct = torch.unique(index[index >= 0])
    drawn = distinct[torch.randperm(len(distinct))[: int(0.5 * model.n_review_edges)]]
    assert torch.equal(hidden.nonzero().squeeze(1), drawn.sort().values)
    # loss rows: pairs whose review is hidden and pairs without review, nothing else
    assert torch.equal(rows, (index < 0) | hidden[index.clamp(min=0)])
    assert 0 < rows.sum() < len(batch)
    torch.manual_seed(1)
    assert not torch.equal(model.hidden_target_reviews(index)[0], keep)  # a fresh split every step
    grad = _review_part_gradient(model, batch)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("graphs", ["built", "silent_built"])
def test_layer2_equals_per_edge_formula(request, graphs):
    """The sparse products equal m_u = sum c W_s h_i + sum c' W_r [h_i || r_ui] edge by edge, on
    the shared path (review graph == purchase graph) and the separate one (a review missing)."""
    model = request.getfixturevalue(graphs)[4]
    assert model.review_adj_shared == (graphs == "built")
    with torch.no_grad():
        h0 = torch.cat([model.user_embedding.weight, model.item_embedding.weight])
        h1 = torch.relu(torch.sparse.mm(model.adjacency, model.layer1_weight(h0)))
        reviews = model.review_vectors()
        adj = model.review_adj.to_sparse_coo().coalesce()
        src, dst = adj.indices()
        coef = adj.values()
        keys = model.review_pair_keys
        user_end = torch.where(src < model.n_users, src, dst)
        item_end = torch.where(src < model.n_users, dst, src) - model.n_users
        edge = torch.searchsorted(keys, user_end * model.n_items + item_end)
        per_edge = coef[:, None] * model.review_weight(torch.cat([h1[dst], reviews[edge]], dim=1))
        expected = torch.sparse.mm(model.adjacency, model.purchase_weight(h1))
        expected = expected.index_add(0, src, per_edge)
        user_e, item_e, _ = model.forward()
        h2 = torch.relu(expected)
        final = (h0 + h1 + h2) / 3
    assert torch.allclose(torch.cat([user_e, item_e]), final, atol=1e-5)


def test_gradient_reaches_fc_tanh_and_both_relations(built):
    _, train_data, _, _, model, _ = built
    model.train()
    model.zero_grad()
    # a quarter of the training pairs: with hide_target_reviews the other reviews carry messages
    batch = next(iter(train_data))[:512]
    loss = model.calculate_loss(batch)
    loss.backward()
    emb = model.embedding_size
    for name, grad in [
        ("review_fc (FC-Tanh)", model.review_fc.weight.grad),
        ("W_s (purchase)", model.purchase_weight.weight.grad),
        ("W_r on h", model.review_weight.weight.grad[:, :emb]),
        ("W_r on r_ui", model.review_weight.weight.grad[:, emb:]),
        ("layer 1", model.layer1_weight.weight.grad),
    ]:
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    model.zero_grad()


# ----------------------------------------------------------------------------- shared A h
@pytest.fixture(scope="module")
def silent_built(data_root):
    """Like ``built``, on a copy of the data where one training interaction has no review text."""
    folder = _copy_data(data_root, "one_silent_review")
    frame = _read_inter(_inter_file(folder))
    # the earliest interaction of all is its user's earliest, a training row under the
    # leave-one-out split by time
    first = frame["timestamp:float"].astype(float).idxmin()
    for column in _text_columns(frame):
        frame.loc[first, column] = ""
    _write_inter(frame, _inter_file(folder))
    with chdir(data_root):  # as in ``built``
        return build(_config(folder, data_root / "cache"))


def _twin(model: ReviewGNN, config, dataset, shared: bool) -> ReviewGNN:
    """The same model (weights, graphs) on the shared (``A h`` once) or the separate path."""
    twin = ReviewGNN(config, dataset)
    twin.load_state_dict(model.state_dict())
    twin.review_adj_shared = shared
    return twin


def _step(model: ReviewGNN, batch):
    """Final vectors, loss and gradients of one training step (the hiding draw seeded)."""
    model.zero_grad()
    torch.manual_seed(0)
    loss = model.calculate_loss(batch)
    loss.backward()
    with torch.no_grad():
        vectors = torch.cat(model.forward()[:2])
    return vectors, loss.detach(), {name: p.grad for name, p in model.named_parameters()}


@pytest.mark.parametrize("backbone", ["gcn", "lightgcn"])
def test_shared_propagation_matches_separate_review_graph(built, data_root, backbone):
    """Every training pair has a review here, so the review adjacency is the purchase adjacency
    and the last layer computes ``A h`` once; vectors, loss and gradients match the path that
    multiplies by the review adjacency separately (``A (h W_s)`` there, ``(A h) W_s`` here)."""
    train = built[1]
    config = _config(data_root / "data", data_root / "cache", backbone=backbone)
    model = ReviewGNN(config, train._dataset)
    assert model.review_adj_shared
    batch = next(iter(train))
    vectors, loss, grads = _step(model, batch)
    vectors_sep, loss_sep, grads_sep = _step(_twin(model, config, train._dataset, shared=False), batch)
    assert torch.allclose(vectors, vectors_sep, rtol=1e-5, atol=1e-7)
    assert torch.allclose(loss, loss_sep, rtol=1e-6, atol=0)
    assert grads.keys() == grads_sep.keys()
    for name in grads:
        assert torch.allclose(grads[name], grads_sep[name], rtol=1e-4, atol=1e-7), name


def test_review_graph_is_shared_only_when_equal(built, silent_built, data_root):
    """One training review without text (or a purchase graph with self loops) makes the two
    adjacencies differ: the review relation then keeps multiplying by its own adjacency."""
    model = built[4]
    assert model.review_adj_shared and model.n_review_edges == model.adjacency._nnz() // 2
    assert torch.equal(model.review_adj.to_dense(), model.adjacency.to_dense())
    train = built[1]._dataset
    mean = ReviewGNN(_config(data_root / "data", data_root / "cache", normalisation="mean"), train)
    assert mean.review_adj_shared  # both relations normalised alike
    looped = ReviewGNN(_config(data_root / "data", data_root / "cache", self_loop=True), train)
    assert not looped.review_adj_shared

    silent = silent_built[4]
    assert silent.n_review_edges == silent.adjacency._nnz() // 2 - 1
    assert not silent.review_adj_shared
    # forcing the shared path here would use the purchase graph for reviews: a different layer
    config = _config(data_root / "one_silent_review", data_root / "cache")
    wrong = _twin(silent, config, silent_built[1]._dataset, shared=True)
    assert not torch.allclose(torch.cat(wrong.forward()[:2]), torch.cat(silent.forward()[:2]))


def test_distinct_review_texts_are_transformed_once(built):
    """FC-Tanh over distinct texts gives every edge exactly its per-edge vector; gradients agree."""
    model = built[4]
    distinct = model.distinct_review_embeddings
    assert len(torch.unique(distinct, dim=0)) == len(distinct) <= model.n_review_edges
    per_edge = model.review_embeddings
    assert per_edge.shape == (model.n_review_edges, distinct.shape[1])
    model.zero_grad()
    once = model.review_vectors()
    reference = torch.tanh(model.review_fc(per_edge))
    assert torch.equal(once, reference)
    weights = torch.randn_like(once)
    (once * weights).sum().backward()
    grad_once = model.review_fc.weight.grad.clone()
    model.zero_grad()
    (reference * weights).sum().backward()
    assert torch.allclose(grad_once, model.review_fc.weight.grad, rtol=1e-4, atol=1e-4)  # summation order only
    model.zero_grad()


def _lightgcn_reference(data_root, train_dataset, model):
    """RecBole's LightGCN (2 layers) with the same layer-0 embeddings as ``model``."""
    from recbole.model.general_recommender import LightGCN

    config = Config(
        "LightGCN",
        DATASET,
        config_dict={
            **FAST,
            **EVAL,
            "data_path": str(data_root / "data"),
            "n_layers": model.n_layers,
            "embedding_size": 64,
        },
    )
    reference = LightGCN(config, train_dataset)
    reference.load_state_dict(
        {
            "user_embedding.weight": model.user_embedding.weight.detach(),
            "item_embedding.weight": model.item_embedding.weight.detach(),
        },
        strict=False,
    )
    return reference


@pytest.mark.parametrize("n_layers", [2, 3])
def test_lightgcn_backbone_without_reviews_is_lightgcn(built, data_root, n_layers):
    train = built[1]._dataset
    config = _config(data_root / "data", data_root / "cache", backbone="lightgcn", use_reviews=False, n_layers=n_layers)
    model = ReviewGNN(config, train)
    assert model.layer1_weight is None and model.purchase_weight is None
    assert {name for name, _ in model.named_parameters()} == {"user_embedding.weight", "item_embedding.weight"}
    user_e, item_e, _ = model.forward()
    ref_user, ref_item = _lightgcn_reference(data_root, train, model).forward()
    assert torch.allclose(user_e, ref_user, atol=1e-6) and torch.allclose(item_e, ref_item, atol=1e-6)


def test_lightgcn_backbone_with_reviews_trains_the_review_branch(built, data_root):
    train = built[1]
    model = ReviewGNN(_config(data_root / "data", data_root / "cache", backbone="lightgcn"), train._dataset)
    batch = next(iter(train))[:512]
    loss = model.calculate_loss(batch)
    loss.backward()
    emb = model.embedding_size
    for name, grad in [
        ("review_fc (FC-Tanh)", model.review_fc.weight.grad),
        ("W_r on h", model.review_weight.weight.grad[:, :emb]),
        ("W_r on r_ui", model.review_weight.weight.grad[:, emb:]),
        ("embeddings", model.user_embedding.weight.grad),
    ]:
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    # the review relation W_r [A' h || sum c' r] is the only difference from LightGCN's last layer
    with torch.no_grad():
        layers, propagated = model.collaborative_layers()
        reviewed = torch.cat(model.forward()[:2])
        neighbour_sum = torch.sparse.mm(model.review_adj, layers[-1])
        review_sum = torch.sparse.mm(model.review_incidence, model.review_vectors())
        review_relation = model.review_weight(torch.cat([neighbour_sum, review_sum], dim=1))
        expected = (sum(layers) + propagated + review_relation) / 3
    assert torch.allclose(reviewed, expected, atol=1e-6)


def test_gcn_backbone_keeps_two_layers(built, data_root):
    with pytest.raises(ValueError, match="n_layers must be 2 with backbone gcn"):
        ReviewGNN(_config(data_root / "data", data_root / "cache", n_layers=3), built[1]._dataset)
    with pytest.raises(ValueError, match="backbone = .ngcf. is not allowed: expected one of gcn, lightgcn"):
        ReviewGNN(_config(data_root / "data", data_root / "cache", backbone="ngcf"), built[1]._dataset)


def test_full_sort_cache_is_invalidated(built):
    _, _, _, test_data, model, _ = built
    model.eval()
    batch = next(iter(test_data))[0]
    first = model.full_sort_predict(batch).clone()
    assert model.restore_user_e is not None
    with torch.no_grad():
        model.user_embedding.weight.add_(0.5)
    assert torch.equal(model.full_sort_predict(batch), first)  # still cached in eval
    model.train()
    assert model.restore_user_e is None
    model.eval()
    assert not torch.equal(model.full_sort_predict(batch), first)
    with torch.no_grad():
        model.user_embedding.weight.sub_(0.5)


# ----------------------------------------------------------------------------- alpha
def test_adaptive_alpha_rule_and_checkpoint(built, data_root):
    config = _config(data_root / "data", data_root / "cache")
    model = built[4]
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        assert float(model.alpha) == pytest.approx(0.1)
        assert model.update_alpha(0.20) == pytest.approx(0.01)  # at its best: clipped to alpha_min
        assert model.update_alpha(0.15) == pytest.approx(0.1 * (1 - 0.15 / 0.20))
        assert model.update_alpha(0.0) == pytest.approx(0.1)  # collapse: clipped to alpha_0
        model.update_alpha(0.15)
        state = model.state_dict()
        assert "alpha" in state and "alpha_best_valid" in state
        fresh = ReviewGNN(config, built[1]._dataset)
        fresh.load_state_dict(state)
        assert float(fresh.alpha) == pytest.approx(0.025) and float(fresh.alpha_best_valid) == pytest.approx(0.2)
    finally:
        model.load_state_dict(saved)

    fixed = ReviewGNN(_config(data_root / "data", data_root / "cache", alpha_mode="fixed"), built[1]._dataset)
    assert fixed.update_alpha(0.3) == fixed.update_alpha(0.1) == pytest.approx(0.1)


def test_trainer_changes_alpha_under_adaptive(data_root):
    config = _config(data_root / "data", data_root / "cache", epochs=2)
    _, train_data, valid_data, _, model, trainer = build(config)
    assert float(model.alpha) == pytest.approx(model.alpha_0)
    alphas = []
    trainer.fit(train_data, valid_data, saved=False, callback_fn=lambda epoch, score: alphas.append(float(model.alpha)))
    assert len(alphas) == 2
    assert alphas[0] == pytest.approx(model.alpha_min)  # the first validation is the best so far
    assert all(model.alpha_min - 1e-6 <= a <= model.alpha_0 + 1e-6 for a in alphas)


def test_missing_hit_metric_is_a_clear_error(data_root):
    config = _config(data_root / "data", data_root / "cache", metrics=["NDCG"])
    _, train_data, valid_data, _, _, trainer = build(config)
    with pytest.raises(KeyError, match="hit@10"):
        trainer.fit(train_data, valid_data, saved=False)


# ----------------------------------------------------------------------------- baseline, switches
def test_gcn_baseline_has_no_review_branch_and_reads_no_text(data_root, monkeypatch):
    spy = _EncodeSpy(monkeypatch)
    config = _config(data_root / "data", data_root / "cache", use_reviews=False)
    _, train_data, _, test_data, model, _ = build(config)
    assert not model.use_reviews and spy.texts == []
    assert not hasattr(model, "review_fc") and not hasattr(model, "review_weight")
    # the alias forces use_reviews off even under a config that asks for reviews
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    alias_model = ReviewGCN(_config(data_root / "data", data_root / "cache"), train_data._dataset)
    assert not alias_model.use_reviews and spy.texts == []
    batch = next(iter(test_data))[0]
    model.eval(), alias_model.eval()
    assert torch.equal(model.full_sort_predict(batch), alias_model.full_sort_predict(batch))


def test_reviewgcn_by_name_reads_reviewgnn_yaml(data_root):
    """``--model=ReviewGCN``: found by name, ReviewGNN's defaults, ``use_reviews`` overridden."""
    assert get_model("ReviewGCN") is ReviewGCN
    config = _config(data_root / "data", data_root / "cache", model="ReviewGCN")
    assert config["use_reviews"] is False and config["normalisation"] == "sym" and config["alpha_0"] == 0.1


@pytest.mark.parametrize(
    "key, value",
    [
        ("review_field", "title"),
        ("normalisation", "left"),
        ("finetune_text_encoder", True),
        ("alpha_min", 0.5),
        ("max_hidden_review_share", 0.0),
    ],
)
def test_invalid_switches_raise(built, data_root, key, value):
    config = _config(data_root / "data", data_root / "cache", **{key: value})
    with pytest.raises((ValueError, NotImplementedError)):
        ReviewGNN(config, built[1]._dataset)


@pytest.mark.parametrize(
    "overrides",
    [
        {
            "normalisation": "mean",
            "self_loop": True,
            "layer_combine": "last",
            "mse_target": "hadamard",
            "review_field": "summary",
            "layer1_transform": "none",
            "activation": "none",
        },
    ],
)
def test_other_switches_train(built, data_root, overrides):
    config = _config(data_root / "data", data_root / "cache", **overrides)
    model = ReviewGNN(config, built[1]._dataset)
    loss = model.calculate_loss(next(iter(built[1])))
    loss.backward()
    assert torch.isfinite(loss) and model.review_fc.weight.grad.abs().sum() > 0


def test_trains_unchanged_with_popk_negatives(data_root):
    """POPK (issue #6) feeds ReviewGNN its popular negatives through RecBole's own batch layout."""
    from recbole_llm.sampler import PopkTrainDataLoader

    popk = {"distribution": "popk", "sample_num": 1, "popk": 2, "popk_bucket": 86400}
    config = _config(data_root / "data", data_root / "cache", train_neg_sample_args=popk)
    _, train_data, valid_data, test_data, model, trainer = build(config)
    assert isinstance(train_data, PopkTrainDataLoader) and train_data.times == 3
    batch = next(iter(train_data))
    n = len(batch) // 3
    negatives = batch[model.NEG_ITEM_ID].reshape(3, n)
    popular = train_data._sampler.popular_negatives(
        batch[model.USER_ID][:n].numpy(), batch[model.ITEM_ID][:n].numpy(), batch["timestamp"][:n].numpy()
    ).T
    filled = popular > 0
    assert filled.any() and (negatives[1:].numpy()[filled] == popular[filled]).all()
    fc_before = model.review_fc.weight.detach().clone()
    trainer.fit(train_data, valid_data, saved=False, show_progress=False)
    assert not torch.equal(fc_before, model.review_fc.weight)
    result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    assert all(np.isfinite(value) for value in result.values())


# ----------------------------------------------------------------------------- users without reviews
def test_users_without_any_review(data_root):
    """Erase every review of 100 users: they get no review edge, yet train and score normally."""
    folder = _copy_data(data_root, "no_reviews")
    frame = _read_inter(_inter_file(folder))
    silent_users = sorted(frame["user_id:token"].unique())[:100]
    for column in _text_columns(frame):
        frame.loc[frame["user_id:token"].isin(silent_users), column] = ""
    _write_inter(frame, _inter_file(folder))

    config = _config(folder, data_root / "cache")
    dataset, train_data, valid_data, test_data, model, trainer = build(config)
    silent_ids = torch.as_tensor(dataset.token2id("user_id", silent_users))
    edge_users = model.review_pair_keys // model.n_items
    assert not torch.isin(silent_ids, edge_users).any()
    assert model.review_adj.to_dense()[silent_ids].abs().sum() == 0
    trainer.fit(train_data, valid_data, saved=False)
    model.eval()
    scores = model.full_sort_predict(next(iter(test_data))[0])
    assert torch.isfinite(scores).all()
    users = torch.cat([silent_ids, silent_ids])
    items = torch.ones_like(users)
    assert torch.isfinite(model.calculate_loss(_batch(model, users, items)))


def _batch(model, users, items):
    from recbole.data.interaction import Interaction

    return Interaction({model.USER_ID: users, model.ITEM_ID: items, model.NEG_ITEM_ID: items + 1})


# ----------------------------------------------------------------------------- leakage
def _eval_pairs(config) -> set[tuple[str, str]]:
    """(user token, item token) of the validation and test interactions of this split."""
    dataset = create_dataset(config)
    _, valid_data, test_data = data_preparation(config, dataset)
    pairs = set()
    for loader in (valid_data, test_data):
        feat = loader._dataset.inter_feat
        users = dataset.id2token("user_id", feat["user_id"].numpy())
        items = dataset.id2token("item_id", feat["item_id"].numpy())
        pairs.update(zip(users.tolist(), items.tolist()))
    return pairs


def _trained_state(config):
    dataset, train_data, valid_data, test_data, model, trainer = build(config)
    built_tensors = {
        "adjacency": model.adjacency.to_dense(),
        "review_adj": model.review_adj.to_dense(),
        "review_incidence": model.review_incidence.to_dense(),
        "review_embeddings": model.review_embeddings.clone(),
        "distinct_review_embeddings": model.distinct_review_embeddings.clone(),
        "review_pair_keys": model.review_pair_keys.clone(),
        "train_users": train_data._dataset.inter_feat["user_id"].clone(),
        "train_items": train_data._dataset.inter_feat["item_id"].clone(),
        **{f"init.{k}": v.clone() for k, v in model.state_dict().items()},
    }
    trainer.fit(train_data, valid_data, saved=False)
    trained = {f"trained.{k}": v.clone() for k, v in model.state_dict().items()}
    model.eval()
    scores = torch.cat([model.full_sort_predict(batch[0]) for batch in test_data])
    return {**built_tensors, **trained, "scores": scores}


@pytest.fixture
def single_thread():
    """Multi-threaded CPU sparse backward sums in a varying order (differences ~1e-9); one thread
    makes training bit-for-bit reproducible, so the leakage test can demand exact equality."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_validation_and_test_reviews_never_leak(data_root, monkeypatch, single_thread):
    """Rewrite or delete every validation/test review: no training tensor and no score moves."""
    base_config = _config(data_root / "data", data_root / "cache")
    held_out = _eval_pairs(base_config)
    n_users = _read_inter(_inter_file(data_root / "data"))["user_id:token"].nunique()
    assert len(held_out) >= 2 * n_users * 0.9  # leave-one-out: about one validation and one test pair per user

    folder = _copy_data(data_root, "mutated")
    frame = _read_inter(_inter_file(folder))
    pair = list(zip(frame["user_id:token"], frame["item_id:token"]))
    is_held_out = np.array([p in held_out for p in pair])
    assert is_held_out.sum() == len(held_out)  # converted pairs are distinct
    rows = np.flatnonzero(is_held_out)
    for column in _text_columns(frame):
        frame.loc[rows[::2], column] = [f"LEAKED {column} {k} five stars best gift ever" for k in rows[::2]]
        frame.loc[rows[1::2], column] = ""
    _write_inter(frame, _inter_file(folder))

    spy = _EncodeSpy(monkeypatch)
    mutated = _trained_state(_config(folder, data_root / "cache"))
    assert spy.texts and not any("LEAKED" in t for t in spy.texts)
    original = _trained_state(base_config)
    assert original.keys() == mutated.keys()
    for name in original:
        assert torch.equal(original[name], mutated[name]), name
