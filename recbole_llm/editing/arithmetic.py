"""The arithmetic task over the item-number range: successor, predecessor and small sums.

Every operand and answer is an item number (``low..high``, e.g. 1001..2682 for ml-100k), so the task
shares its output vocabulary with next-item prediction: this is what makes its task vector a
candidate edit of the recommender.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from recbole_llm.editing.backbone import LanguageModel
    from recbole_llm.editing.trie import Trie

SUCCESSOR_TEMPLATES = ("What is the number after {a} ?", "Which number follows {a} ?", "What is {a} + 1 ?")
PREDECESSOR_TEMPLATES = ("What is the number before {a} ?", "Which number precedes {a} ?", "What is {a} - 1 ?")
SUM_TEMPLATES = ("What is {a} + {b} ?", "What is the sum of {a} and {b} ?", "{a} plus {b} equals ?")
OPERATIONS = ("successor", "predecessor", "sum")


@dataclass(frozen=True)
class ArithmeticTask:
    """Questions whose operands and answers lie in ``[low, high]``; sums add ``2..max_addend``."""

    low: int
    high: int
    max_addend: int

    def __post_init__(self) -> None:
        if self.high - self.low < self.max_addend + 1 or self.max_addend < 2:
            raise ValueError(f"arithmetic range {self.low}..{self.high} is too small for addends 2..{self.max_addend}")

    def one(self, rng: np.random.Generator) -> tuple[str, str]:
        """One (question, answer) pair: an operation, a template and operands drawn uniformly."""
        operation = OPERATIONS[int(rng.integers(len(OPERATIONS)))]
        if operation == "successor":
            a = int(rng.integers(self.low, self.high))
            return SUCCESSOR_TEMPLATES[int(rng.integers(len(SUCCESSOR_TEMPLATES)))].format(a=a), str(a + 1)
        if operation == "predecessor":
            a = int(rng.integers(self.low + 1, self.high + 1))
            return PREDECESSOR_TEMPLATES[int(rng.integers(len(PREDECESSOR_TEMPLATES)))].format(a=a), str(a - 1)
        b = int(rng.integers(2, self.max_addend + 1))
        a = int(rng.integers(self.low, self.high - b + 1))
        return SUM_TEMPLATES[int(rng.integers(len(SUM_TEMPLATES)))].format(a=a, b=b), str(a + b)

    def examples(self, n: int, seed: int) -> list[tuple[str, str]]:
        """``n`` (question, answer) pairs, the same for the same seed."""
        rng = np.random.default_rng(seed)
        return [self.one(rng) for _ in range(n)]


def exact_match(lm: LanguageModel, trie: Trie, examples: list[tuple[str, str]], batch_size: int) -> float:
    """Share of questions whose best answer (beam 2, constrained to the item-number trie) is exactly right."""
    right = 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        answers, _ = lm.beam_search([q for q, _ in chunk], trie, 2)
        right += sum(beams[0] == tuple(lm.target_tokens(a)) for beams, (_, a) in zip(answers, chunk))
    return right / len(examples)
