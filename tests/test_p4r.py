"""P4R model: trains on real data (ml-100k, the 69 items with >= 250 ratings), fusion modes, masks, cache,
profiles prepared in the data step."""

from __future__ import annotations

import json

import pytest
import torch

import recbole_llm  # noqa: F401  (compatibility layer)
from recbole_llm.config import Config
from recbole_llm.model.general_recommender.p4r import P4R
from recbole_llm.profiles import ProfileSettingsMismatch, ProfilesMissingError, read_profiles
from recbole_llm.profiles.store import read_header
from recbole_llm.quick_start import build

SMALL = {
    "item_inter_num_interval": "[250,inf)",
    "epochs": 1,
    "show_progress": False,
    "state": "ERROR",
    "use_gpu": False,
    "train_batch_size": 4096,
    "eval_batch_size": 409600,
    "metrics": ["Recall", "NDCG"],
    "topk": [10],
    "valid_metric": "NDCG@10",
}


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    return {
        "profile_dir": str(tmp_path_factory.mktemp("profiles")),
        "text_cache_dir": str(tmp_path_factory.mktemp("text_cache")),
    }


def _config(dirs, **extra):
    return Config("P4R", "ml-100k", config_dict={**SMALL, **dirs, **extra})


@pytest.fixture(scope="module")
def trained(dirs, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("run"))  # RecBole writes log/ and saved/ here
        config = _config(dirs)
        _, train_data, valid_data, test_data, model, trainer = build(config)
        trainer.fit(train_data, valid_data, saved=False, show_progress=False)
        result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    return config, train_data, model, result


def test_trains_one_epoch_and_beats_random(trained):
    config, train_data, model, result = trained
    n_items = train_data._dataset.item_num - 1
    # A random ranking of the items a user has not trained on finds 10 / (#candidates) of the test items.
    history = torch.bincount(train_data._dataset.inter_feat[model.USER_ID])[1:].float()
    random_recall = (10 / (n_items - history[history > 0])).clamp(max=1).mean().item()
    assert result["recall@10"] > 1.4 * random_recall, (result, random_recall)
    assert model.profile_mask[1:].all() and not model.profile_mask[0]  # template: every item has a profile
    assert model.profile_embeddings.shape == (n_items + 1, 384)


def test_full_sort_uses_cached_propagation_and_training_clears_it(trained):
    config, train_data, model, _ = trained
    model.eval()
    users = {model.USER_ID: torch.tensor([1, 2, 3])}
    with torch.no_grad():
        scores = model.full_sort_predict(users)
    assert scores.shape == (3 * model.n_items,)
    cached = model.restore_item_e
    assert cached is not None
    with torch.no_grad():
        model.full_sort_predict(users)
    assert model.restore_item_e is cached  # not recomputed per evaluation batch
    model.train()
    batch = next(iter(train_data))
    loss = model.calculate_loss(batch)
    assert model.restore_item_e is None and torch.isfinite(loss)


def test_adjacency_is_symmetric_normalised_and_built_once(trained):
    _, train_data, model, _ = trained
    dense = model.adjacency.to_dense()
    assert torch.allclose(dense, dense.T)
    degree = (dense > 0).sum(1).float()
    rows, cols = dense.nonzero(as_tuple=True)
    expected = 1 / torch.sqrt(degree[rows] * degree[cols])
    assert torch.allclose(dense[rows, cols], expected, atol=1e-6)
    n_train_pairs = len(
        set(
            zip(
                train_data._dataset.inter_feat[model.USER_ID].tolist(),
                train_data._dataset.inter_feat[model.ITEM_ID].tolist(),
            )
        )
    )
    assert len(rows) == 2 * n_train_pairs  # only training interactions, no validation/test edge
    adjacency = model.adjacency
    model.forward()
    assert model.adjacency is adjacency


