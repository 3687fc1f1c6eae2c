"""The editable P4R prompt (``properties/prompts/p4r_item.txt``) and the parser of its answers."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from recbole_llm.profiles.attributes import ItemAttributes
from recbole_llm.utils import properties_dir

DEFAULT_PROMPT_FILE = "p4r_item.txt"
SECTIONS = ("summary", "audience", "reasoning")
HEADERS = {"summary": "Summary", "audience": "Who would like it", "reasoning": "Why"}
# Appended to a retry, and the start of the answer the model must continue.
RETRY_REMINDER = "Answer in exactly this format, three lines:\nSummary: ...\nWho would like it: ...\nWhy: ..."
ANSWER_PREFIX = "Summary:"


class PromptError(ValueError):
    """The prompt file is missing or lacks a required part."""


def resolve_prompt_path(prompt_file: str | Path | None) -> Path:
    """A path as given, or a bare name looked up in ``properties/prompts/``."""
    if not prompt_file:
        prompt_file = DEFAULT_PROMPT_FILE
    path = Path(prompt_file).expanduser()
    if path.is_file():
        return path
    bundled = properties_dir() / "prompts" / str(prompt_file)
    if bundled.is_file():
        return bundled
    raise PromptError(f"Prompt file '{prompt_file}' not found (looked at {path} and {bundled}).")


@dataclass
class PromptTemplate:
    """System and user messages with ``{attributes}`` and ``{feedback}`` placeholders."""

    system: str
    user: str
    text_hash: str
    path: str

    @classmethod
    def load(cls, prompt_file: str | Path | None = None) -> PromptTemplate:
        """Read a prompt file with ``[system]`` / ``[user]`` sections, so users can change the prompt without code."""
        path = resolve_prompt_path(prompt_file)
        raw = path.read_text(encoding="utf-8")
        parts: dict[str, list[str]] = {"system": [], "user": []}
        current = None
        for line in raw.splitlines():
            if line.startswith("#") and not line.startswith("###"):
                continue
            header = line.strip().lower()
            if header in ("### system", "### user"):
                current = header.split()[-1]
                continue
            if current is None:
                if line.strip():
                    raise PromptError(f"{path}: text before the first '### system' / '### user' header: {line!r}")
                continue
            parts[current].append(line)
        user = "\n".join(parts["user"]).strip()
        if "{attributes}" not in user:
            raise PromptError(f"{path}: the '### user' message must contain the {{attributes}} placeholder.")
        return cls(
            system="\n".join(parts["system"]).strip(),
            user=user,
            text_hash=hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16],
            path=str(path),
        )

    def messages(self, item: ItemAttributes, retry: bool = False) -> list[dict[str, str]]:
        user = self.user.replace("{attributes}", item.attributes_text()).replace("{feedback}", item.feedback_text())
        if retry:
            user += "\n\n" + RETRY_REMINDER
        messages = [{"role": "system", "content": self.system}] if self.system else []
        return messages + [{"role": "user", "content": user}]

    def plain_prompt(self, item: ItemAttributes, retry: bool = False) -> str:
        """The prompt for a model without a chat template: messages joined by blank lines."""
        text = "\n\n".join(m["content"] for m in self.messages(item, retry=retry)) + "\n\n"
        return text + ANSWER_PREFIX if retry else text


_HEADER_PATTERN = re.compile(
    r"^[\s>*#_-]*(summary|who would like it|why)[\s*_]*[:：][\s*_]*",
    flags=re.IGNORECASE | re.MULTILINE,
)
_KEY = {"summary": "summary", "who would like it": "audience", "why": "reasoning"}


def parse_profile(text: str) -> dict[str, str] | None:
    """The three sections of an answer, or None when any is missing or empty.

    Headers may carry markdown (``**Summary:**``); the first occurrence of each is used and text
    after the third section's first paragraph is dropped (small models tend to keep going).
    """
    matches = list(_HEADER_PATTERN.finditer(text))
    found: dict[str, str] = {}
    for index, match in enumerate(matches):
        key = _KEY[match.group(1).lower()]
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        if key in found:
            continue
        value = text[match.end() : end].strip()
        if key == "reasoning":
            value = value.split("\n\n")[0].strip()
        found[key] = " ".join(value.replace("**", "").split())
    if all(found.get(k) for k in SECTIONS):
        return {k: found[k] for k in SECTIONS}
    return None


def profile_text(record: dict) -> str:
    """The text a profile is embedded as: the three sections with their headers."""
    if not record.get("parsed", True) and not any(record.get(k) for k in SECTIONS):
        return str(record.get("raw") or "").strip()
    return "\n".join(f"{HEADERS[k]}: {record[k]}" for k in SECTIONS if record.get(k))
