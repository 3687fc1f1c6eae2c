"""``NewsRecommender``: what NRMS, NAML, LSTUR and AWRS share.

A news model encodes news items into vectors (its news encoder over title vectors and category
embeddings), a user from the vectors of their click history (its user encoder), and scores each
candidate of an impression. Training batches carry one or more clicked candidates and in-impression
negatives (:mod:`recbole_llm.news.data`); the loss is cross-entropy over each sample's candidates
(the anchors' ``npratio`` softmax loss), padding masked out. Evaluation scores whole impressions.

It lives outside the model-type packages because it is not a model of its own; its defaults are in
``properties/model/NewsRecommender.yaml`` (merged below each model's yaml).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from recbole.model.abstract_recommender import AbstractRecommender
from recbole.utils import InputType, ModelType

from recbole_llm.news.data import CANDIDATE_LABEL, CANDIDATE_MASK, CANDIDATES, HISTORY
from recbole_llm.news.layers import CategoryInput, TitleInput
from recbole_llm.news.trainer import NewsTrainer

if TYPE_CHECKING:
    from recbole.config import Config
    from recbole.data.dataset import Dataset
    from recbole.data.interaction import Interaction

    from recbole_llm.news.data import ImpressionEvalDataLoader, ImpressionTrainDataLoader


def title_input(config: Config, dataset: Dataset) -> TitleInput:
    """The title vectors chosen by ``title_encoder`` (see :mod:`recbole_llm.news.layers`)."""
    mode = str(config["title_encoder"])
    field = config["title_field"]
    if mode == "plm_pooled_frozen":
        from recbole_llm.text import item_text_embeddings

        embedded = item_text_embeddings(config, dataset, fields=[field])
        return TitleInput(mode, vectors=embedded.embeddings, text_mask=embedded.mask)
    if mode in ("plm_input", "plm_finetune"):
        token_ids, encoder = tokenized_titles(config, dataset, field, special_tokens=mode == "plm_finetune")
        if mode == "plm_input":
            table = encoder.get_input_embeddings().weight.detach().clone()
            return TitleInput(
                mode, token_ids=token_ids, word_table=table, freeze_words=bool(config["freeze_word_embeddings"])
            )
        return TitleInput(mode, token_ids=token_ids, encoder=encoder, finetune_layers=int(config["finetune_layers"]))
    return TitleInput(mode)  # raises, naming the allowed values


def tokenized_titles(
    config: Config, dataset: Dataset, field: str, special_tokens: bool
) -> tuple[torch.Tensor, torch.nn.Module]:
    """(token ids [n_items, title_length], 0 = padding; the Hugging Face encoder of ``text_encoder``)."""
    from transformers import AutoModel, AutoTokenizer

    from recbole_llm.text import item_texts
    from recbole_llm.text.encoder import resolve_model_path

    path = resolve_model_path(config["text_encoder"])
    tokenizer = AutoTokenizer.from_pretrained(path)
    texts = item_texts(config, dataset, fields=[field])
    encoded = tokenizer(
        [t or "" for t in texts],
        max_length=int(config["title_length"]),
        truncation=True,
        padding="max_length",
        add_special_tokens=special_tokens,
        return_tensors="pt",
    )
    ids = encoded["input_ids"] * encoded["attention_mask"]
    ids[[t is None for t in texts]] = 0  # no title: nothing to attend to (not even [CLS]/[SEP])
    return ids.long(), AutoModel.from_pretrained(path)


def category_input(config: Config, dataset: Dataset) -> CategoryInput | None:
    """Embeddings of the ``category_fields`` the dataset has (None when it has none)."""
    fields = [f for f in (config["category_fields"] or []) if dataset.item_feat is not None and f in dataset.item_feat]
    if not fields:
        return None
    ids = {f: dataset.item_feat[f] for f in fields}
    return CategoryInput(ids, {f: dataset.num(f) for f in fields}, int(config["category_dim"]))


class NewsRecommender(AbstractRecommender):
    """Base of the news models: news/user encoders are the subclass's, scoring and loss are shared."""

    type = ModelType.CONTEXT  # labeled evaluation, no global negative sampler
    input_type = InputType.LISTWISE
    #: Whether the news encoder embeds ``category_fields`` (NRMS reads the title only).
    uses_categories = True

    #: RecBole trainer the composed trainer is built on (recbole_llm.trainer.get_trainer): impressions
    trainer_base = NewsTrainer

    @classmethod
    def build_dataloaders(
        cls, config: Config, dataset: Dataset
    ) -> tuple[ImpressionTrainDataLoader, ImpressionEvalDataLoader, ImpressionEvalDataLoader]:
        """Impression loaders instead of RecBole's (called by ``recbole_llm.data.data_preparation``)."""
        from recbole_llm.news.data import news_data_preparation

        return news_data_preparation(config, dataset)

    def __init__(self, config, dataset) -> None:
        super().__init__()
        self.config = config
        self.device = config["device"]
        self.USER_ID = config["USER_ID_FIELD"]
        self.n_users = dataset.user_num
        self.n_items = dataset.item_num
        self.dropout_prob = float(config["dropout_prob"])
        self.attention_dim = int(config["attention_dim"])
        self.titles = title_input(config, dataset)
        self.categories = category_input(config, dataset) if self.uses_categories else None

    # ------------------------------------------------------------------ subclass API
    def encode_news(self, items: torch.Tensor) -> torch.Tensor:
        """[N] item ids -> [N, D] news vectors."""
        raise NotImplementedError

    def encode_user(self, history: torch.Tensor, mask: torch.Tensor, interaction: Interaction) -> torch.Tensor:
        """History vectors [B, L, D] and mask [B, L] -> [B, D] user vectors."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared
    def news_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """News vectors of any id tensor ([..., D]); each distinct id is encoded once per batch."""
        unique, inverse = torch.unique(items.reshape(-1), return_inverse=True)
        return self.encode_news(unique)[inverse].view(*items.shape, -1)

    def forward(self, interaction: Interaction) -> torch.Tensor:
        """Scores [B, C] of every candidate: <candidate vector, user vector>."""
        history = interaction[HISTORY]
        user = self.encode_user(self.news_vectors(history), history > 0, interaction)
        candidates = self.news_vectors(interaction[CANDIDATES])
        return torch.einsum("bcd,bd->bc", candidates, user)

    def calculate_loss(self, interaction: Interaction) -> torch.Tensor:
        """Cross-entropy of each sample's clicked candidate(s) against its other candidates."""
        scores = self.forward(interaction).masked_fill(~interaction[CANDIDATE_MASK], float("-inf"))
        log_probs = torch.log_softmax(scores, dim=1)
        labels = interaction[CANDIDATE_LABEL]
        return -(labels * torch.nan_to_num(log_probs, neginf=0.0)).sum(1).mean()

    def predict(self, interaction: Interaction) -> torch.Tensor:
        """Scores [B, C] of every candidate of whole impressions (padding is ignored by the trainer)."""
        return self.forward(interaction)
