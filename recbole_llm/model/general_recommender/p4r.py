"""P4R: LLM-generated item profiles aligned with a GCN recommender.

Paper: Junyi Chen and Toyotaro Suzumura, "A Prompting-Based Representation Learning Method for
Recommendation with Large Language Models", RecSys 2024 ROEGEN workshop, arXiv 2409.16674.

Each item has a profile (summary / who would like it / why), written offline by an LLM or, with
the ``template`` backend, arranged from its own attributes (:mod:`recbole_llm.profiles`). The
profiles are embedded once by a frozen sentence encoder (disk-cached), projected into the CF
space by ``W_p`` and fused with the item ID embeddings (``text_fusion``); LightGCN propagation
over the normalised adjacency (:meth:`GeneralGraphRecommender.propagate`: the ``torch.sparse.mm``
product PyG's ``LGConv`` makes, with the transpose for backward built once instead of per batch)
and BPR train the rest. Profiles are loaded (template: generated) and embedded in the data step
(:meth:`P4R.prepare_data`), before the model is built.

Items without a profile are explicit: a boolean mask keeps their text term out (``add``: the ID
embedding alone; ``replace``: they fall back to their ID embedding; ``concat``: the text half is a
learned "no profile" vector). Users have ID embeddings only (padded by a learned vector in
``concat``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from recbole.model.init import xavier_uniform_initialization
from torch import nn

from recbole_llm.model.abstract_recommender import GeneralGraphRecommender, checked_choice
from recbole_llm.profiles.generate import load_item_profiles, profile_path
from recbole_llm.text import TextEncoder
from recbole_llm.text.features import TextEmbeddings, embed_texts

logger = logging.getLogger(__name__)

# The allowed values of every choice setting are annotated in properties/model/P4R.yaml.
ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}


@dataclass
class ItemProfiles:
    """Embedded item profiles attached to a training dataset by :meth:`P4R.prepare_data`.

    ``key`` (profile file, text encoder) tells a model built later with other profile settings
    that these embeddings are not its own.
    """

    features: TextEmbeddings
    file: Path
    key: tuple[str, str]


def _profiles_key(config, train_dataset) -> tuple[str, str]:
    return str(profile_path(config, train_dataset)), str(config["text_encoder"])


class P4R(GeneralGraphRecommender):
    """Profile embeddings fused with item ID embeddings, LightGCN propagation, BPR loss."""

    @classmethod
    def prepare_data(cls, config, train_dataset) -> ItemProfiles:
        """Data step: load (``template``: generate) the profiles of this training split, embed them
        with the frozen text encoder (disk-cached) and attach them as ``train_dataset.item_profiles``.

        Done before the model is built, so text encoding never runs between the model seed and
        the parameter initialisation.
        """
        texts, profile_file = load_item_profiles(config, train_dataset)
        features = embed_texts(texts, TextEncoder.from_config(config))
        profiles = ItemProfiles(features, Path(profile_file), (str(profile_file), str(config["text_encoder"])))
        train_dataset.item_profiles = profiles
        return profiles

    @classmethod
    def attached_profiles(cls, config, dataset) -> ItemProfiles:
        """The profiles :meth:`prepare_data` attached to ``dataset``; prepared now if absent or
        made for other profile settings (a model built outside recbole-llm's data step)."""
        profiles = getattr(dataset, "item_profiles", None)
        if isinstance(profiles, ItemProfiles) and profiles.key == _profiles_key(config, dataset):
            return profiles
        return cls.prepare_data(config, dataset)

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size = int(config["embedding_size"])
        self.n_layers = int(config["n_layers"])
        self.text_fusion = checked_choice(type(self), "text_fusion", str(config["text_fusion"]).lower())
        projector = checked_choice(type(self), "projector", str(config["projector"]).lower())

        # Profiles -> frozen text embeddings, one row per internal item id (row 0 = padding).
        item_profiles = self.attached_profiles(config, dataset)
        profiles, self.profile_file = item_profiles.features, item_profiles.file
        self.register_buffer("profile_embeddings", profiles.embeddings, persistent=False)
        self.register_buffer("profile_mask", profiles.mask, persistent=False)
        logger.info(
            "P4R: %d of %d items have a profile (%s)", int(profiles.mask.sum()), self.n_items - 1, self.profile_file
        )

        d = self.embedding_size
        self.user_embedding = nn.Embedding(self.n_users, d)
        self.item_embedding = nn.Embedding(self.n_items, d)
        self.projector = self._build_projector(config, projector, profiles.dim, d)
        if self.text_fusion == "concat":
            self.user_text_pad = nn.Parameter(torch.empty(1, d))
            self.missing_text = nn.Parameter(torch.empty(1, d))
        self.apply(xavier_uniform_initialization)
        if self.text_fusion == "concat":
            nn.init.xavier_uniform_(self.user_text_pad)
            nn.init.xavier_uniform_(self.missing_text)

    def _build_projector(self, config, projector: str, text_dim: int, d: int) -> nn.Module:
        """``W_p``: text space -> CF space (linear, or a 2-layer MLP)."""
        if projector == "linear":
            return nn.Linear(text_dim, d)
        name = checked_choice(type(self), "projector_activation", str(config["projector_activation"]).lower())
        hidden = int(config["projector_hidden"])
        return nn.Sequential(nn.Linear(text_dim, hidden), ACTIVATIONS[name](), nn.Linear(hidden, d))

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
        """Final user and item vectors (mean of layers 0..L), then the layer-0 ones."""
        users, items = self.ego_embeddings()
        layer = torch.cat([users, items], dim=0)
        total = layer
        for _ in range(self.n_layers):
            layer = self.propagate(layer)
            total = total + layer
        final = total / (self.n_layers + 1)
        user_final, item_final = torch.split(final, [self.n_users, self.n_items])
        return user_final, item_final, users, items

    def calculate_loss(self, interaction) -> torch.Tensor:
        self.invalidate_cache()
        user = interaction[self.USER_ID]
        pos_item = interaction[self.ITEM_ID]
        neg_item = interaction[self.NEG_ITEM_ID]
        user_all, item_all, user_ego, item_ego = self.forward()
        # index_select, not tensor[index]: the same rows, but its backward (index_add_) is deterministic and faster
        # on CPU than indexing's (index_put_ with accumulate: 7x slower on 2 threads, and not repeatable there)
        return self.bpr_loss(
            user_all.index_select(0, user),
            item_all.index_select(0, pos_item),
            item_all.index_select(0, neg_item),
            user_ego.index_select(0, user),
            item_ego.index_select(0, pos_item),
            item_ego.index_select(0, neg_item),
        )
