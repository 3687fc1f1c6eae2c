"""P4R: LLM-generated item profiles aligned with a GCN recommender.

Paper: Junyi Chen and Toyotaro Suzumura, "A Prompting-Based Representation Learning Method for
Recommendation with Large Language Models", RecSys 2024 ROEGEN workshop, arXiv 2409.16674.

Each item has a profile (summary / who would like it / why), written offline by an LLM or, with
the ``template`` backend, arranged from its own attributes (:mod:`recbole_llm.profiles`). The
profiles are embedded once by a frozen sentence encoder (disk-cached), projected into the CF
space by ``W_p`` and fused with the item ID embeddings (``text_fusion``); LightGCN propagation
(PyG ``LGConv`` over a normalised sparse adjacency built once) and BPR train the rest.

Items without a profile are explicit: a boolean mask keeps their text term out (``add``: the ID
embedding alone; ``replace``: they fall back to their ID embedding; ``concat``: the text half is a
learned "no profile" vector). Users have ID embeddings only (padded by a learned vector in
``concat``).
"""
from __future__ import annotations

import logging

import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.model.init import xavier_uniform_initialization
from recbole.model.loss import BPRLoss, EmbLoss
from recbole.utils import InputType
from torch import nn
from torch_geometric.nn import LGConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import coalesce, to_torch_csr_tensor

from recbole_llm.profiles.generate import load_item_profiles
from recbole_llm.text import TextEncoder
from recbole_llm.text.features import embed_texts

logger = logging.getLogger(__name__)

FUSIONS = ("add", "replace", "concat")
PROJECTORS = ("linear", "mlp")
ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}


def normalized_adjacency(user_ids: torch.Tensor, item_ids: torch.Tensor, n_users: int, n_items: int) -> torch.Tensor:
    """Symmetric-normalised user-item adjacency D^-1/2 A D^-1/2 as a sparse CSR tensor.

    Nodes are users ``0..n_users-1`` then items; duplicate interactions count once.
    """
    n_nodes = n_users + n_items
    items = item_ids + n_users
    edge_index = torch.cat([torch.stack([user_ids, items]), torch.stack([items, user_ids])], dim=1)
    edge_index = coalesce(edge_index, num_nodes=n_nodes)
    edge_index, edge_weight = gcn_norm(edge_index, None, n_nodes, add_self_loops=False)
    return to_torch_csr_tensor(edge_index, edge_weight, size=(n_nodes, n_nodes))


class P4R(GeneralRecommender):
    """Profile embeddings fused with item ID embeddings, LightGCN propagation, BPR loss."""

    input_type = InputType.PAIRWISE

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size = int(config["embedding_size"])
        self.n_layers = int(config["n_layers"])
        self.reg_weight = float(config["reg_weight"])
        self.require_pow = bool(config["require_pow"])
        self.text_fusion = str(config["text_fusion"]).lower()
        projector = str(config["projector"]).lower()
        if self.text_fusion not in FUSIONS:
            raise ValueError(f"text_fusion must be one of {', '.join(FUSIONS)}, got '{self.text_fusion}'")
        if projector not in PROJECTORS:
            raise ValueError(f"projector must be one of {', '.join(PROJECTORS)}, got '{projector}'")

        # Profiles -> frozen text embeddings, one row per internal item id (row 0 = padding).
        texts, self.profile_file = load_item_profiles(config, dataset)
        profiles = embed_texts(texts, TextEncoder.from_config(config))
        self.register_buffer("profile_embeddings", profiles.embeddings, persistent=False)
        self.register_buffer("profile_mask", profiles.mask, persistent=False)
        logger.info("P4R: %d of %d items have a profile (%s)", int(profiles.mask.sum()), self.n_items - 1,
                    self.profile_file)

        d = self.embedding_size
        self.user_embedding = nn.Embedding(self.n_users, d)
        self.item_embedding = nn.Embedding(self.n_items, d)
        if projector == "linear":
            self.projector = nn.Linear(profiles.dim, d)
        else:
            activation = ACTIVATIONS.get(str(config["projector_activation"]).lower())
            if activation is None:
                raise ValueError(f"projector_activation must be one of {', '.join(ACTIVATIONS)}")
            hidden = int(config["projector_hidden"])
            self.projector = nn.Sequential(nn.Linear(profiles.dim, hidden), activation(), nn.Linear(hidden, d))
        if self.text_fusion == "concat":
            self.user_text_pad = nn.Parameter(torch.empty(1, d))
            self.missing_text = nn.Parameter(torch.empty(1, d))

        self.adjacency = normalized_adjacency(
            dataset.inter_feat[self.USER_ID].long(), dataset.inter_feat[self.ITEM_ID].long(), self.n_users, self.n_items
        ).to(self.device)
        self.propagation = LGConv(normalize=False)  # the adjacency is normalised once, above
        self.mf_loss = BPRLoss()
        self.reg_loss = EmbLoss()
        self.restore_user_e = None  # cached propagated embeddings for full-sort evaluation
        self.restore_item_e = None
        self.apply(xavier_uniform_initialization)
        if self.text_fusion == "concat":
            nn.init.xavier_uniform_(self.user_text_pad)
            nn.init.xavier_uniform_(self.missing_text)
        self.other_parameter_name = ["restore_user_e", "restore_item_e"]

    def ego_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer-0 user and item embeddings after text fusion."""
        users = self.user_embedding.weight
        ids = self.item_embedding.weight
        text = self.projector(self.profile_embeddings)
        has_text = self.profile_mask.unsqueeze(1)
        if self.text_fusion == "add":
            items = ids + text * has_text
        elif self.text_fusion == "replace":
            items = torch.where(has_text, text, ids)
        else:
            items = torch.cat([ids, torch.where(has_text, text, self.missing_text.expand_as(text))], dim=1)
            users = torch.cat([users, self.user_text_pad.expand(users.shape[0], -1)], dim=1)
        return users, items

    def forward(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        users, items = self.ego_embeddings()
        layer = torch.cat([users, items], dim=0)
        total = layer
        for _ in range(self.n_layers):
            layer = self.propagation(layer, self.adjacency)
            total = total + layer
        final = total / (self.n_layers + 1)
        user_final, item_final = torch.split(final, [self.n_users, self.n_items])
        return user_final, item_final, users, items

    def calculate_loss(self, interaction) -> torch.Tensor:
        self.restore_user_e = self.restore_item_e = None
        user = interaction[self.USER_ID]
        pos_item = interaction[self.ITEM_ID]
        neg_item = interaction[self.NEG_ITEM_ID]
        user_all, item_all, user_ego, item_ego = self.forward()
        u = user_all[user]
        pos_scores = (u * item_all[pos_item]).sum(dim=1)
        neg_scores = (u * item_all[neg_item]).sum(dim=1)
        reg = self.reg_loss(user_ego[user], item_ego[pos_item], item_ego[neg_item], require_pow=self.require_pow)
        return self.mf_loss(pos_scores, neg_scores) + self.reg_weight * reg

    def predict(self, interaction) -> torch.Tensor:
        user_all, item_all, _, _ = self.forward()
        return (user_all[interaction[self.USER_ID]] * item_all[interaction[self.ITEM_ID]]).sum(dim=1)

    def full_sort_predict(self, interaction) -> torch.Tensor:
        if self.restore_user_e is None or self.restore_item_e is None:
            with torch.no_grad():
                self.restore_user_e, self.restore_item_e, _, _ = self.forward()
        return torch.matmul(self.restore_user_e[interaction[self.USER_ID]], self.restore_item_e.T).view(-1)
