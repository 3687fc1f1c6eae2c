"""NRMS: Neural News Recommendation with Multi-Head Self-Attention (Wu et al., EMNLP-IJCNLP 2019).

News: multi-head self-attention over the title's vectors, then additive attention
(``num_heads`` x ``head_dim`` = news vector size). User: the same over the history's news vectors.
Score: dot product. Reference: microsoft/recommenders ``nrms.py`` (20 heads x 20, query 200).
"""

from __future__ import annotations

import torch

from recbole_llm.news.base import NewsRecommender
from recbole_llm.news.layers import SelfAttentionPooling


class NRMS(NewsRecommender):
    uses_categories = False

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        heads, head_dim = int(config["num_heads"]), int(config["head_dim"])
        self.word_encoder = SelfAttentionPooling(
            self.titles.output_dim, heads, head_dim, self.attention_dim, self.dropout_prob
        )
        self.user_encoder = SelfAttentionPooling(
            heads * head_dim, heads, head_dim, self.attention_dim, self.dropout_prob
        )

    def encode_news(self, items: torch.Tensor) -> torch.Tensor:
        words, mask = self.titles(items)
        return self.word_encoder(words, mask)

    def encode_user(self, history: torch.Tensor, mask: torch.Tensor, interaction) -> torch.Tensor:
        return self.user_encoder(history, mask)
