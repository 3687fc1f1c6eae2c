"""ReviewGCN: the GCN baseline of ReviewGNN (Kanezashi et al., arXiv 2504.02195 v1).

The model lookup finds models by file name, so the baseline needs this file; the class itself is
:class:`recbole_llm.model.general_recommender.reviewgnn.ReviewGCN` (ReviewGNN with
``use_reviews`` forced to False), so ``--compare=ReviewGNN,ReviewGCN`` isolates the reviews.
"""
from recbole_llm.model.general_recommender.reviewgnn import ReviewGCN

__all__ = ["ReviewGCN"]
