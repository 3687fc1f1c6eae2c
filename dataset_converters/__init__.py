"""Converters from raw public dataset formats to RecBole atomic files.

One module per format, each with a function API and a CLI (``python -m dataset_converters.<fmt>``):
``amazon`` (Amazon reviews 2014/2018/2023 + metadata), ``seqrec`` (S3-Rec / BSARec ``user item
item ...`` files, literal integer ids), ``unisrec`` (UniSRec/RecBole pre-split benchmark files),
``mind`` (MIND behaviors/news), ``llmrank`` (LLMRank/UniSRec per-user history files, for general
recommendation), ``globo`` (Globo.com news click log), ``atomic`` (copy existing atomic files).
"""

from dataset_converters._common import ConversionError, ConversionReport

__all__ = ["ConversionError", "ConversionReport"]