def _lgconv_forward(model):
    """P4R's forward as it was before ``propagate`` (PyG's LGConv on the adjacency): the reference that the
    stored benchmark runs were made with (see ``EQUIVALENT_CODE_VERSIONS`` in recbole_llm/benchmark/store.py)."""
    from torch_geometric.nn import LGConv

    users, items = model.ego_embeddings()
    layer = torch.cat([users, items], dim=0)
    total, conv = layer, LGConv(normalize=False)
    for _ in range(model.n_layers):
        layer = conv(layer, model.adjacency)
        total = total + layer
    return torch.split(total / (model.n_layers + 1), [model.n_users, model.n_items])


def test_propagation_is_bit_identical_to_pyg_lgconv(trained, dirs):
    """The stored P4R runs stand for the current code only if loss and gradients are the same to the bit."""
    _, train_data, _, _ = trained
    model = P4R(_config(dirs, text_fusion="concat", projector="mlp", n_layers=3), train_data._dataset)
    results = []
    for forward in (lambda: model.forward()[:2], lambda: _lgconv_forward(model)):
        model.zero_grad()
        user_all, item_all = forward()
        loss = (user_all[:50] @ item_all[:80].T).sigmoid().log().mean()
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results.append((user_all.detach(), item_all.detach(), grads))
    (u_new, i_new, g_new), (u_old, i_old, g_old) = results
    assert torch.equal(u_new, u_old) and torch.equal(i_new, i_old)
    assert len(g_new) == len(g_old) > 0 and all(torch.equal(a, b) for a, b in zip(g_new, g_old))


def _indexing_loss(model, batch):
    """P4R's loss as it was before ``index_select`` (``tensor[index]`` gathers): the reference of the stored
    benchmark runs (``EQUIVALENT_CODE_VERSIONS`` in recbole_llm/benchmark/store.py)."""
    user, pos, neg = batch[model.USER_ID], batch[model.ITEM_ID], batch[model.NEG_ITEM_ID]
    user_all, item_all, user_ego, item_ego = model.forward()
    return model.bpr_loss(user_all[user], item_all[pos], item_all[neg], user_ego[user], item_ego[pos], item_ego[neg])


def test_loss_gathers_are_bit_identical_to_indexing_on_one_thread(trained, dirs):
    """On one thread the ``index_select`` loss and gradients equal the indexing ones to the bit (on more threads
    indexing's backward, ``index_put_`` with accumulate, is not repeatable, so only one thread can compare them)."""
    _, train_data, _, _ = trained
    model = P4R(_config(dirs, text_fusion="concat", projector="mlp"), train_data._dataset)
    batch = next(iter(train_data))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = []
        for loss_of in (model.calculate_loss, lambda b: _indexing_loss(model, b)):
            model.zero_grad()
            loss = loss_of(batch)
            loss.backward()
            results.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    finally:
        torch.set_num_threads(threads)
    (loss_new, grads_new), (loss_old, grads_old) = results
    assert torch.equal(loss_new, loss_old)
    assert len(grads_new) == len(grads_old) > 0 and all(torch.equal(a, b) for a, b in zip(grads_new, grads_old))


@pytest.mark.parametrize("fusion,projector,item_dim", [("replace", "linear", 64), ("concat", "mlp", 128)])
def test_fusion_modes_train_end_to_end(trained, dirs, fusion, projector, item_dim):
    _, train_data, _, _ = trained
    model = P4R(_config(dirs, text_fusion=fusion, projector=projector), train_data._dataset)
    users, items = model.ego_embeddings()
    assert items.shape == (model.n_items, item_dim) and users.shape == (model.n_users, item_dim)
    loss = model.calculate_loss(next(iter(train_data)))
    loss.backward()
    first = model.projector if projector == "linear" else model.projector[0]
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
    assert model.user_embedding.weight.grad.abs().sum() > 0


