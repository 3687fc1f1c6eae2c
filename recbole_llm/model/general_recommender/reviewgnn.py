"""ReviewGNN: a graph recommender whose second layer reads the text of user reviews.

Reference:
    Kanezashi, Suzumura, Reid, Rahman, Hirate. "LLM-Augmented Graph Neural Recommenders:
    Integrating User Reviews." arXiv 2504.02195 **v1** (April 2025). No public code; this follows
    ``specs/reviewgnn.md`` and makes every open choice a switch in ``properties/model/ReviewGNN.yaml``.

Structure (users and items are nodes of one bipartite graph with two edge kinds):

* purchase edges: every (user, item) pair of the **training** split;
* review edges: the training pairs whose interaction carries a non-empty review text.

``r_ui = tanh(FC(e_ui))`` reduces the frozen sentence embedding ``e_ui`` of a review to the
model's size. Layer 1 is a GCN layer over purchase edges. Layer 2 (the ReviewGNN layer) sums two
relations with separate weights::

    m_u = sum_{i in N_s(u)} c_ui W_s h_i  +  sum_{i in N_r(u)} c'_ui W_r [h_i || r_ui]
    h_u^(2) = act(m_u)            (items symmetric)

Both sums are computed with sparse matrices built once (PyG's ``gcn_norm`` and
``to_torch_csr_tensor``, see :mod:`recbole_llm.model.abstract_recommender`): since
``W_r`` is linear, ``sum c' W_r [h_i || r_ui] = W_r [sum c' h_i || sum c' r_ui]``, i.e. one
sparse product with the review adjacency and one with the (node x review edge) incidence matrix.
Scores are dot products of the final vectors; the loss is BPR + ``alpha`` * MSE(review, user/item)
with ``alpha`` adapted after each validation (:meth:`ReviewGNN.update_alpha`, called by the trainer).

``backbone: lightgcn`` swaps the collaborative part for LightGCN's propagation (no W_1, no W_s,
no activation, ``n_layers`` layers, final = mean of layers 0..L); the review relation
``W_r [h || r]`` joins the last layer's message and the alignment loss stays: reviews on top of
the strongest graph baseline rather than on the paper's GCN.

Speed: every sparse product multiplies by a transpose built once in backward
(:func:`~recbole_llm.model.abstract_recommender.sparse_matmul`); what remains per step is what
depends on the weights (FC-Tanh over the distinct training reviews, once per step). When every
training pair has a review (Amazon 5-core sets), the review adjacency is the purchase adjacency
entry for entry (:attr:`ReviewGNN.review_adj_shared`, checked once): the last layer then computes
``A h`` once for both relations (``A (h W_s) = (A h) W_s``; with gcn the two weights on ``A h``
are added, ``W_s + W_rh``, so one product remains). Further per-step savings, each exact up to
float rounding: ``W_r [x || y]`` as ``W_rh x + W_rr y`` added in place (no concatenation); hidden
reviews read a zero row in the gather from the distinct texts (no multiplication by keep
weights); the MSE term gathers from the distinct texts' vectors; row gathers use
``index_select`` (its backward is an ``index_add``; ``[]`` accumulates through a slower
``index_put``), one for the batch's users, positives and negatives; the L2 term is
:func:`~recbole_llm.model.abstract_recommender.batch_emb_loss` (from per-node squared norms when
the graph has fewer nodes than the batch has rows).

``use_reviews: false`` removes the review branch (no FC-Tanh, no W_r, no MSE): the GCN baseline
through the same code. :class:`ReviewGCN` is that baseline under its own name, for comparisons
(``config_overrides``: Config merges ReviewGNN.yaml, then ``use_reviews: false``).

Leakage: the model only sees the dataset it is constructed with, which RecBole's quick start
passes as ``train_data._dataset`` (training rows only); review texts of validation and test
interactions are never read, encoded, or put in the graph.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from recbole.model.init import xavier_uniform_initialization
from torch import nn

from recbole_llm.model.abstract_recommender import (
    GeneralGraphRecommender,
    batch_emb_loss,
    checked_choice,
    csr_equal,
    csr_matrix,
    normalised_edges,
    sparse_matmul,
    transposed_csr_matrix,
)
from recbole_llm.trainer.adaptive_alpha import AdaptiveAlphaMixin

logger = logging.getLogger(__name__)

REVIEW_FIELD_CHOICES = {
    "both": ["summary", "review_text"],  # joined as "summary. reviewText" (text_field_separator)
    "review_text": ["review_text"],
    "summary": ["summary"],
}


def review_fields_from_config(config) -> list[str]:
    """The ``.inter`` text fields that make a review (``review_field``: a preset name or a list)."""
    value = config["review_field"]
    if isinstance(value, str):
        if value not in REVIEW_FIELD_CHOICES:
            raise ValueError(
                f"ReviewGNN: review_field={value!r} must be one of {list(REVIEW_FIELD_CHOICES)} "
                "or a list of .inter text field names."
            )
        return list(REVIEW_FIELD_CHOICES[value])
    fields = list(value or [])
    if not fields:
        raise ValueError("ReviewGNN: review_field is empty; set use_reviews: false for the GCN baseline.")
    return fields


class ReviewGNN(GeneralGraphRecommender):
    """Two-layer GNN over purchase and review edges with a BPR + adaptive-MSE loss."""

    #: settings a subclass forces over the yaml (read by Config; ``ReviewGCN`` sets use_reviews False)
    config_overrides: dict[str, Any] = {}
    #: composed into RecBole's trainer by recbole_llm.trainer.get_trainer: alpha follows validation
    trainer_mixins = (AdaptiveAlphaMixin,)

    def __init__(self, config, dataset):
        model = type(self)
        normalisation = checked_choice(model, "normalisation", config["normalisation"])
        super().__init__(config, dataset, norm=normalisation, self_loop=bool(config["self_loop"]))
        self.normalisation = normalisation
        self.self_loop: bool = bool(config["self_loop"])
        self.embedding_size: int = config["embedding_size"]
        # Config already applies config_overrides; reading it here too keeps the alias right when
        # the model is built with a config made for ReviewGNN.
        self.use_reviews: bool = bool(self.config_overrides.get("use_reviews", config["use_reviews"]))
        self.backbone = checked_choice(model, "backbone", config["backbone"])
        self.n_layers = int(config["n_layers"])
        if self.n_layers < 1 or (self.backbone == "gcn" and self.n_layers != 2):
            raise ValueError(
                f"ReviewGNN: n_layers must be 2 with backbone gcn (the paper's two layers) and >= 1 "
                f"with backbone lightgcn, got {self.n_layers} with backbone {self.backbone}."
            )
        self.layer1_transform = checked_choice(model, "layer1_transform", config["layer1_transform"])
        self.activation = checked_choice(model, "activation", config["activation"])
        self.layer_combine = checked_choice(model, "layer_combine", config["layer_combine"])
        self.mse_target = checked_choice(model, "mse_target", config["mse_target"])
        self.alpha_mode = checked_choice(model, "alpha_mode", config["alpha_mode"])
        self.alpha_0: float = float(config["alpha_0"])
        self.alpha_min: float = float(config["alpha_min"])
        self.hide_target_reviews: bool = bool(config["hide_target_reviews"])
        self.max_hidden_review_share = float(config["max_hidden_review_share"])
        if not 0.0 < self.max_hidden_review_share <= 1.0:
            raise ValueError(
                f"ReviewGNN: max_hidden_review_share must be in (0, 1], got {self.max_hidden_review_share}."
            )
        self.center_reviews: bool = bool(config["center_reviews"])
        if not 0.0 <= self.alpha_min <= self.alpha_0:
            raise ValueError(f"ReviewGNN: need 0 <= alpha_min <= alpha_0, got {self.alpha_min}, {self.alpha_0}.")
        if config["finetune_text_encoder"]:
            raise NotImplementedError(
                "ReviewGNN: finetune_text_encoder: true is not implemented; review embeddings are "
                "precomputed and frozen (the spec's default)."
            )
        self._build_layers(config, dataset)
        self.apply(xavier_uniform_initialization)

    def _build_layers(self, config, dataset) -> None:
        """Parameters in a fixed creation order (it decides the seeded initialisation)."""
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        gcn = self.backbone == "gcn"  # the lightgcn backbone has no weights besides the embeddings
        self.layer1_weight = (
            nn.Linear(self.embedding_size, self.embedding_size, bias=False)
            if gcn and self.layer1_transform == "linear"
            else None
        )
        # W_s: purchase relation of layer 2; W_r: review relation on [h_i || r_ui].
        self.purchase_weight = nn.Linear(self.embedding_size, self.embedding_size, bias=False) if gcn else None
        # alpha lives in buffers so RecBole's checkpoints save and restore it with the weights.
        self.register_buffer("alpha", torch.tensor(self.alpha_0))
        self.register_buffer("alpha_best_valid", torch.tensor(0.0))
        self.review_fields: list[str] = []
        self.n_review_edges = 0
        #: the review adjacency equals the purchase adjacency: the last layer computes ``A h`` once
        self.review_adj_shared = False
        if not self.use_reviews:
            return
        self.review_fields = review_fields_from_config(config)
        self._build_review_graph(config, dataset)
        self.review_fc = nn.Linear(self.distinct_review_embeddings.shape[1], self.embedding_size)
        self.review_weight = nn.Linear(2 * self.embedding_size, self.embedding_size, bias=False)

    # ------------------------------------------------------------------ graph construction
    def _build_review_graph(self, config, dataset) -> None:
        """Review edges, their frozen text embeddings and the sparse operators of layer 2.

        Reads only ``dataset.inter_feat`` (the training rows). Several training rows of one pair
        (repeated reviews) are averaged into one review edge; rows with empty text make no edge.
        """
        from recbole_llm.text.features import interaction_text_embeddings

        text = interaction_text_embeddings(config, dataset, fields=self.review_fields)
        mask = text.mask.bool().cpu().numpy()
        users = dataset.inter_feat[self.USER_ID].numpy().astype(np.int64)[mask]
        items = dataset.inter_feat[self.ITEM_ID].numpy().astype(np.int64)[mask]
        row_embeddings = text.embeddings.float().cpu()[torch.from_numpy(mask)]
        keys, inverse = np.unique(users * self.n_items + items, return_inverse=True)
        n_edges = len(keys)
        if n_edges == 0:
            logger.warning(
                "ReviewGNN: no training interaction has review text in %s; layer 2 uses purchase edges only.",
                self.review_fields,
            )
        inverse_t = torch.from_numpy(inverse.reshape(-1))
        summed = torch.zeros(n_edges, row_embeddings.shape[1]).index_add_(0, inverse_t, row_embeddings)
        counts = torch.bincount(inverse_t, minlength=n_edges).clamp(min=1).unsqueeze(1).float()
        edge_users = torch.from_numpy(keys // self.n_items)
        edge_items = torch.from_numpy(keys % self.n_items) + self.n_users

        edge_embeddings = summed / counts
        if self.center_reviews and n_edges > 0:
            # sentence embeddings share a large common direction; summed over a node's reviews it
            # grows with the node's degree and turns layer 2 into a popularity score
            edge_embeddings = edge_embeddings - edge_embeddings.mean(dim=0, keepdim=True)
        self.n_review_edges = n_edges
        # identical texts (one review copied onto several products, stock phrases) are transformed
        # once per step: FC-Tanh runs over the distinct embeddings, edges index into them
        distinct, edge_review = torch.unique(edge_embeddings, dim=0, return_inverse=True)
        self.register_buffer("distinct_review_embeddings", distinct, persistent=False)
        self.register_buffer("edge_review", edge_review.reshape(-1), persistent=False)
        # sorted pair keys: a batch's (user, item) finds its review edge by binary search
        self.register_buffer("review_pair_keys", torch.from_numpy(keys), persistent=False)
        self._register_review_operators(keys, edge_users, edge_items)
        logger.info(
            "ReviewGNN: %d review edges (%d distinct texts) from %d training rows with text (fields %s); "
            "review adjacency %s the purchase adjacency.",
            n_edges,
            len(distinct),
            int(mask.sum()),
            self.review_fields,
            "is" if self.review_adj_shared else "differs from",
        )

    def _register_review_operators(self, keys: np.ndarray, edge_users: torch.Tensor, edge_items: torch.Tensor) -> None:
        """The normalised review adjacency (``c'_ui``) and the node x review-edge incidence matrix
        with the same coefficients: row ``v``, column ``e`` holds ``A[v, other end of e]``, so one
        sparse product sums each node's ``c'_ui r_ui``."""
        edge_index, weight = normalised_edges(edge_users, edge_items, self.n_nodes, self.normalisation)
        square = (self.n_nodes, self.n_nodes)
        self.register_buffer("review_adj", csr_matrix(edge_index, weight, square), persistent=False)
        self.register_buffer("review_adj_t", transposed_csr_matrix(edge_index, weight, square), persistent=False)
        self.review_adj_shared = csr_equal(self.review_adj, self.adjacency)
        rows, cols = edge_index
        users, items = torch.minimum(rows, cols), torch.maximum(rows, cols) - self.n_users
        edge_ids = torch.searchsorted(torch.from_numpy(keys), users * self.n_items + items)
        incidence_index, shape = torch.stack([rows, edge_ids]), (self.n_nodes, self.n_review_edges)
        self.register_buffer("review_incidence", csr_matrix(incidence_index, weight, shape), persistent=False)
        self.register_buffer(
            "review_incidence_t", transposed_csr_matrix(incidence_index, weight, shape), persistent=False
        )

    # ------------------------------------------------------------------ propagation
    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) if self.activation == "relu" else x

    @property
    def review_embeddings(self) -> torch.Tensor:
        """The frozen (centred) text embedding of every review edge, ``[n_review_edges, dim]``."""
        return self.distinct_review_embeddings[self.edge_review]

    def distinct_review_vectors(self) -> torch.Tensor:
        """r = tanh(FC(e)) once per distinct review text, ``[n_distinct_texts, embedding_size]``;
        review edge ``k`` reads row ``edge_review[k]``."""
        return torch.tanh(self.review_fc(self.distinct_review_embeddings))

    def review_vectors(self) -> torch.Tensor:
        """r_ui = tanh(FC(e_ui)) for every review edge, ``[n_review_edges, embedding_size]``."""
        return self.distinct_review_vectors().index_select(0, self.edge_review)

    def review_sum(self, distinct_reviews: torch.Tensor, review_keep: torch.Tensor | None = None) -> torch.Tensor:
        """``sum_{i in N_r(v)} c'_vi r_vi`` of every node ``v``, without the hidden review edges
        (``review_keep`` 0). A hidden edge reads an appended zero row in the gather from the
        distinct texts, which spares a multiplication of every edge's vector by its keep weight."""
        if review_keep is None:
            kept = distinct_reviews.index_select(0, self.edge_review)
        else:
            padded = torch.cat([distinct_reviews, distinct_reviews.new_zeros(1, distinct_reviews.shape[1])])
            hidden_to_zero = self.edge_review.masked_fill(review_keep == 0, len(distinct_reviews))
            kept = padded.index_select(0, hidden_to_zero)
        return sparse_matmul(self.review_incidence, self.review_incidence_t, kept)

    def collaborative_layers(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Layers ``h0 .. h_{L-1}`` and ``A h_{L-1}``, the propagated last layer that the last
        layer's purchase relation and, when the graphs are equal, its review relation read.

        ``gcn`` (the paper): h1 = act(A H0 W_1). ``lightgcn``: h_k = A h_{k-1} without weights or
        activation.
        """
        h0 = torch.cat([self.user_embedding.weight, self.item_embedding.weight], dim=0)
        layers = [h0]
        if self.backbone == "gcn":
            x1 = self.layer1_weight(h0) if self.layer1_weight is not None else h0
            layers.append(self._act(self.propagate(x1)))
        else:
            for _ in range(self.n_layers - 1):
                layers.append(self.propagate(layers[-1]))
        return layers, self.propagate(layers[-1])

    def last_message(
        self, h: torch.Tensor, propagated: torch.Tensor, review_keep: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The last layer's message ``P + W_r [A' h || sum c' r]`` (before the activation) and the
        review vectors of the distinct texts (``None`` without reviews).

        ``h``: layer ``L-1``; ``propagated``: ``A h``. The purchase relation ``P`` is
        ``(A h) W_s`` (gcn; the paper's ``A (h W_s)`` by linearity) or ``A h`` (lightgcn).
        ``W_r [x || y] = W_rh x + W_rr y`` is applied as two products added in place, without
        concatenating. When the review adjacency ``A'`` is ``A`` (:attr:`review_adj_shared`),
        ``A' h`` is ``propagated``, and with gcn ``(A h) W_s + (A h) W_rh = (A h)(W_s + W_rh)``.
        """
        if not self.use_reviews:
            return (self.purchase_weight(propagated) if self.purchase_weight is not None else propagated), None
        distinct_reviews = self.distinct_review_vectors()
        review_sum = self.review_sum(distinct_reviews, review_keep)
        w_neighbour, w_review = self.review_weight.weight.split(self.embedding_size, dim=1)
        if self.review_adj_shared and self.purchase_weight is not None:
            message = F.linear(propagated, self.purchase_weight.weight + w_neighbour)
        else:
            purchase = self.purchase_weight(propagated) if self.purchase_weight is not None else propagated
            shared = self.review_adj_shared
            neighbour_sum = propagated if shared else sparse_matmul(self.review_adj, self.review_adj_t, h)
            message = torch.addmm(purchase, neighbour_sum, w_neighbour.t())
        return torch.addmm(message, review_sum, w_review.t()), distinct_reviews

    def node_vectors(
        self, review_keep: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Layer-0 and final vectors of every node (users first), and the review vectors of the
        distinct texts (see :meth:`distinct_review_vectors`).

        ``review_keep``: optional [n_review_edges] weights, 1 = keep, 0 = leave the edge's review
        out of the last layer (training hides the batch's own reviews, see ``hide_target_reviews``).
        """
        layers, propagated = self.collaborative_layers()
        message, distinct_reviews = self.last_message(layers[-1], propagated, review_keep)
        last = self._act(message) if self.backbone == "gcn" else message
        layers.append(last)
        final = sum(layers[1:], layers[0]) / float(len(layers)) if self.layer_combine == "mean" else last
        return layers[0], final, distinct_reviews

    def forward(
        self, review_keep: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Final user and item vectors, and the review vectors of the distinct texts (for the MSE
        term); see :meth:`node_vectors`."""
        _, final, distinct_reviews = self.node_vectors(review_keep)
        user_e, item_e = torch.split(final, [self.n_users, self.n_items])
        return user_e, item_e, distinct_reviews

    # ------------------------------------------------------------------ loss
    def review_edge_index(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """Index of the review edge of each (user, item), or -1 when that pair has no review."""
        keys = user.long() * self.n_items + item.long()
        if self.n_review_edges == 0:
            return torch.full_like(keys, -1)
        pos = torch.searchsorted(self.review_pair_keys, keys).clamp(max=self.n_review_edges - 1)
        return pos.masked_fill(self.review_pair_keys[pos] != keys, -1)

    def alignment_loss(self, distinct_reviews, u, i, index) -> torch.Tensor:
        """MSE between each review vector and its user/item representation (``mse_target``),
        averaged over the batch pairs that are review edges (pairs without review weigh 0).

        ``distinct_reviews``: :meth:`distinct_review_vectors`; ``u``/``i``: final vectors of the
        batch's pairs; ``index``: their review edges (-1: none). Squared errors are summed per
        row first, so the 0/1 weights multiply one number per pair.
        """
        weight = (index >= 0).to(distinct_reviews.dtype)
        r = distinct_reviews.index_select(0, self.edge_review.index_select(0, index.clamp(min=0)))
        if self.mse_target == "both":
            error = F.mse_loss(u, r, reduction="none") + F.mse_loss(i, r, reduction="none")
        elif self.mse_target == "user":
            error = F.mse_loss(u, r, reduction="none")
        elif self.mse_target == "item":
            error = F.mse_loss(i, r, reduction="none")
        else:
            error = F.mse_loss(u * i, r, reduction="none")
        return torch.dot(error.sum(dim=1), weight) / (weight.sum() * r.shape[1]).clamp(min=1.0)

    def hidden_target_reviews(self, review_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Keep weights over the review edges for one training step, and the batch rows that
        enter its loss (``None``: every row).

        The batch's own review would identify its positive pair in both end nodes (a shortcut
        test pairs never have), so it is left out of the step's messages. When the batch holds
        more reviewed pairs than ``max_hidden_review_share`` of the review edges (a small
        dataset in one batch would hide every review, and the review messages would never reach
        a training step), a random subset of that size is hidden and only the pairs whose review
        is hidden, or who have none, enter the loss; the other reviews stay in the messages.
        """
        keep = torch.ones(self.n_review_edges, device=review_index.device)
        targets = review_index[review_index >= 0]
        keep[targets] = 0.0
        cap = max(1, int(self.max_hidden_review_share * self.n_review_edges))
        if len(targets) <= cap:
            return keep, None
        # the batch's distinct review edges in increasing order (torch.unique's), read off the
        # keep weights instead of sorting the batch
        distinct = (keep == 0.0).nonzero().squeeze(1)
        if len(distinct) <= cap:
            return keep, None
        hidden = distinct[torch.randperm(len(distinct), device=distinct.device)[:cap]]
        keep.fill_(1.0)[hidden] = 0.0
        rows = (review_index < 0) | (keep[review_index.clamp(min=0)] == 0.0)
        return keep, rows

    def calculate_loss(self, interaction):
        self.invalidate_cache()
        user = interaction[self.USER_ID]
        pos_item = interaction[self.ITEM_ID]
        neg_item = interaction[self.NEG_ITEM_ID]
        review_index = review_keep = None
        if self.use_reviews:
            review_index = self.review_edge_index(user, pos_item)
            if self.hide_target_reviews:
                review_keep, rows = self.hidden_target_reviews(review_index)
                if rows is not None:
                    picked = rows.nonzero().squeeze(1)
                    user, pos_item, neg_item, review_index = (
                        t.index_select(0, picked) for t in (user, pos_item, neg_item, review_index)
                    )
        layer0, final, distinct_reviews = self.node_vectors(review_keep)
        # the batch's users, positives and negatives in one gather (the rows of user_all[user],
        # item_all[pos_item], ...); the L2 term reads the same node ids in the layer-0 vectors
        nodes = torch.cat([user, pos_item + self.n_users, neg_item + self.n_users])
        u_e, pos_e, neg_e = final.index_select(0, nodes).split(len(user))
        pos_scores, neg_scores = (u_e * pos_e).sum(dim=1), (u_e * neg_e).sum(dim=1)
        reg = batch_emb_loss(layer0, nodes, 3, self.require_pow)
        loss = self.mf_loss(pos_scores, neg_scores) + self.reg_weight * reg
        if self.use_reviews:
            loss = loss + self.alpha * self.alignment_loss(distinct_reviews, u_e, pos_e, review_index)
        return loss

    # ------------------------------------------------------------------ adaptive alpha
    @torch.no_grad()
    def update_alpha(self, valid_hit: float) -> float:
        """Spec rule, after each validation: alpha = alpha_0 * (1 - HR / best HR seen), clipped.

        Strong collaborative filtering (HR at its best) -> alpha_min, BPR dominates; HR falling
        below its best -> the review term weighs more. ``fixed`` keeps alpha_0.
        """
        if self.alpha_mode == "adaptive" and self.use_reviews:
            best = max(float(self.alpha_best_valid), float(valid_hit))
            self.alpha_best_valid.fill_(best)
            ratio = valid_hit / best if best > 0 else 1.0
            self.alpha.fill_(float(np.clip(self.alpha_0 * (1.0 - ratio), self.alpha_min, self.alpha_0)))
        return float(self.alpha)


class ReviewGCN(ReviewGNN):
    """The GCN baseline of ReviewGNN (``use_reviews: false``) under its own name.

    ``--compare=ReviewGNN,ReviewGCN,...`` runs models by name; both share ReviewGNN's yaml and code
    path and differ only by the review branch.
    """

    config_overrides = {"use_reviews": False}
