"""OpenP5's sequential item indexing: items numbered 1001, 1002, ... in order of first appearance.

OpenP5 (``utils/indexing.py::sequential_indexing``) walks the users in order and each user's items in
time order. We walk RecBole's training rows (sorted by user, then time) the same way; items that appear
only in validation or test come last, in RecBole's id order, so every item still has a number.
"""

from __future__ import annotations

import numpy as np

FIRST_INDEX = 1001


def sequential_numbers(
    item_id_list: np.ndarray, item_length: np.ndarray, item_id: np.ndarray, n_items: int
) -> np.ndarray:
    """Item number of every RecBole item id (``numbers[0]`` is the padding id, 0).

    ``item_id_list`` [rows, max_len], ``item_length`` [rows] and ``item_id`` [rows] are RecBole's
    augmented training rows (history prefix and target), in RecBole's (user, time) order.
    """
    order: dict[int, None] = {}
    for history, length, target in zip(item_id_list, item_length, item_id):
        for item in history[: int(length)]:
            order.setdefault(int(item), None)
        order.setdefault(int(target), None)
    order.pop(0, None)
    unseen = [item for item in range(1, n_items) if item not in order]
    ranked = list(order) + unseen
    numbers = np.zeros(n_items, dtype=np.int64)
    numbers[np.asarray(ranked, dtype=np.int64)] = np.arange(FIRST_INDEX, FIRST_INDEX + len(ranked))
    return numbers
