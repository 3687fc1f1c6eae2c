"""AWRS: Avoidance-Aware Recommender System (Azevedo, Suzumura, Yasui, SDM 2025, arXiv 2407.09137).

Per candidate c of an impression at time t (code: toyolabo/awrs_recsys on NewsRecLib):

- engagement code k of c (exposure per impression x avoidance, an M x M grid) and its clicks, from
  training impressions before t minus ``awrs_lookback_hours`` (:mod:`recbole_llm.news.engagement`);
  recency through Time2Vec (one linear + sine terms);
- relevance: r = theta r_ic + (1 - theta) r_ctx with r_ic = w_a . n_c, r_ctx = w_b . [e_k ; t2v],
  theta = sigmoid(W_g [n_c ; e_k ; t2v]); s_rel = sigmoid(w_ctr clicks_c + w_r r);
- candidate-aware user vector: history news vectors joined with their engagement embeddings,
  multi-head self-attention, then attention weights from an MLP over [history ; candidate];
  s_click = <c, u_c>;
- score = (1 - eta) s_rel + eta s_click with eta = sigmoid(W u_c).

``add_avoidance_awareness: False`` and ``add_relevance_control: False`` together give the CAUM-style
baseline. The released code's two bugs are fixed: self-attention runs over the history (it ran over
the batch axis: ``nn.MultiheadAttention`` without ``batch_first`` on [B, L, D]) and padded history
slots are masked out of both attentions; ``awrs_legacy_quirks: True`` restores both for comparison.
CAUM's candidate-aware CNN is not ported (the self-attention sees the whole history).
"""

from __future__ import annotations

import torch
from torch import nn

from recbole_llm.news.base import NewsRecommender
from recbole_llm.news.data import CANDIDATES, HISTORY, impression_table
from recbole_llm.news.engagement import EngagementFeatures
from recbole_llm.news.layers import at_least_one, masked_softmax


class Time2Vec(nn.Module):
    """[..., 1] -> [..., dim]: one linear term and dim - 1 sine terms (Kazemi et al., 2019)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)
        self.periodic = nn.Linear(1, dim - 1)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        values = values.unsqueeze(-1)
        return torch.cat([self.linear(values), torch.sin(self.periodic(values))], dim=-1)


class AWRS(NewsRecommender):
    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        dim, eng_dim, m = int(config["news_dim"]), int(config["engagement_dim"]), int(config["engagement_matrix_size"])
        self.avoidance_aware = bool(config["add_avoidance_awareness"])
        self.relevance_control = bool(config["add_relevance_control"])
        self.legacy = bool(config["awrs_legacy_quirks"])
        self.log_clicks = bool(config["awrs_log_clicks"])
        self.engagement = EngagementFeatures(
            impression_table(dataset, int(config["max_history"])),
            self.n_items,
            matrix_size=m,
            bucket=float(config["awrs_bucket"]),
            lookback_hours=float(config["awrs_lookback_hours"]),
            logic=str(config["awrs_logic"]),
        )
        n_categories = len(self.categories.fields) if self.categories is not None else 0
        self.news_dense = nn.Linear(self.titles.output_dim + n_categories * int(config["category_dim"]), dim)
        self.dropout = nn.Dropout(self.dropout_prob)
        self.engagement_embedding = nn.Embedding(m * m + 1, eng_dim)
        joint = dim + eng_dim
        self.history_attention = nn.MultiheadAttention(joint, int(config["num_heads"]), batch_first=not self.legacy)
        hidden = [int(h) for h in config["user_attention_hidden"]]
        layers, width = [], 2 * joint
        for size in hidden:
            layers += [nn.Linear(width, size), nn.Tanh()]
            width = size
        self.user_attention = nn.Sequential(*layers, nn.Linear(width, 1))
        self.user_dense = nn.Linear(joint, dim)
        self.time2vec = Time2Vec(int(config["time2vec_dim"]))
        context = eng_dim + int(config["time2vec_dim"])
        self.relevance_news = nn.Linear(dim, 1)
        self.relevance_context = nn.Linear(context, 1)
        self.relevance_gate = nn.Linear(dim + context, 1)
        self.clicks_weight = nn.Parameter(torch.tensor(0.1))
        self.relevance_weight = nn.Parameter(torch.tensor(1.0))
        self.eta = nn.Linear(dim, 1)

    def encode_news(self, items: torch.Tensor) -> torch.Tensor:
        words, mask = self.titles(items)
        weights = mask.unsqueeze(-1).float()
        parts = [(words * weights).sum(1) / weights.sum(1).clamp(min=1)]  # mean over the real tokens
        if self.categories is not None:
            parts += self.categories(items)
        return self.news_dense(self.dropout(torch.cat(parts, dim=-1)))

    def _engaged(self, vectors: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        engagement = self.engagement_embedding(codes)
        if not self.avoidance_aware:
            engagement = torch.zeros_like(engagement)
        return torch.cat([vectors, engagement], dim=-1)

    def candidate_user(self, history: torch.Tensor, mask: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """[B, C, D]: a user vector per candidate, attention over the (engaged) history."""
        mask = at_least_one(mask)
        if self.legacy:  # released code: attention over the batch axis, no padding mask
            attended, _ = self.history_attention(history, history, history, need_weights=False)
        else:
            attended, _ = self.history_attention(history, history, history, key_padding_mask=~mask, need_weights=False)
        # first MLP layer on [history ; candidate] = W_h history + W_c candidate: no [B, C, L, 2D] tensor
        first, joint = self.user_attention[0], attended.shape[-1]
        from_history = attended @ first.weight[:, :joint].T
        from_candidate = candidates @ first.weight[:, joint:].T + first.bias
        hidden = torch.tanh(from_history[:, None] + from_candidate[:, :, None])  # [B, C, L, H]
        logits = self.user_attention[2:](hidden).squeeze(-1)  # [B, C, L]
        weights = torch.softmax(logits, -1) if self.legacy else masked_softmax(logits, mask[:, None])
        return self.user_dense(torch.einsum("bcl,bld->bcd", weights, attended))

    def relevance(
        self, news: torch.Tensor, codes: torch.Tensor, clicks: torch.Tensor, recency: torch.Tensor
    ) -> torch.Tensor:
        context = torch.cat([self.engagement_embedding(codes), self.time2vec(recency)], dim=-1)
        theta = torch.sigmoid(self.relevance_gate(torch.cat([news, context], dim=-1))).squeeze(-1)
        relevance = theta * self.relevance_news(news).squeeze(-1) + (1 - theta) * self.relevance_context(
            context
        ).squeeze(-1)
        clicks = torch.log1p(clicks) if self.log_clicks else clicks
        return torch.sigmoid(self.clicks_weight * clicks + self.relevance_weight * relevance)

    def forward(self, interaction) -> torch.Tensor:
        history_ids, candidate_ids = interaction[HISTORY], interaction[CANDIDATES]
        times = interaction["timestamp"]
        history_codes, _, _ = self.engagement(times, history_ids)
        codes, clicks, recency = self.engagement(times, candidate_ids)
        candidates = self.news_vectors(candidate_ids)
        users = self.candidate_user(
            self._engaged(self.news_vectors(history_ids), history_codes),
            history_ids > 0,
            self._engaged(candidates, codes),
        )
        click_score = (candidates * users).sum(-1)
        if not self.relevance_control:
            return click_score
        eta = torch.sigmoid(self.eta(users)).squeeze(-1)
        return (1 - eta) * self.relevance(candidates, codes, clicks, recency) + eta * click_score
