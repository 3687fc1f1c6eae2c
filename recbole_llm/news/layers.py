"""Building blocks of the news encoders (NRMS, NAML, LSTUR, AWRS) and the title inputs they read.

Title text reaches a news encoder as a sequence of vectors per news item, chosen by
``title_encoder``:

- ``plm_pooled_frozen`` (default, cheapest on a CPU): one frozen MiniLM sentence vector per title from
  the project's text-embedding cache (:mod:`recbole_llm.text`), a sequence of length 1.
- ``plm_input``: MiniLM's word-piece input-embedding table as word vectors (frozen unless
  ``freeze_word_embeddings: False``), ``title_length`` word pieces per title.
- ``plm_finetune``: the token states of a Hugging Face / sentence-transformers encoder
  (``text_encoder``) whose last ``finetune_layers`` transformer layers train with the model and whose
  other weights stay frozen (NewsRecLib's PLM-NR setting: RoBERTa layers 0-7 of 12 frozen).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TITLE_ENCODERS = ("plm_pooled_frozen", "plm_input", "plm_finetune")
#: Where the stack of transformer layers lives in the common Hugging Face encoders (BERT, RoBERTa, MiniLM, DistilBERT).
_LAYER_PATHS = ("encoder.layer", "transformer.layer", "layers")


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax over the ``mask``ed entries; rows with nothing to attend to get all zeros (no NaN)."""
    # a finite fill keeps the backward pass free of NaN (an all -inf row has a NaN softmax gradient)
    logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
    return torch.softmax(logits, dim=dim) * mask


def at_least_one(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` with the last position switched on in rows that have none (an empty history or title)."""
    empty = ~mask.any(-1, keepdim=True)
    last = torch.zeros_like(mask)
    last[..., -1] = True
    return mask | (empty & last)


class AdditiveAttention(nn.Module):
    """Additive attention pooling (NRMS/NAML/LSTUR): softmax over q . tanh(W x + b)."""

    def __init__(self, input_dim: int, query_dim: int) -> None:
        super().__init__()
        self.project = nn.Linear(input_dim, query_dim)
        self.query = nn.Linear(query_dim, 1, bias=False)

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[..., L, D] -> [..., D]."""
        logits = self.query(torch.tanh(self.project(inputs))).squeeze(-1)
        weights = masked_softmax(logits, mask)
        return torch.einsum("...l,...ld->...d", weights, inputs)


class SelfAttentionPooling(nn.Module):
    """Multi-head self-attention then additive attention (NRMS's word and user encoders)."""

    def __init__(self, input_dim: int, heads: int, head_dim: int, query_dim: int, dropout: float) -> None:
        super().__init__()
        self.output_dim = heads * head_dim
        self.project = nn.Linear(input_dim, self.output_dim)
        self.attention = nn.MultiheadAttention(self.output_dim, heads, dropout=dropout, batch_first=True)
        self.pool = AdditiveAttention(self.output_dim, query_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = at_least_one(mask)
        x = self.project(self.dropout(inputs))
        x, _ = self.attention(x, x, x, key_padding_mask=~mask, need_weights=False)
        return self.pool(self.dropout(x), mask)


class CNNPooling(nn.Module):
    """1-d convolution over word vectors then additive attention (NAML's and LSTUR's title encoder)."""

    def __init__(self, input_dim: int, filters: int, window: int, query_dim: int, dropout: float) -> None:
        super().__init__()
        self.output_dim = filters
        self.conv = nn.Conv1d(input_dim, filters, window, padding=window // 2)
        self.pool = AdditiveAttention(filters, query_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = at_least_one(mask)
        x = self.conv(self.dropout(inputs).transpose(1, 2)).transpose(1, 2)
        return self.pool(self.dropout(F.relu(x)), mask)


class TitleInput(nn.Module):
    """Per news item: a sequence of title vectors [N, L, E] and its mask [N, L]."""

    def __init__(
        self,
        mode: str,
        vectors: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        token_ids: torch.Tensor | None = None,
        word_table: torch.Tensor | None = None,
        freeze_words: bool = True,
        encoder: nn.Module | None = None,
        finetune_layers: int = 0,
    ) -> None:
        super().__init__()
        if mode not in TITLE_ENCODERS:
            raise ValueError(f"title_encoder must be one of {', '.join(TITLE_ENCODERS)}, got '{mode}'")
        self.mode = mode
        if mode == "plm_pooled_frozen":
            self.register_buffer("vectors", vectors.float(), persistent=False)
            self.register_buffer("text_mask", text_mask.bool(), persistent=False)
            self.output_dim = int(vectors.shape[1])
        elif mode == "plm_input":
            self.register_buffer("token_ids", token_ids.long(), persistent=False)
            self.words = nn.Embedding.from_pretrained(word_table.float(), freeze=freeze_words, padding_idx=0)
            self.output_dim = int(word_table.shape[1])
        else:
            self.register_buffer("token_ids", token_ids.long(), persistent=False)
            self.encoder = encoder
            freeze_all_but_last(encoder, finetune_layers)
            self.output_dim = int(encoder.config.hidden_size)

    def forward(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mode == "plm_pooled_frozen":
            return self.vectors[items].unsqueeze(1), self.text_mask[items].unsqueeze(1)
        tokens = self.token_ids[items]
        mask = tokens > 0
        if self.mode == "plm_input":
            return self.words(tokens), mask
        has_title = mask.any(1)  # news without a title (and padding) skip the encoder: zero states
        states = torch.zeros((*tokens.shape, self.output_dim), device=tokens.device)
        if bool(has_title.any()):
            encoded = self.encoder(input_ids=tokens[has_title], attention_mask=mask[has_title].long())
            states = states.index_put((has_title,), encoded.last_hidden_state.to(states.dtype))
        return states, mask


def transformer_layers(encoder: nn.Module) -> nn.ModuleList:
    """The encoder's stack of transformer layers (BERT/RoBERTa/MiniLM ``encoder.layer``, DistilBERT ...)."""
    for path in _LAYER_PATHS:
        module = encoder
        for name in path.split("."):
            module = getattr(module, name, None)
        if isinstance(module, nn.ModuleList):
            return module
    raise ValueError(
        f"plm_finetune: {type(encoder).__name__} has no transformer layer list at {', '.join(_LAYER_PATHS)}"
    )


def freeze_all_but_last(encoder: nn.Module, n_layers: int) -> None:
    """Freeze every weight of ``encoder`` except its last ``n_layers`` transformer layers."""
    layers = transformer_layers(encoder)
    if not 0 <= n_layers <= len(layers):
        raise ValueError(f"finetune_layers must be between 0 and {len(layers)} for this encoder, got {n_layers}")
    for parameter in encoder.parameters():
        parameter.requires_grad = False
    for layer in list(layers)[len(layers) - n_layers :]:
        for parameter in layer.parameters():
            parameter.requires_grad = True


class CategoryInput(nn.Module):
    """Learned category and subcategory embeddings of each news item (where the data has them)."""

    def __init__(self, categories: dict[str, torch.Tensor], n_tokens: dict[str, int], dim: int) -> None:
        super().__init__()
        self.fields = list(categories)
        for field, ids in categories.items():
            self.register_buffer(f"{field}_ids", ids.long(), persistent=False)
        self.embeddings = nn.ModuleDict({f: nn.Embedding(n_tokens[f], dim, padding_idx=0) for f in self.fields})

    def forward(self, items: torch.Tensor) -> list[torch.Tensor]:
        return [self.embeddings[f](getattr(self, f"{f}_ids")[items]) for f in self.fields]
