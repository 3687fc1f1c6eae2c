r"""BSARec: Beyond Self-Attention for Sequential Recommendation (Shin et al., AAAI 2024, arXiv 2312.10325).

Reference code: ``yehjin-shin/BSARec``. Each block mixes a frequency layer (a low-pass filter over
the sequence axis plus a learned per-dimension rescaling of the high band) with causal multi-head
self-attention, ``alpha * frequency + (1 - alpha) * attention``, then a position-wise FFN.

Our decision (documented, yaml switch ``right_align``): RecBole pads sequences on the right, the
original pads on the left, and the low-pass filter is not shift-invariant, so ``forward``
right-aligns each sequence (its last item at the last position) before embedding it.
"""

from __future__ import annotations

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.layers import FeedForward, MultiHeadAttention
from recbole.model.loss import BPRLoss
from torch import nn


def right_align(item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
    """Move each right-padded row's items to the end: ``[a b c 0 0] -> [0 0 a b c]``."""
    max_len = item_seq.size(1)
    shift = (max_len - item_seq_len).unsqueeze(1)  # [B, 1]
    source = torch.arange(max_len, device=item_seq.device).unsqueeze(0) - shift
    aligned = item_seq.gather(1, source.clamp(min=0))
    return aligned.masked_fill(source < 0, 0)


class FrequencyLayer(nn.Module):
    """Low band kept exactly, high band rescaled by ``beta = sqrt_beta ** 2`` (a learned d-vector).

    ``low = irfft(rfft(X)[: c // 2 + 1])`` over the sequence axis; ``X~ = low + beta * (X - low)``;
    output ``LayerNorm(Dropout(X~) + X)``.
    """

    def __init__(self, hidden_size: int, c: int, dropout: float, layer_norm_eps: float) -> None:
        super().__init__()
        self.low_bins = c // 2 + 1
        self.sqrt_beta = nn.Parameter(torch.randn(1, 1, hidden_size))
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def low_pass(self, x: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.rfft(x, dim=1, norm="ortho")
        spectrum[:, self.low_bins :, :] = 0
        return torch.fft.irfft(spectrum, n=x.size(1), dim=1, norm="ortho")

    def filtered(self, x: torch.Tensor) -> torch.Tensor:
        """``low + beta * high``: the signal before dropout and the residual LayerNorm."""
        low = self.low_pass(x)
        return low + self.sqrt_beta**2 * (x - low)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(self.dropout(self.filtered(x)) + x)


class BSARecBlock(nn.Module):
    """Frequency layer and causal self-attention mixed by ``alpha``, then the FFN."""

    def __init__(self, config) -> None:
        super().__init__()
        hidden = config["hidden_size"]
        self.alpha = config["alpha"]
        self.frequency = FrequencyLayer(hidden, config["c"], config["hidden_dropout_prob"], config["layer_norm_eps"])
        self.attention = MultiHeadAttention(
            config["n_heads"],
            hidden,
            config["hidden_dropout_prob"],
            config["attn_dropout_prob"],
            config["layer_norm_eps"],
        )
        self.feed_forward = FeedForward(
            hidden,
            config["inner_size"],
            config["hidden_dropout_prob"],
            config["hidden_act"],
            config["layer_norm_eps"],
        )

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mixed = self.alpha * self.frequency(hidden_states) + (1 - self.alpha) * self.attention(
            hidden_states, attention_mask
        )
        return self.feed_forward(mixed)


class BSARec(SequentialRecommender):
    """BSARec in RecBole: item + learned position embeddings, ``n_layers`` BSARec blocks, next-item scoring."""

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.hidden_size = config["hidden_size"]
        self.initializer_range = config["initializer_range"]
        self.loss_type = config["loss_type"]
        self.right_align = config["right_align"]

        self.item_embedding = nn.Embedding(self.n_items, self.hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(self.max_seq_length, self.hidden_size)
        self.layer_norm = nn.LayerNorm(self.hidden_size, eps=config["layer_norm_eps"])
        self.dropout = nn.Dropout(config["hidden_dropout_prob"])
        self.blocks = nn.ModuleList(BSARecBlock(config) for _ in range(config["n_layers"]))

        if self.loss_type == "BPR":
            self.loss_fct = BPRLoss()
        elif self.loss_type == "CE":
            self.loss_fct = nn.CrossEntropyLoss()
        else:
            raise NotImplementedError(f"BSARec loss_type must be 'CE' or 'BPR', got {self.loss_type!r}.")
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """The original's initialisation: N(0, initializer_range) weights, zero biases, unit LayerNorm."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """Sequence representation ``[B, H]`` of the last item of each sequence."""
        if self.right_align:
            item_seq = right_align(item_seq, item_seq_len)
        positions = torch.arange(item_seq.size(1), device=item_seq.device).unsqueeze(0)
        hidden = self.item_embedding(item_seq) + self.position_embedding(positions)
        hidden = self.dropout(self.layer_norm(hidden))
        attention_mask = self.get_attention_mask(item_seq)
        for block in self.blocks:
            hidden = block(hidden, attention_mask)
        if self.right_align:
            return hidden[:, -1, :]
        return self.gather_indexes(hidden, item_seq_len - 1)

    def calculate_loss(self, interaction) -> torch.Tensor:
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        pos_items = interaction[self.POS_ITEM_ID]
        if self.loss_type == "BPR":
            neg_items = interaction[self.NEG_ITEM_ID]
            pos_score = (seq_output * self.item_embedding(pos_items)).sum(-1)
            neg_score = (seq_output * self.item_embedding(neg_items)).sum(-1)
            return self.loss_fct(pos_score, neg_score)
        logits = seq_output @ self.item_embedding.weight.t()
        return self.loss_fct(logits, pos_items)

    def predict(self, interaction) -> torch.Tensor:
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return (seq_output * self.item_embedding(interaction[self.ITEM_ID])).sum(-1)

    def full_sort_predict(self, interaction) -> torch.Tensor:
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return seq_output @ self.item_embedding.weight.t()
