"""Category diversity Dctg@k, as used to evaluate POPK.

Paper: Azevedo, Suzumura, Yasui, "Popular News Always Compete for the User's Attention! POPK:
Mitigating Popularity Bias via a Temporal-Counterfactual", arXiv 2407.09939 (Dctg@k).

Dctg@k of a user = entropy of the category distribution of the user's top-k items divided by
log(#categories), so 0 means one category and 1 means all categories equally often. Items with
several categories (ml-100k genres) split their unit weight evenly over their categories; items
without a category are left out. The reported value is the mean over users.

The item categories come from the field named by the config key ``category_field`` (for
ml-100k: ``class``, its genre ``token_seq`` field; load it with ``load_col: {item: [item_id,
class]}``). RecBole's collector does not know this resource: ``recbole_llm.compat`` extends
``Collector.data_collect`` to add ``data.item_categories`` when a metric asks for it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from recbole.evaluator.base_metric import AbstractMetric
from recbole.utils import EvaluatorType, FeatureType

if TYPE_CHECKING:
    from recbole.config import Config
    from recbole.data.dataset import Dataset
    from recbole.evaluator.collector import DataStruct

ITEM_CATEGORIES = "data.item_categories"


def item_category_matrix(config: Config, dataset: Dataset) -> torch.Tensor:
    """[n_items, max categories per item] category token ids (0 = none), from ``category_field``."""
    field = config["category_field"]
    if not field:
        raise ValueError(
            "CategoryDiversity needs the item category field: set category_field (e.g. category_field: class "
            "for ml-100k genres) and load it (load_col: {item: [item_id, class]})."
        )
    if dataset.item_feat is None or field not in dataset.item_feat:
        raise ValueError(
            f"CategoryDiversity: category_field '{field}' is not loaded in the item features of "
            f"'{config['dataset']}'; add it to load_col (e.g. load_col: {{item: [item_id, {field}]}})."
        )
    values = dataset.item_feat[field]
    ftype = dataset.field2type[field]
    if not torch.is_tensor(values):  # a Dataset before build(): item_feat is still a DataFrame
        if ftype == FeatureType.TOKEN_SEQ:
            seqs = [torch.as_tensor(np.asarray(seq, dtype=np.int64)) for seq in values]
            values = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)
        else:
            values = torch.as_tensor(values.to_numpy())
    if ftype == FeatureType.TOKEN:
        return values.long().view(-1, 1).cpu()
    if ftype == FeatureType.TOKEN_SEQ:
        return values.long().cpu()
    raise ValueError(f"CategoryDiversity: category_field '{field}' must be a token or token_seq field, not {ftype}.")


def category_entropy(item_matrix: torch.Tensor, categories: torch.Tensor, k: int) -> torch.Tensor:
    """Normalised category entropy of each row's first ``k`` items ([n_users] float64)."""
    n_categories = int(torch.unique(categories[categories > 0]).numel())
    if n_categories < 2:
        return torch.zeros(item_matrix.shape[0], dtype=torch.float64)
    cats = categories[item_matrix[:, :k]]  # [users, k, per-item]
    present = (cats > 0).double()
    per_item = present.sum(dim=-1, keepdim=True).clamp(min=1)
    weights = present / per_item  # every categorised item carries weight 1
    mass = torch.zeros(item_matrix.shape[0], int(categories.max()) + 1, dtype=torch.float64)
    mass.scatter_add_(1, cats.reshape(len(cats), -1), weights.reshape(len(cats), -1))
    mass[:, 0] = 0
    total = mass.sum(dim=1, keepdim=True)
    share = mass / total.clamp(min=1e-12)
    entropy = -(share * torch.log(share.clamp(min=1e-300))).sum(dim=1)
    return torch.where(total.squeeze(1) > 0, entropy / math.log(n_categories), torch.zeros_like(entropy))


class CategoryDiversity(AbstractMetric):
    """Dctg@k: mean over users of the normalised category entropy of their top-k list (higher = more diverse)."""

    metric_type = EvaluatorType.RANKING
    smaller = False
    metric_need = ["rec.items", ITEM_CATEGORIES]

    def __init__(self, config):
        super().__init__(config)
        self.topk = config["topk"]

    def calculate_metric(self, dataobject: DataStruct) -> dict[str, float]:
        item_matrix = dataobject.get("rec.items").long()
        categories = dataobject.get(ITEM_CATEGORIES).long()
        result = {}
        for k in self.topk:
            value = category_entropy(item_matrix, categories, k).mean().item()
            result[f"categorydiversity@{k}"] = round(float(np.nan_to_num(value)), self.decimal_place)
        return result
