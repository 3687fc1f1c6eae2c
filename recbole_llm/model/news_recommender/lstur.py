"""LSTUR: Neural News Recommendation with Long- and Short-term User Representations (An et al., ACL 2019).

News: title CNN + additive attention, concatenated with category/subcategory embeddings where the
data has them, projected to ``filter_num``. Short-term user: a GRU over the history's news vectors.
Long-term user: a user-id embedding, used as the GRU's initial state (``long_term: ini``) or
concatenated with its last state and projected (``con``); during training it is dropped for a whole
user with probability ``user_mask_prob`` (NewsRecLib: 0.5). Score: dot product.
Reference: microsoft/recommenders ``lstur.py`` (400 filters, window 3, GRU 400).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from recbole_llm.model.abstract_recommender import checked_choice
from recbole_llm.news.base import NewsRecommender
from recbole_llm.news.layers import CNNPooling


def left_aligned(history: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's real entries to the front (GRUs read front to back): (values, lengths)."""
    lengths = mask.sum(1)
    width = history.shape[1]
    index = (torch.arange(width, device=history.device) + (width - lengths)[:, None]) % width
    return torch.gather(history, 1, index[..., None].expand_as(history)), lengths


class LSTUR(NewsRecommender):
    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.long_term = checked_choice(type(self), "long_term", config["long_term"])
        self.user_mask_prob = float(config["user_mask_prob"])
        filters = int(config["filter_num"])
        self.title_encoder = CNNPooling(
            self.titles.output_dim, filters, int(config["window_size"]), self.attention_dim, self.dropout_prob
        )
        n_categories = len(self.categories.fields) if self.categories is not None else 0
        self.news_dense = (
            nn.Linear(filters + n_categories * int(config["category_dim"]), filters) if n_categories else nn.Identity()
        )
        self.user_embedding = nn.Embedding(self.n_users, filters, padding_idx=0)
        self.gru = nn.GRU(filters, filters, batch_first=True)
        self.combine = nn.Linear(2 * filters, filters) if self.long_term == "con" else None

    def encode_news(self, items: torch.Tensor) -> torch.Tensor:
        words, mask = self.titles(items)
        parts = [self.title_encoder(words, mask)]
        if self.categories is not None:
            parts += self.categories(items)
        return self.news_dense(torch.cat(parts, dim=-1))

    def long_term_user(self, users: torch.Tensor) -> torch.Tensor:
        long_term = self.user_embedding(users)
        if self.training and self.user_mask_prob > 0:
            keep = torch.rand(len(users), 1, device=users.device) >= self.user_mask_prob
            long_term = long_term * keep
        return long_term

    def encode_user(self, history: torch.Tensor, mask: torch.Tensor, interaction) -> torch.Tensor:
        long_term = self.long_term_user(interaction[self.USER_ID])
        values, lengths = left_aligned(history, mask)
        packed = pack_padded_sequence(values, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        initial = long_term.unsqueeze(0).contiguous() if self.long_term == "ini" else None
        _, last = self.gru(packed, initial)
        short_term = torch.where((lengths > 0)[:, None], last.squeeze(0), torch.zeros_like(last.squeeze(0)))
        if self.long_term == "ini":
            return torch.where((lengths > 0)[:, None], short_term, long_term)
        return self.combine(torch.cat([short_term, long_term], dim=-1))
