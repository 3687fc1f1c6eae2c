"""GeneralGraphRecommender: the normalised adjacency against a dense hand computation, the
full-sort cache, predict vs full_sort_predict, the BPR helper's value and gradients, yaml choices.

A toy bipartite graph (3 users, 4 items, one duplicated interaction) and a tiny LightGCN-like
subclass keep these tests independent of any dataset.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from recbole.data.interaction import Interaction
from torch import nn

from recbole_llm.model.abstract_recommender import (
    GeneralGraphRecommender,
    batch_emb_loss,
    checked_choice,
    normalised_adjacency,
    normalised_edges,
    sparse_matmul,
    transposed_csr_matrix,
)
from recbole_llm.model.general_recommender.p4r import P4R
from recbole_llm.model.general_recommender.reviewgnn import ReviewGCN, ReviewGNN

# RecBole ids: 0 is padding, users 1..3, items 1..4; (1, 2) appears twice.
USERS = torch.tensor([1, 1, 1, 2, 2, 3, 1])
ITEMS = torch.tensor([1, 2, 3, 2, 4, 4, 2])
N_USERS, N_ITEMS = 4, 5


class ToyDataset:
    """The two things GeneralRecommender reads from a RecBole dataset."""

    inter_feat = {"user_id": USERS, "item_id": ITEMS}

    def num(self, field: str) -> int:
        return N_USERS if field == "user_id" else N_ITEMS


def toy_config(**overrides) -> dict:
    return {
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "NEG_PREFIX": "neg_",
        "device": torch.device("cpu"),
        "reg_weight": 0.01,
        "require_pow": False,
        **overrides,
    }


class ToyGCN(GeneralGraphRecommender):
    """One propagation layer over the base adjacency; forward counts its calls."""

    def __init__(self, config, dataset, **graph) -> None:
        super().__init__(config, dataset, **graph)
        self.user_embedding = nn.Embedding(self.n_users, 8)
        self.item_embedding = nn.Embedding(self.n_items, 8)
        self.forward_calls = 0

    def forward(self):
        self.forward_calls += 1
        h0 = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        final = (h0 + torch.sparse.mm(self.adjacency, h0)) / 2
        users, items = torch.split(final, [self.n_users, self.n_items])
        return users, items, h0

    def calculate_loss(self, interaction):
        self.invalidate_cache()
        user, pos, neg = interaction["user_id"], interaction["item_id"], interaction["neg_item_id"]
        user_all, item_all, _ = self.forward()
        return self.bpr_loss(
            user_all[user],
            item_all[pos],
            item_all[neg],
            self.user_embedding(user),
            self.item_embedding(pos),
            self.item_embedding(neg),
        )


def dense_adjacency(self_loop: bool) -> torch.Tensor:
    """A (users then items) with every distinct pair once in both directions, + I if asked."""
    n = N_USERS + N_ITEMS
    adjacency = torch.zeros(n, n)
    for user, item in set(zip(USERS.tolist(), ITEMS.tolist())):
        adjacency[user, N_USERS + item] = adjacency[N_USERS + item, user] = 1.0
    return adjacency + torch.eye(n) if self_loop else adjacency


def inverse(values: torch.Tensor, power: float) -> torch.Tensor:
    out = values.pow(power)
    return torch.where(values > 0, out, torch.zeros_like(out))


@pytest.mark.parametrize("self_loop", [False, True])
def test_sym_adjacency_is_d_half_a_d_half(self_loop):
    model = ToyGCN(toy_config(), ToyDataset(), norm="sym", self_loop=self_loop)
    a = dense_adjacency(self_loop)
    d = inverse(a.sum(1), -0.5)
    assert model.adjacency.layout == torch.sparse_csr
    assert torch.allclose(model.adjacency.to_dense(), d[:, None] * a * d[None, :], atol=1e-7)
    assert model.adjacency._nnz() == int((a > 0).sum())  # the duplicate (1, 2) counted once


@pytest.mark.parametrize("self_loop", [False, True])
def test_mean_adjacency_is_row_normalised(self_loop):
    model = ToyGCN(toy_config(), ToyDataset(), norm="mean", self_loop=self_loop)
    a = dense_adjacency(self_loop)
    dense = model.adjacency.to_dense()
    assert torch.allclose(dense, inverse(a.sum(1), -1.0)[:, None] * a, atol=1e-7)
    rows_with_edges = a.sum(1) > 0
    assert torch.allclose(dense.sum(1)[rows_with_edges], torch.ones(int(rows_with_edges.sum())))


def test_adjacency_is_a_non_persistent_buffer_and_unknown_norm_is_refused():
    model = ToyGCN(toy_config(), ToyDataset())
    for name in ("adjacency", "adjacency_t"):
        assert name in dict(model.named_buffers()) and name not in model.state_dict()
    with pytest.raises(ValueError, match="normalisation must be one of sym, mean"):
        normalised_adjacency(USERS, ITEMS + N_USERS, N_USERS + N_ITEMS, norm="left")


def test_full_sort_cache_is_reused_then_invalidated():
    model = ToyGCN(toy_config(), ToyDataset()).eval()
    users = Interaction({"user_id": torch.tensor([1, 2])})
    first = model.full_sort_predict(users)
    model.full_sort_predict(users)
    assert model.forward_calls == 1 and not model.restore_user_e.requires_grad
    for invalidate in (
        lambda: model.train(),
        lambda: model.eval(),
        lambda: model.load_state_dict(model.state_dict()),
        lambda: model.calculate_loss(triples()),
    ):
        model.full_sort_predict(users)
        invalidate()
        assert model.restore_user_e is None and model.restore_item_e is None
    with torch.no_grad():
        model.item_embedding.weight.add_(1.0)
    model.eval()
    assert not torch.equal(model.full_sort_predict(users), first)  # recomputed from the new weights


def test_predict_equals_full_sort_entries():
    model = ToyGCN(toy_config(), ToyDataset()).eval()
    users = torch.tensor([1, 1, 3, 2])
    items = torch.tensor([1, 4, 2, 3])
    scores = model.predict(Interaction({"user_id": users, "item_id": items}))
    full = model.full_sort_predict(Interaction({"user_id": users})).view(len(users), N_ITEMS)
    assert torch.allclose(scores, full[torch.arange(len(users)), items], atol=1e-6)


def test_predict_reuses_the_propagation_in_eval_only():
    model = ToyGCN(toy_config(), ToyDataset()).eval()
    pairs = Interaction({"user_id": torch.tensor([1, 2]), "item_id": torch.tensor([3, 4])})
    model.predict(pairs), model.predict(pairs)
    assert model.forward_calls == 1
    model.train()
    scores = model.predict(pairs)
    model.predict(pairs)
    assert model.forward_calls == 3 and scores.requires_grad  # training: fresh, differentiable


@pytest.mark.parametrize("norm", ["sym", "mean"])
def test_sparse_matmul_with_prebuilt_transpose_is_bit_identical_to_torch(norm):
    edge_index, weight = normalised_edges(USERS, ITEMS + N_USERS, N_USERS + N_ITEMS, norm)
    size = (N_USERS + N_ITEMS, N_USERS + N_ITEMS)
    model = ToyGCN(toy_config(), ToyDataset(), norm=norm)
    assert torch.equal(model.adjacency_t.to_dense(), model.adjacency.to_dense().T)
    rectangular = (edge_index[:, ::2], weight[::2], (size[0], 3))  # a non-square operator too
    rect_index = torch.stack([rectangular[0][0], torch.arange(rectangular[0].shape[1]) % 3])
    for matrix, matrix_t in [
        (model.adjacency, model.adjacency_t),
        (
            csr(rect_index, rectangular[1], rectangular[2]),
            transposed_csr_matrix(rect_index, rectangular[1], rectangular[2]),
        ),
    ]:
        dense = torch.randn(matrix.shape[1], 5, requires_grad=True)
        expected = torch.sparse.mm(matrix, dense)
        (expected_grad,) = torch.autograd.grad(expected.square().sum(), dense)
        got = sparse_matmul(matrix, matrix_t, dense)
        (got_grad,) = torch.autograd.grad(got.square().sum(), dense)
        assert torch.equal(got, expected) and torch.equal(got_grad, expected_grad)


def csr(edge_index: torch.Tensor, weight: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    from recbole_llm.model.abstract_recommender import csr_matrix

    return csr_matrix(edge_index, weight, size)


def triples() -> Interaction:
    return Interaction(
        {"user_id": torch.tensor([1, 2, 3]), "item_id": torch.tensor([1, 2, 4]), "neg_item_id": torch.tensor([4, 3, 1])}
    )


def test_bpr_loss_value_and_gradients():
    model = ToyGCN(toy_config(reg_weight=0.5), ToyDataset())
    batch = triples()
    loss = model.calculate_loss(batch)
    user_all, item_all, _ = model.forward()
    u, p, n = user_all[batch["user_id"]], item_all[batch["item_id"]], item_all[batch["neg_item_id"]]
    bpr = -F.logsigmoid((u * p).sum(1) - (u * n).sum(1)).mean()
    layer0 = [
        model.user_embedding.weight[batch["user_id"]],
        model.item_embedding.weight[batch["item_id"]],
        model.item_embedding.weight[batch["neg_item_id"]],
    ]
    reg = sum(e.norm(p=2) for e in layer0) / 3  # RecBole's EmbLoss (require_pow False)
    assert torch.allclose(loss, bpr + 0.5 * reg, atol=1e-6)
    loss.backward()
    for parameter in (model.user_embedding.weight, model.item_embedding.weight):
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all()
    touched_items = torch.tensor([1, 2, 4, 3])
    assert (model.item_embedding.weight.grad[touched_items].abs().sum(1) > 0).all()
    assert model.user_embedding.weight.grad[0].abs().sum() == 0  # padding user: no edge, no batch row


@pytest.mark.parametrize("require_pow", [False, True])
@pytest.mark.parametrize("n_rows", [5, 40])  # a table with fewer / more rows than the batch
def test_batch_emb_loss_is_recboles_emb_loss(require_pow, n_rows):
    """Value and gradient of EmbLoss on the gathered blocks, whichever way it is computed."""
    from recbole.model.loss import EmbLoss

    torch.manual_seed(0)
    table = torch.randn(n_rows, 8, requires_grad=True)
    rows = torch.randint(0, n_rows, (3 * 4,))
    loss = batch_emb_loss(table, rows, 3, require_pow)
    (grad,) = torch.autograd.grad(loss, table)
    expected = EmbLoss()(*table[rows].chunk(3), require_pow=require_pow).squeeze()
    (expected_grad,) = torch.autograd.grad(expected, table)
    assert torch.allclose(loss, expected, rtol=1e-6) and torch.allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)


def test_choices_are_read_from_the_schema():
    assert checked_choice(P4R, "projector", "mlp") == "mlp"
    with pytest.raises(
        ValueError, match="text_fusion = 'multiply' is not allowed: expected one of add, replace, concat"
    ):
        checked_choice(P4R, "text_fusion", "multiply")
    # ReviewGCN has no schema section of its own: ReviewGNN's rules apply through the MRO
    assert checked_choice(ReviewGCN, "normalisation", "mean") == "mean"
    assert ReviewGCN.config_overrides == {"use_reviews": False} and ReviewGNN.config_overrides == {}
