"""CategoryDiversity (Dctg@k): the entropy formula, RecBole registration, category loading."""

from __future__ import annotations

import math

import pytest
import torch
from recbole.evaluator import metric_types
from recbole.evaluator.collector import DataStruct

from recbole_llm.config import Config
from recbole_llm.data import create_dataset
from recbole_llm.metrics import CategoryDiversity, item_category_matrix
from recbole_llm.metrics.category_diversity import category_entropy

from conftest import FAST

# items 1..4; categories 1..3 (0 = padding); item 4 has two categories, item 0 is padding
CATEGORIES = torch.tensor([[0, 0], [1, 0], [2, 0], [3, 0], [1, 2]])


def test_entropy_is_zero_for_one_category_and_one_for_uniform_categories():
    lists = torch.tensor([[1, 1, 1], [1, 2, 3]])
    values = category_entropy(lists, CATEGORIES, k=3)
    assert values[0].item() == pytest.approx(0.0)
    assert values[1].item() == pytest.approx(1.0)


def test_multi_category_items_split_their_weight_and_k_truncates():
    lists = torch.tensor([[4, 3, 1]])
    # top-2: item 4 -> {1: .5, 2: .5}, item 3 -> {3: 1}: shares .25, .25, .5
    expected = -(2 * 0.25 * math.log(0.25) + 0.5 * math.log(0.5)) / math.log(3)
    assert category_entropy(lists, CATEGORIES, k=2)[0].item() == pytest.approx(expected)
    assert category_entropy(lists, CATEGORIES, k=1)[0].item() == pytest.approx(1 / math.log(3) * math.log(2))


def test_metric_averages_users_and_is_registered_in_recbole():
    assert metric_types["categorydiversity"] == CategoryDiversity.metric_type
    metric = CategoryDiversity({"topk": [1, 3], "metric_decimal_place": 4})
    data = DataStruct()
    data.set("rec.items", torch.tensor([[1, 1, 1], [1, 2, 3]]))
    data.set("data.item_categories", CATEGORIES)
    result = metric.calculate_metric(data)
    assert result == {"categorydiversity@1": 0.0, "categorydiversity@3": 0.5}


def test_ml100k_genres_are_read_from_category_field():
    config = Config(
        "BPR",
        "ml-100k",
        config_dict={
            **FAST,
            "load_col": {"inter": ["user_id", "item_id"], "item": ["item_id", "class"]},
            "category_field": "class",
            "metrics": ["Recall", "CategoryDiversity"],
        },
    )
    dataset = create_dataset(config)
    categories = item_category_matrix(config, dataset)
    assert categories.shape[0] == dataset.item_num
    assert categories[0].sum() == 0  # padding item has no genre
    n_genres = len(dataset.field2id_token["class"]) - 1
    assert 18 <= int(torch.unique(categories[categories > 0]).numel()) <= n_genres
    assert (categories[1:] > 0).any(dim=1).all()  # every movie has a genre

    config_without = Config("BPR", "ml-100k", config_dict={**FAST, "metrics": ["Recall", "CategoryDiversity"]})
    with pytest.raises(ValueError, match="category_field"):
        item_category_matrix(config_without, dataset)
