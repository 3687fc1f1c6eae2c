"""Profile backends: ``template`` (no LLM) and ``transformers`` (any local or hub causal LM)."""
from __future__ import annotations

import logging
from typing import Any

import torch

from recbole_llm.profiles.attributes import ItemAttributes
from recbole_llm.profiles.prompt import ANSWER_PREFIX, PromptTemplate, parse_profile

logger = logging.getLogger(__name__)

TEMPLATE_VERSION = "template-v1"


class ProfileBackend:
    """Turns a batch of items into profile records (dicts with the three sections)."""

    name: str = "?"
    model_id: str = "?"
    prompt_hash: str | None = None
    decoding: dict[str, Any] = {}
    batch_size: int = 256

    def generate(self, items: list[ItemAttributes]) -> list[dict[str, Any]]:
        raise NotImplementedError


class TemplateBackend(ProfileBackend):
    """No LLM: the item's own attributes arranged in the three sections.

    The honest fallback when no LLM is available and the "without profile generation" ablation:
    the summary lists the intrinsic attributes, "who would like it" the training feedback, and
    "why" quotes reviews when the dataset has them.
    """

    name = "template"
    model_id = "template"

    def __init__(self, batch_size: int = 512) -> None:
        self.batch_size = batch_size
        self.prompt_hash = TEMPLATE_VERSION
        self.decoding = {}

    @staticmethod
    def profile(item: ItemAttributes) -> dict[str, Any]:
        facts = "; ".join(f"{label}: {value}" for label, value in item.intrinsic) or f"Item {item.token}"
        audience = item.rating_summary or "No user feedback available."
        if item.reviews:
            reasoning = "Users wrote: " + " | ".join(item.reviews)
        else:
            reasoning = "Recommended on its attributes: " + facts
        return {"item": item.token, "summary": facts, "audience": audience, "reasoning": reasoning,
                "parsed": True, "attempts": 0}

    def generate(self, items: list[ItemAttributes]) -> list[dict[str, Any]]:
        return [self.profile(item) for item in items]


def _resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    try:
        return getattr(torch, dtype)
    except AttributeError as err:
        raise ValueError(f"profile_llm_dtype '{dtype}' is neither auto nor a torch dtype (e.g. bfloat16)") from err


class TransformersBackend(ProfileBackend):
    """Any causal LM by hub name or local path; batched greedy decoding.

    The tokenizer's chat template is used when it has one, else the messages are joined as plain
    text. Answers that do not parse into the three sections are retried once with a format
    reminder and the answer prefilled with ``Summary:``; a second failure is stored raw with
    ``parsed: false``.
    """

    name = "transformers"

    def __init__(
        self,
        model_name_or_path: str,
        prompt: PromptTemplate,
        device: str | torch.device = "cpu",
        max_new_tokens: int = 160,
        batch_size: int = 8,
        dtype: str = "auto",
        max_prompt_tokens: int = 1536,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = torch.device(device)
        self.prompt = prompt
        self.model_id = str(model_name_or_path)
        self.batch_size = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self.max_prompt_tokens = int(max_prompt_tokens)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_id)
            self.model = AutoModelForCausalLM.from_pretrained(
                self.model_id, dtype=_resolve_dtype(dtype, self.device)
            ).to(self.device)
        except OSError as err:
            raise OSError(
                f"Cannot load the causal LM '{self.model_id}': give a local folder (save_pretrained) or a "
                "hub name on a machine with internet access."
            ) from err
        self.model.eval()
        self.tokenizer.padding_side = "left"  # decoder-only batches must be left-padded
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.use_chat_template = bool(getattr(self.tokenizer, "chat_template", None))
        self.prompt_hash = prompt.text_hash
        self.decoding = {"do_sample": False, "max_new_tokens": self.max_new_tokens,
                         "chat_template": self.use_chat_template, "max_prompt_tokens": self.max_prompt_tokens,
                         "retries": 1}

    def _prompt_text(self, item: ItemAttributes, retry: bool) -> str:
        if not self.use_chat_template:
            return self.prompt.plain_prompt(item, retry=retry)
        text = self.tokenizer.apply_chat_template(
            self.prompt.messages(item, retry=retry), tokenize=False, add_generation_prompt=True
        )
        return text + ANSWER_PREFIX if retry else text

    @torch.inference_mode()
    def _generate_texts(self, prompts: list[str]) -> list[str]:
        encoded = self.tokenizer(
            prompts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_prompt_tokens,
            add_special_tokens=not self.use_chat_template,  # chat templates already add BOS
        ).to(self.device)
        output = self.model.generate(
            **encoded, max_new_tokens=self.max_new_tokens, do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        new_tokens = output[:, encoded["input_ids"].shape[1]:]
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    def generate(self, items: list[ItemAttributes]) -> list[dict[str, Any]]:
        answers = self._generate_texts([self._prompt_text(item, retry=False) for item in items])
        records: list[dict[str, Any]] = []
        retry_positions = []
        for position, (item, answer) in enumerate(zip(items, answers)):
            fields = parse_profile(answer)
            record = {"item": item.token, "attempts": 1, "raw": answer}
            if fields is None:
                retry_positions.append(position)
                record.update(parsed=False)
            else:
                record.update(fields, parsed=True)
            records.append(record)
        if retry_positions:
            retried = self._generate_texts([self._prompt_text(items[p], retry=True) for p in retry_positions])
            for position, answer in zip(retry_positions, retried):
                answer = ANSWER_PREFIX + answer
                fields = parse_profile(answer)
                record = records[position]
                record["attempts"] = 2
                if fields is None:
                    record["raw_retry"] = answer
                    logger.debug("Profile of item %s did not parse after a retry; stored raw.", record["item"])
                else:
                    record.update(fields, parsed=True, raw=answer)
        return records
