"""Base classes shared by recbole-llm's models (after RecBole-GNN's ``abstract_recommender.py``).

:class:`GeneralGraphRecommender` holds what every user-item graph recommender here repeats: the
normalised adjacency of the training split, built once with PyG; the cache of propagated
embeddings that full-sort evaluation reuses across its many small user batches; ``predict`` and
``full_sort_predict`` on top of the subclass's ``forward()``; and the BPR + embedding-L2 loss.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from recbole.data.interaction import Interaction
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.model.loss import BPRLoss, EmbLoss
from recbole.utils import InputType
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import add_remaining_self_loops, coalesce, degree, to_torch_csr_tensor

NORMALISATIONS = ("sym", "mean")


def checked_choice(model_class: type, key: str, value: object) -> str:
    """``value`` if ``properties/schema.yaml`` allows it for ``key`` in a run of ``model_class``, else a
    ValueError naming the key and the allowed values. The safety net for models built without the
    entry point's validation; the allowed values live only in the schema."""
    from recbole_llm.validation import ConfigError, check_value, rules_for

    rule = rules_for(model_class).get(key)
    if rule is None or "choices" not in rule:
        raise KeyError(f"properties/schema.yaml has no choices for '{key}' of {model_class.__name__}")
    try:
        check_value(key, value, rule)
    except ConfigError as error:
        raise ValueError(f"{model_class.__name__}: {error}") from None
    return str(value)


