"""BERT4RecTrainer: RecBole's Trainer plus the OIE metrics hook (AAE/SA at every evaluation, JSON history)."""
from recbole.trainer import Trainer

from recbole_llm.oie.trainer import OIEMetricsMixin


class BERT4RecTrainer(OIEMetricsMixin, Trainer):
    """RecBole's Trainer; logs AAE/SA of the item table (see recbole_llm.oie.trainer)."""