def test_items_without_profile_are_masked(trained, dirs, tmp_path):
    config, train_data, model, _ = trained
    records = read_profiles(model.profile_file)
    kept = dict(list(records.items())[: len(records) // 2])
    partial = tmp_path / "partial.jsonl"
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(read_header(model.profile_file)) + "\n")  # same dataset and split
        for record in kept.values():
            handle.write(json.dumps(record) + "\n")
    llm = {"profile_file": str(partial), "profile_backend": "transformers", "profile_llm": "an-llm-we-do-not-load"}
    with pytest.raises(ProfilesMissingError, match=rf"{len(records) - len(kept)} of {len(records)} items have no"):
        P4R(_config(dirs, **llm), train_data._dataset)  # a half-generated file is not a result by default
    for fusion in ("add", "replace"):
        cfg = _config(dirs, text_fusion=fusion, profile_allow_partial=True, **llm)
        masked = P4R(cfg, train_data._dataset)
        assert int(masked.profile_mask.sum()) == len(kept)
        _, items = masked.ego_embeddings()
        missing = ~masked.profile_mask
        assert torch.equal(items[missing], masked.item_embedding.weight[missing])  # ID embedding alone
        assert not torch.allclose(items[masked.profile_mask], masked.item_embedding.weight[masked.profile_mask])


def test_llm_profile_file_of_another_split_is_refused(trained, dirs, tmp_path):
    """A transformers profile file quoting another split's feedback (another seed) is refused."""
    _, train_data, model, _ = trained
    header = read_header(model.profile_file)
    other = tmp_path / "other_split.jsonl"
    other.write_text(json.dumps({**header, "split": "0123456789ab"}) + "\n", encoding="utf-8")
    cfg = _config(dirs, profile_file=str(other), profile_backend="transformers", profile_llm="some/llm")
    with pytest.raises(ProfileSettingsMismatch, match=f"0123456789ab.*{header['split']}") as error:
        P4R(cfg, train_data._dataset)
    assert str(other) in str(error.value) and "\n" not in str(error.value)
    headerless = tmp_path / "headerless.jsonl"
    headerless.write_text(json.dumps(next(iter(read_profiles(model.profile_file).values()))) + "\n")
    with pytest.raises(ProfileSettingsMismatch, match="no header"):
        P4R(
            _config(dirs, profile_file=str(headerless), profile_backend="transformers", profile_llm="x"),
            train_data._dataset,
        )


def test_prepare_data_attaches_profiles_the_model_reuses(trained, dirs, monkeypatch):
    config, train_data, _, _ = trained
    dataset = train_data._dataset
    prepared = P4R.prepare_data(config, dataset)
    assert dataset.item_profiles is prepared and prepared.features.embeddings.shape[0] == dataset.item_num
    calls = []

    class PreparedAgain(Exception):
        pass

    def prepare_again(cls, config, dataset):
        calls.append(config)
        raise PreparedAgain

    monkeypatch.setattr(P4R, "prepare_data", classmethod(prepare_again))
    model = P4R(config, dataset)
    assert calls == [] and torch.equal(model.profile_embeddings, prepared.features.embeddings)
    other = _config(dirs, profile_max_reviews=1)  # other profile settings: not these embeddings
    with pytest.raises(PreparedAgain):
        P4R(other, dataset)
    assert calls == [other]


def test_llm_backend_without_generated_profiles_says_what_to_run(trained, dirs):
    _, train_data, _, _ = trained
    cfg = _config(dirs, profile_backend="transformers", profile_llm="some/llm")
    with pytest.raises(ProfilesMissingError, match="run_recbole_llm.py profiles"):
        P4R(cfg, train_data._dataset)


def test_acceptance_command_runs_with_template_profiles(dirs, capsys):
    from recbole_llm.cli import main

    args = ["--model=P4R", "--dataset=ml-100k"] + [f"--{k}={v}" for k, v in SMALL.items() if k != "metrics"]
    args += [f"--text_cache_dir={dirs['text_cache_dir']}", "--metrics=['Recall','NDCG']"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "test result" in out and "recall@10" in out