def normalised_edges(
    rows: torch.Tensor, cols: torch.Tensor, n_nodes: int, norm: str = "sym", self_loop: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge index and weights of the undirected graph ``rows <-> cols``, normalised once.

    Both directions of every pair are edges; a pair given twice counts once. ``sym``:
    ``D^-1/2 A D^-1/2`` (PyG's ``gcn_norm``); ``mean``: ``D^-1 A``, each row averages its
    neighbours. ``self_loop`` adds the identity before normalising (Kipf and Welling's
    renormalisation). Isolated nodes (padding ids) have no edge. Returned sorted by (row, col).
    """
    if norm not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {', '.join(NORMALISATIONS)}, got '{norm}'")
    rows, cols = rows.long(), cols.long()
    edge_index = torch.stack([torch.cat([rows, cols]), torch.cat([cols, rows])])
    edge_index = coalesce(edge_index, num_nodes=n_nodes)
    if norm == "sym":
        edge_index, weight = gcn_norm(edge_index, None, n_nodes, add_self_loops=self_loop)
    else:
        if self_loop:
            edge_index, _ = add_remaining_self_loops(edge_index, num_nodes=n_nodes)
        weight = degree(edge_index[0], n_nodes).pow(-1.0)[edge_index[0]]
    return coalesce(edge_index, weight, num_nodes=n_nodes)


def csr_matrix(edge_index: torch.Tensor, weight: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A sparse CSR tensor (PyG's ``to_torch_csr_tensor``) without torch's "beta" warning.

    Its indices are int32 when they fit: torch's CPU product (MKL) takes int32 indices and
    would otherwise convert both index arrays on every call."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        matrix = to_torch_csr_tensor(edge_index, weight, size=size)
        if max(matrix._nnz(), *size) >= 2**31:
            return matrix
        crow, col = matrix.crow_indices().int(), matrix.col_indices().int()
        return torch.sparse_csr_tensor(crow, col, matrix.values(), size=size)


def transposed_csr_matrix(edge_index: torch.Tensor, weight: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The transpose of ``csr_matrix(edge_index, weight, size)``, itself in CSR layout."""
    return csr_matrix(edge_index.flip(0), weight, (size[1], size[0]))


def csr_equal(first: torch.Tensor, second: torch.Tensor) -> bool:
    """Whether two sparse CSR matrices are the same operator entry for entry (shape, pattern and
    bit-identical values), so a product with one can stand for a product with the other."""
    return (
        first.shape == second.shape
        and first._nnz() == second._nnz()
        and torch.equal(first.crow_indices(), second.crow_indices())
        and torch.equal(first.col_indices(), second.col_indices())
        and torch.equal(first.values(), second.values())
    )


def normalised_adjacency(
    rows: torch.Tensor, cols: torch.Tensor, n_nodes: int, norm: str = "sym", self_loop: bool = False
) -> torch.Tensor:
    """``[n_nodes, n_nodes]`` sparse CSR adjacency of :func:`normalised_edges`."""
    edge_index, weight = normalised_edges(rows, cols, n_nodes, norm, self_loop)
    return csr_matrix(edge_index, weight, (n_nodes, n_nodes))


def batch_emb_loss(table: torch.Tensor, rows: torch.Tensor, n_blocks: int, require_pow: bool = False) -> torch.Tensor:
    """RecBole's ``EmbLoss()(*table[rows].chunk(n_blocks), require_pow=require_pow)``: LightGCN's
    L2 term on a batch's blocks of rows (users, positives, negatives), sum of the blocks'
    Frobenius norms (squared and halved with ``require_pow``) divided by the batch size.

    A block's squared norm is the sum of its rows' squared norms. When the table has fewer rows
    than the batch (small graphs), it is computed from each table row's squared norm and how often
    the block holds that row, without gathering the ``[batch, dim]`` blocks (whose norm backward
    makes several passes over them); otherwise the blocks are gathered once, in one tensor. (A
    block of all-zero rows, where the norm has no gradient, is not met in training batches.)
    """
    batch = rows.shape[0] // n_blocks
    if table.shape[0] < rows.shape[0]:
        offsets = torch.arange(n_blocks, device=rows.device).unsqueeze(1) * table.shape[0]
        counts = torch.bincount((rows.view(n_blocks, batch) + offsets).flatten(), minlength=n_blocks * table.shape[0])
        squared = counts.view(n_blocks, -1).to(table.dtype) @ torch.linalg.vecdot(table, table)
        norms = squared.sqrt()
    else:
        norms = torch.linalg.vector_norm(table.index_select(0, rows).view(n_blocks, -1), dim=1)
        squared = norms.square()
    return (squared.sum() / 2 if require_pow else norms.sum()) / batch


class _SparseMatmul(torch.autograd.Function):
    """``matrix @ dense`` whose backward multiplies by a transpose built once.

    ``torch.sparse.mm`` rebuilds ``matrix.T`` in CSR (a sort over all its entries) in every
    backward pass; for a fixed graph that sort is a per-step cost that does not depend on the
    batch. Both products are the same ``torch.sparse.mm`` calls torch's own backward makes, so
    the results are bit-identical.
    """

    @staticmethod
    def forward(ctx: Any, matrix: torch.Tensor, matrix_t: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        ctx.matrix_t = matrix_t
        return torch.sparse.mm(matrix, dense)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, None, torch.Tensor | None]:
        dense_grad = torch.sparse.mm(ctx.matrix_t, grad) if ctx.needs_input_grad[2] else None
        return None, None, dense_grad


def sparse_matmul(matrix: torch.Tensor, matrix_t: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """``matrix @ dense`` for a constant sparse ``matrix`` whose transpose ``matrix_t`` is given
    (see :class:`_SparseMatmul`); gradients flow to ``dense`` only."""
    return _SparseMatmul.apply(matrix, matrix_t, dense)


class GeneralGraphRecommender(GeneralRecommender):
    """A recommender over the bipartite user-item graph of the training split.

    Nodes are users ``0..n_users-1`` then items (``n_users + item``). The normalised adjacency is
    a non-persistent buffer ``adjacency`` (it follows ``.to(device)`` and stays out of
    checkpoints), its transpose ``adjacency_t`` another; :meth:`propagate` multiplies by it.
    Subclasses build their parameters, then implement ``forward()`` returning
    ``(user_all, item_all, ...)`` (final vectors of every user and item first) and
    ``calculate_loss`` (usually :meth:`bpr_loss` plus their own terms, after
    :meth:`invalidate_cache`).
    """

    input_type = InputType.PAIRWISE

    def __init__(self, config, dataset, norm: str = "sym", self_loop: bool = False) -> None:
        super().__init__(config, dataset)
        self.n_nodes = self.n_users + self.n_items
        self.reg_weight = float(config["reg_weight"])
        self.require_pow = bool(config["require_pow"])
        self.mf_loss = BPRLoss()
        self.reg_loss = EmbLoss()
        users = dataset.inter_feat[self.USER_ID].long()
        items = dataset.inter_feat[self.ITEM_ID].long()
        edge_index, weight = normalised_edges(users, items + self.n_users, self.n_nodes, norm, self_loop)
        size = (self.n_nodes, self.n_nodes)
        self.register_buffer("adjacency", csr_matrix(edge_index, weight, size), persistent=False)
        self.register_buffer("adjacency_t", transposed_csr_matrix(edge_index, weight, size), persistent=False)
        # propagated embeddings cached while evaluating (full sort scores a few users per batch)
        self.restore_user_e: torch.Tensor | None = None
        self.restore_item_e: torch.Tensor | None = None
        self.other_parameter_name = ["restore_user_e", "restore_item_e"]

    def forward(self, *args, **kwargs) -> tuple[torch.Tensor, ...]:
        """``(user_all [n_users, d], item_all [n_items, d], ...)``: the final vectors."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def propagate(self, x: torch.Tensor) -> torch.Tensor:
        """``adjacency @ x`` (one propagation step), with the transpose for backward built once."""
        return sparse_matmul(self.adjacency, self.adjacency_t, x)

    # ------------------------------------------------------------------ cache
    def invalidate_cache(self) -> None:
        """Forget the cached propagated embeddings (the weights are about to change)."""
        self.restore_user_e, self.restore_item_e = None, None

    def train(self, mode: bool = True) -> GeneralGraphRecommender:
        """Entering train or eval mode invalidates the cached full-sort embeddings."""
        self.invalidate_cache()
        return super().train(mode)

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        """Loading new weights invalidates the cached full-sort embeddings."""
        self.invalidate_cache()
        return super().load_state_dict(*args, **kwargs)

    # ------------------------------------------------------------------ loss
    def bpr_loss(
        self, user_e: torch.Tensor, pos_e: torch.Tensor, neg_e: torch.Tensor, *layer0: torch.Tensor
    ) -> torch.Tensor:
        """BPR on the final vectors of a batch's (user, positive, negative) triples plus
        ``reg_weight`` * EmbLoss on their layer-0 embeddings ``layer0`` (LightGCN's L2 term)."""
        pos_scores = torch.mul(user_e, pos_e).sum(dim=1)
        neg_scores = torch.mul(user_e, neg_e).sum(dim=1)
        reg = self.reg_loss(*layer0, require_pow=self.require_pow)
        return self.mf_loss(pos_scores, neg_scores) + self.reg_weight * reg

    # ------------------------------------------------------------------ prediction
    def cached_final_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(user_all, item_all)`` of :meth:`forward`, computed once (without gradients) and
        reused until the cache is invalidated."""
        if self.restore_user_e is None or self.restore_item_e is None:
            with torch.no_grad():
                self.restore_user_e, self.restore_item_e = self.forward()[:2]
        return self.restore_user_e, self.restore_item_e

    def predict(self, interaction: Interaction) -> torch.Tensor:
        """Scores of the batch's (user, item) pairs; in eval mode the propagation is cached like
        :meth:`full_sort_predict`'s (sampled evaluation calls this once per small batch)."""
        user_all, item_all = self.forward()[:2] if self.training else self.cached_final_vectors()
        user = interaction[self.USER_ID]
        item = interaction[self.ITEM_ID]
        return torch.mul(user_all[user], item_all[item]).sum(dim=1)

    def full_sort_predict(self, interaction: Interaction) -> torch.Tensor:
        """Scores of every item for the batch's users, from the cached propagation."""
        user_all, item_all = self.cached_final_vectors()
        user = interaction[self.USER_ID]
        return torch.matmul(user_all[user], item_all.transpose(0, 1)).view(-1)
