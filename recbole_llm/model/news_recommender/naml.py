"""NAML: Neural News Recommendation with Attentive Multi-View Learning (Wu et al., IJCAI 2019).

News: one vector per view (title through a CNN + additive attention; category and subcategory
embeddings through a dense layer, where the data has them), combined by view-level additive
attention. User: additive attention over the history's news vectors. Score: dot product.
Reference: microsoft/recommenders ``naml.py`` (400 filters, window 3, category 100). The abstract
("body") view is not used: the text cache holds title vectors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recbole_llm.news.base import NewsRecommender
from recbole_llm.news.layers import AdditiveAttention, CNNPooling


class NAML(NewsRecommender):
    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        filters = int(config["filter_num"])
        self.title_encoder = CNNPooling(
            self.titles.output_dim, filters, int(config["window_size"]), self.attention_dim, self.dropout_prob
        )
        n_views = len(self.categories.fields) if self.categories is not None else 0
        self.category_dense = nn.ModuleList(nn.Linear(int(config["category_dim"]), filters) for _ in range(n_views))
        self.view_attention = AdditiveAttention(filters, self.attention_dim)
        self.user_attention = AdditiveAttention(filters, self.attention_dim)

    def encode_news(self, items: torch.Tensor) -> torch.Tensor:
        words, mask = self.titles(items)
        views = [self.title_encoder(words, mask)]
        if self.categories is not None:
            views += [F.relu(dense(emb)) for dense, emb in zip(self.category_dense, self.categories(items))]
        stacked = torch.stack(views, dim=1)
        return self.view_attention(stacked, torch.ones(stacked.shape[:2], dtype=torch.bool, device=stacked.device))

    def encode_user(self, history: torch.Tensor, mask: torch.Tensor, interaction) -> torch.Tensor:
        return self.user_attention(history, mask)
