"""Ordered item embeddings (Putra et al.): metrics, synthetic pre-training and transfer, plots."""

from recbole_llm.oie.metrics import item_embedding_table, oie_metrics
from recbole_llm.oie.pretrain import apply_oie_init
from recbole_llm.oie.synthetic import OIEMappingError

__all__ = ["apply_oie_init", "item_embedding_table", "oie_metrics", "OIEMappingError"]
