"""A trie of token sequences: the valid outputs of constrained beam search (OpenP5's ``generation_trie``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class Trie:
    """Token-id sequences (each one item's tokens plus end-of-sequence), stored as nested dicts.

    ``allowed(prefix)`` lists the tokens that extend ``prefix`` towards some stored sequence; beam search
    asks it at every step through ``prefix_allowed_tokens_fn``, so it can only produce stored sequences.
    """

    def __init__(self, sequences: Iterable[Sequence[int]] = ()) -> None:
        self.root: dict[int, dict] = {}
        self.depth = 0
        for sequence in sequences:
            self.add(sequence)

    def add(self, sequence: Sequence[int]) -> None:
        if not sequence:
            raise ValueError("Trie.add: an empty token sequence cannot be an output")
        node = self.root
        for token in sequence:
            node = node.setdefault(int(token), {})
        self.depth = max(self.depth, len(sequence))

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        """Next tokens after ``prefix``; empty when ``prefix`` is complete or not in the trie."""
        node = self.root
        for token in prefix:
            node = node.get(int(token))
            if node is None:
                return []
        return list(node)

    def __contains__(self, sequence: Sequence[int]) -> bool:
        node = self.root
        for token in sequence:
            node = node.get(int(token))
            if node is None:
                return False
        return not node
