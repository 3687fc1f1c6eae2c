"""Cheap quality measures of a generated profile file (issue #16): format, length, repetition and
a hallucination proxy, plus a few random examples, as a markdown section.

* **three sections**: share of profiles whose summary, audience and reasoning are all non-empty;
* **mean length**: words of the embedded text (the three sections with their headers);
* **repeated sentence**: share of profiles in which one sentence occurs twice (case and
  punctuation ignored), the failure mode of greedy decoding with small models;
* **copied from the prompt**: share of profiles sharing a run of six words with the prompt
  file's own text (its instructions and worked example; the item's attributes are not part of
  it), i.e. an example's sentences copied into another item's profile;
* **unsupported names**: share of profiles naming a number or a proper noun (a capitalised word
  that does not start a sentence) found nowhere in the item's attributes and feedback as the
  prompt showed them: a cheap proxy for invented facts (a director, a release date). It
  over-counts harmless capitalised words and misses invented facts written in lower case.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recbole_llm.profiles.attributes import ItemAttributes
from recbole_llm.profiles.prompt import HEADERS, SECTIONS, profile_text
from recbole_llm.profiles.store import read_header, read_profiles

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
# capitalised words that name nothing (pronouns, section words, common sentence starts after a colon)
_NOT_NAMES = {
    "I",
    "I'm",
    "It",
    "It's",
    "The",
    "This",
    "A",
    "An",
    "Who",
    "Why",
    "Summary",
    "Users",
    "Fans",
    "Anyone",
    "People",
    "Viewers",
    "Readers",
    "Customers",
    "Those",
    "They",
    "If",
    "In",
    "With",
    "For",
    "And",
    "Its",
}


def sentences(text: str) -> list[str]:
    """Sentences of ``text``, lower-cased, punctuation and extra spaces removed (empty ones dropped)."""
    parts = _SENTENCE_END.split(text.replace("\n", " "))
    cleaned = [" ".join(re.sub(r"[^\w\s]", " ", part.lower()).split()) for part in parts]
    return [s for s in cleaned if s]


def has_repeated_sentence(text: str) -> bool:
    found = sentences(text)
    return len(found) != len(set(found))


def _section_bodies(record: dict[str, Any]) -> str:
    """The profile's own words: the three sections without their headers (or the raw answer)."""
    if any(record.get(k) for k in SECTIONS):
        return "\n".join(str(record.get(k) or "") for k in SECTIONS)
    return str(record.get("raw") or "")


def _word_runs(text: str, n: int) -> set[tuple[str, ...]]:
    words = [w.lower() for w in _WORD.findall(text)]
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def copies_prompt(text: str, prompt_text: str, n: int = 6) -> bool:
    """Whether ``text`` shares a run of ``n`` words with ``prompt_text``."""
    return bool(_word_runs(text, n) & _word_runs(prompt_text, n))


def unsupported_names(text: str, source: str) -> list[str]:
    """Numbers and mid-sentence capitalised words of ``text`` that do not occur in ``source``."""
    known_numbers = set(_NUMBER.findall(source))
    known_words = {w.lower() for w in _WORD.findall(source)}
    missing = [n for n in _NUMBER.findall(text) if n not in known_numbers]
    for sentence in _SENTENCE_END.split(text.replace("\n", " ")):
        words = _WORD.findall(sentence)
        for word in words[1:]:  # the first word of a sentence is capitalised anyway
            if word[0].isupper() and word not in _NOT_NAMES and word.lower() not in known_words:
                missing.append(word)
    return missing


@dataclass
class QualityReport:
    path: Path
    header: dict[str, Any]
    n_profiles: int
    three_sections: float
    mean_words: float
    repeated_sentence: float
    unsupported: float
    copied: float | None
    examples: list[dict[str, Any]] = field(default_factory=list)


def assess_profiles(
    path: str | Path, items: list[ItemAttributes], n_examples: int = 5, seed: int = 0, prompt_text: str | None = None
) -> QualityReport:
    """Measure the profiles in ``path`` against ``items`` (their attributes, as the prompt showed
    them) and, when given, the prompt file's text (``PromptTemplate.system`` + ``user``)."""
    path = Path(path)
    records = read_profiles(path)
    by_token = {item.token: item for item in items}
    rows = []
    for token, record in records.items():
        item = by_token.get(token)
        source = (item.attributes_text() + "\n" + item.feedback_text()) if item else ""
        own = _section_bodies(record)
        rows.append(
            {
                "token": token,
                "record": record,
                "text": profile_text(record),
                "complete": all(str(record.get(k) or "").strip() for k in SECTIONS),
                "words": len(profile_text(record).split()),
                "repeated": has_repeated_sentence(own),
                "unsupported": unsupported_names(own, source),
                "copied": prompt_text is not None and copies_prompt(own, prompt_text),
                "attributes": item.attributes_text() if item else "(item not in the dataset)",
            }
        )
    n = len(rows)

    def share(key: str) -> float:
        return sum(bool(r[key]) for r in rows) / n if n else 0.0

    picked = random.Random(seed).sample(rows, min(n_examples, n))
    return QualityReport(
        path,
        read_header(path) or {},
        n,
        share("complete"),
        sum(r["words"] for r in rows) / n if n else 0.0,
        share("repeated"),
        share("unsupported"),
        share("copied") if prompt_text is not None else None,
        picked,
    )


def report_markdown(report: QualityReport) -> list[str]:
    """One markdown section: the measures, the file's stamp, and the random examples."""
    header = report.header
    stamp = (
        f"Model `{header.get('model', '?')}` ({header.get('model_hash', 'no hash')}), backend "
        f"{header.get('backend', '?')}, prompt {header.get('prompt_hash', '?')}, decoding "
        f"`{header.get('decoding', {})}`, split {header.get('split', '?')}."
    )
    columns = (
        "| profiles | three sections parsed | mean words | repeated sentence | number / proper noun not in the "
        "attributes | 6 words copied from the prompt |"
    )
    copied = "not measured" if report.copied is None else f"{report.copied:.1%}"
    values = (
        f"| {report.n_profiles} | {report.three_sections:.1%} | {report.mean_words:.1f} | "
        f"{report.repeated_sentence:.1%} | {report.unsupported:.1%} | {copied} |"
    )
    lines = [
        f"## {report.path.name}",
        "",
        stamp,
        "",
        columns,
        "|---|---|---|---|---|---|",
        values,
        "",
        f"{len(report.examples)} random examples:",
        "",
    ]
    for row in report.examples:
        attributes = row["attributes"].replace("\n", "; ")
        lines += [f"**Item {row['token']}** ({attributes})", ""]
        lines += ["> " + line for line in (row["text"] or "(empty)").splitlines()]
        names = ", ".join(dict.fromkeys(row["unsupported"])) or "none"
        flags = (
            f"Not in the attributes: {names}. Repeated sentence: {'yes' if row['repeated'] else 'no'}. "
            f"Copied from the prompt: {'yes' if row['copied'] else 'no'}."
        )
        lines += ["", flags, ""]
    return lines


__all__ = [
    "HEADERS",
    "QualityReport",
    "assess_profiles",
    "copies_prompt",
    "has_repeated_sentence",
    "report_markdown",
    "sentences",
    "unsupported_names",
]
