"""OIE-inducing pre-training on the synthetic ordered dataset, and transfer to the real data.

Putra et al. (authors' code OIE-SRS): pre-train the same architecture for 10 epochs on the
synthetic ordered dataset (:mod:`recbole_llm.oie.synthetic`) with its usual objective -- SASRec with
BCE and "front" negatives (only ids larger than every id of the sequence, which teaches "next item
= next integer") -- then start training on the real data from it:

- ``oie_init: whole``: all weights (fresh optimizer: our decision; the authors resumed its state too);
- ``oie_init: item_emb``: the item table only; ``freeze_item_emb`` keeps it fixed.

``oie_permute_ids`` is the control of issue #14: the pre-trained item rows go to the recommender's
items through a seeded random bijection (:func:`item_permutation`) instead of id k -> row k. That is
the same as renumbering the real items at random before pre-training and transfer, but leaves the
recommender's data untouched and shares one cached pre-trained model with the unpermuted arms, so the
two arms differ only in whether the imprinted order lines up with the item numbering. A gain that
vanishes under the permutation comes from the numbering (ids given by first appearance put items that
follow each other on consecutive ids), not from the method.

The pre-trained model is cached under ``oie_cache_dir`` keyed by dataset, model, N and every
setting that changes it, so later runs (other seeds of the real training, the other transfer mode)
reuse it. The token -> id mapping of the synthetic and real datasets is checked identical (literal
ids 1..N) before any transfer, or :class:`~recbole_llm.oie.synthetic.OIEMappingError` is raised.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import partial
from logging import getLogger
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from recbole.utils import init_seed

from recbole_llm.config import setting
from recbole_llm.oie.synthetic import (
    OIEMappingError,
    check_literal_ids,
    check_same_mapping,
    item_tokens,
    synthetic_sequences,
    write_atomic,
)
from recbole_llm.utils import get_model, model_yaml_files

if TYPE_CHECKING:
    from recbole.config import Config
    from recbole.data.dataset import Dataset
    from recbole.data.interaction import Interaction
    from recbole.model.sequential_recommender.sasrec import SASRec

__all__ = [
    "apply_oie_init",
    "item_permutation",
    "permute_item_rows",
    "pretrain",
    "pretrained_model_path",
    "FrontNegativeSampler",
    "OIEMappingError",
]

# Training keys carried from the real run into pre-training (besides the model's own yaml keys).
# The pre-training seed is ``oie_seed`` (not the run's ``seed``): one pre-trained model serves every
# seed of the real training (our decision; it keeps multi-seed benchmarks affordable).
_CARRIED_KEYS = (
    "MAX_ITEM_LIST_LENGTH",
    "learning_rate",
    "train_batch_size",
    "weight_decay",
    "reproducibility",
    "clip_grad_norm",
    "learner",
)
_RUNTIME_KEYS = ("use_gpu", "gpu_id", "show_progress", "state")  # not part of the cache key
_PRETRAIN_SETTINGS = (
    "oie_pretrain_epochs",
    "oie_num_sequences",
    "oie_run_length",
    "oie_min_subrun",
    "oie_max_subrun",
    "oie_seed",
)


class FrontNegativeSampler:
    """Negatives drawn uniformly from ids larger than the positive ("front" sampling, SASRec + BCE).

    The synthetic sequences are increasing contiguous runs, so the target is the largest id of its
    sequence and "larger than every id in the sequence" is "larger than the target". A target equal
    to N (nothing larger exists) gets a uniform negative from 1..N-1. Drop-in for RecBole's sampler in
    ``TrainDataLoader._neg_sampling`` (``sample_by_user_ids``).
    """

    def __init__(self, n_items: int) -> None:
        self.last_id = n_items - 1  # RecBole's n_items counts the padding id 0

    def sample_by_user_ids(self, user_ids: np.ndarray, item_ids: np.ndarray, num: int) -> torch.Tensor:
        positives = torch.as_tensor(item_ids, dtype=torch.long).repeat(num)
        uniform = torch.rand(positives.shape)
        span = self.last_id - positives
        front = positives + 1 + (uniform * span.clamp(min=1)).long()
        fallback = 1 + (uniform * max(self.last_id - 1, 1)).long()
        return torch.where(span > 0, front, fallback)


def front_bce_loss(model: SASRec, interaction: Interaction) -> torch.Tensor:
    """SASRec's BCE objective with one negative per positive (the original SASRec loss)."""
    seq_output = model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
    pos_logits = (seq_output * model.item_embedding(interaction[model.POS_ITEM_ID])).sum(-1)
    neg_logits = (seq_output * model.item_embedding(interaction[model.NEG_ITEM_ID])).sum(-1)
    return F.binary_cross_entropy_with_logits(
        pos_logits, torch.ones_like(pos_logits)
    ) + F.binary_cross_entropy_with_logits(neg_logits, torch.zeros_like(neg_logits))


TRANSFER_MODES = ("item_emb", "whole")

#: State-dict entries whose rows are indexed by item id, so a permutation of the items moves their rows:
#: the item table, and BERT4Rec's per-item output bias (``whole`` transfers it too).
ITEM_ROW_TENSORS = ("item_embedding.weight", "output_bias")


def oie_init_mode(config: Config) -> str | None:
    """The transfer mode, validated: None (vanilla), 'item_emb' or 'whole'."""
    mode = setting(config, "oie_init")
    if mode in (None, False, "", "none", "None", "vanilla"):
        return None
    if mode not in TRANSFER_MODES:
        raise ValueError(f"oie_init must be one of {TRANSFER_MODES} or empty, got {mode!r}.")
    return mode


def _model_yaml_keys(model_name: str) -> list[str]:
    import recbole

    keys: list[str] = []
    for path in (
        Path(recbole.__file__).parent / "properties" / "model" / f"{model_name}.yaml",
        *model_yaml_files(get_model(model_name)),
    ):
        if path.is_file():
            keys += list((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).keys())
    return [k for k in dict.fromkeys(keys) if k not in ("train_neg_sample_args", "epochs")]


def _uses_front_negatives(config) -> bool:
    return config["model"] == "SASRec" and bool(setting(config, "oie_sasrec_front_negatives"))


def pretraining_settings(config: Config, n_items: int) -> dict[str, Any]:
    """Everything that determines the pre-trained model (the cache key)."""
    model_keys = _model_yaml_keys(config["model"]) + list(_CARRIED_KEYS)
    return {
        "dataset": config["dataset"],
        "model": config["model"],
        "n_items": n_items,
        "model_config": {k: config[k] for k in model_keys if config[k] is not None},
        "pretrain": {k: setting(config, k) for k in _PRETRAIN_SETTINGS},
        "front_negatives": _uses_front_negatives(config),
    }


def _cache_dir(config) -> Path:
    folder = setting(config, "oie_cache_dir")
    return Path(folder) if folder else Path(config["checkpoint_dir"] or "saved") / "oie"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def pretrained_model_path(config: Config, n_items: int) -> Path:
    """``<oie_cache_dir>/<dataset>/<Model>-<hash of the settings>.pth``."""
    settings = pretraining_settings(config, n_items)
    return _cache_dir(config) / config["dataset"] / f"{config['model']}-{_digest(settings)}.pth"


def _pretraining_config(config, data_path: Path, name: str):
    from recbole_llm.config import Config

    settings = pretraining_settings(config, 0)
    values = dict(settings["model_config"])
    values.update({k: config[k] for k in _RUNTIME_KEYS if config[k] is not None})
    values.update(
        {
            "seed": int(setting(config, "oie_seed")),
            "data_path": str(data_path),
            "checkpoint_dir": str(data_path),
            "epochs": int(setting(config, "oie_pretrain_epochs")),
            "USER_ID_FIELD": "user_id",
            "ITEM_ID_FIELD": "item_id",
            "TIME_FIELD": "timestamp",
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
            "user_inter_num_interval": "[0,inf)",
            "item_inter_num_interval": "[0,inf)",
            "val_interval": None,
            "benchmark_filename": None,
            "save_dataset": False,
            "save_dataloaders": False,
        }
    )
    if _uses_front_negatives(config):
        # BPR makes RecBole's dataloader attach one negative per positive; the loss is our BCE.
        values.update({"loss_type": "BPR", "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}})
    else:
        values["train_neg_sample_args"] = None
    return Config(model=config["model"], dataset=name, config_dict=values)


def pretrain(config: Config, real_tokens: list[str], path: Path) -> Path:
    """Build the synthetic dataset for N = len(real_tokens) - 1, pre-train, save to ``path`` (atomic)."""
    from recbole.data import create_dataset, data_preparation
    from recbole.trainer import Trainer

    from recbole_llm.oie.metrics import item_embedding_table, oie_metrics

    logger = getLogger(__name__)
    n_items = len(real_tokens) - 1
    name = f"{config['dataset']}-oie-synthetic"
    data_path = path.parent / f"synthetic-{path.stem}"
    sequences = synthetic_sequences(
        n_items,
        int(setting(config, "oie_num_sequences")),
        int(setting(config, "oie_run_length")),
        int(setting(config, "oie_min_subrun")),
        int(setting(config, "oie_max_subrun")),
        int(setting(config, "oie_seed")),
    )
    write_atomic(sequences, data_path, name)
    logger.info(f"OIE: synthetic ordered dataset for N={n_items}: {len(sequences)} sequences in {data_path}")

    pre_config = _pretraining_config(config, data_path, name)
    init_seed(pre_config["seed"], pre_config["reproducibility"])
    dataset = create_dataset(pre_config)
    synthetic_tokens = item_tokens(dataset)
    check_same_mapping(real_tokens, synthetic_tokens)  # before spending any training time
    train_data, _, _ = data_preparation(pre_config, dataset)
    init_seed(pre_config["seed"], pre_config["reproducibility"])
    model = get_model(config["model"])(pre_config, train_data._dataset).to(pre_config["device"])
    trainer = Trainer(pre_config, model)
    loss_func = None
    if _uses_front_negatives(config):
        train_data._sampler = FrontNegativeSampler(model.n_items)
        loss_func = partial(front_bce_loss, model)
    losses = []
    for epoch in range(pre_config["epochs"]):
        loss = trainer._train_epoch(train_data, epoch, loss_func=loss_func, show_progress=pre_config["show_progress"])
        losses.append(float(sum(loss) if isinstance(loss, tuple) else loss))
        logger.info(f"OIE pre-training {config['model']} epoch {epoch}: loss {losses[-1]:.4f}")
    metrics = oie_metrics(item_embedding_table(model))
    logger.info(f"OIE pre-trained item table: AAE {metrics['aae']:.4f}, SA {metrics['sa']:.4f}")
    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "item_tokens": synthetic_tokens,
        "settings": json.dumps(pretraining_settings(config, n_items), sort_keys=True, default=str),
        "epoch_losses": losses,
        "oie_metrics": metrics,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(payload, temporary)
    os.replace(temporary, path)
    return path


def item_permutation(n_items: int, seed: int) -> torch.Tensor:
    """A seeded bijection of RecBole's item ids onto pre-trained rows: item ``j`` takes row ``perm[j]``.

    ``n_items`` counts the padding id 0 (RecBole's ``n_items``); 0 stays 0 and ids 1..n_items-1 are
    shuffled among themselves, so the padding row keeps its meaning and every item gets one row.
    """
    if n_items < 2:
        raise ValueError(f"Need at least one item to permute, got n_items={n_items} (padding included).")
    shuffled = 1 + np.random.default_rng(seed).permutation(n_items - 1)
    return torch.as_tensor(np.concatenate([[0], shuffled]), dtype=torch.long)


def permute_item_rows(state_dict: dict[str, torch.Tensor], permutation: torch.Tensor) -> dict[str, torch.Tensor]:
    """A copy of ``state_dict`` whose item-indexed tensors (:data:`ITEM_ROW_TENSORS`) have row j = old row perm[j].

    Rows beyond the permutation (BERT4Rec's mask token at index ``n_items``) are not items and stay put.
    """
    permuted = dict(state_dict)
    for name in ITEM_ROW_TENSORS:
        if name not in permuted:
            continue
        rows = permuted[name].shape[0]
        if rows < len(permutation):
            raise RuntimeError(f"oie_permute_ids: {name} has {rows} rows, fewer than the {len(permutation)} item ids.")
        index = torch.cat([permutation, torch.arange(len(permutation), rows, dtype=torch.long)])
        permuted[name] = permuted[name].index_select(0, index)
    return permuted


def transfer(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], mode: str, freeze_item_emb: bool) -> None:
    """Copy the pre-trained weights into ``model``: all of them (``whole``) or the item table."""
    if mode == "whole":
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            raise RuntimeError(f"oie_init=whole: the pre-trained model does not fit this model: {exc}") from exc
    elif mode == "item_emb":
        source, target = state_dict["item_embedding.weight"], model.item_embedding.weight
        if source.shape != target.shape:
            raise RuntimeError(
                f"oie_init=item_emb: pre-trained item table {tuple(source.shape)} vs model {tuple(target.shape)}."
            )
        with torch.no_grad():
            target.copy_(source.to(target.device))
    else:
        raise ValueError(f"Unknown OIE transfer mode {mode!r}.")
    if freeze_item_emb:
        model.item_embedding.weight.requires_grad_(False)


def transfer_permutation(config: Config, n_items: int) -> torch.Tensor | None:
    """The item -> pre-trained row bijection when ``oie_permute_ids`` is on (``oie_permute_seed``, else ``seed``)."""
    if not setting(config, "oie_permute_ids"):
        return None
    seed = setting(config, "oie_permute_seed")
    return item_permutation(n_items, int(config["seed"] if seed is None else seed))


def apply_oie_init(config: Config, model: torch.nn.Module, dataset: Dataset) -> Path | None:
    """When ``oie_init`` is set: pre-train (or reuse the cache) and transfer into ``model``.

    ``dataset`` is the real, loaded dataset (its item tokens are checked literal and identical to the
    synthetic ones). Returns the pre-trained model file, or None for a vanilla run.
    """
    mode = oie_init_mode(config)
    freeze = bool(setting(config, "freeze_item_emb"))
    if mode is None:
        for key in ("freeze_item_emb", "oie_permute_ids"):
            if setting(config, key):
                raise ValueError(f"{key} needs oie_init (item_emb or whole): there is no pre-trained table.")
        return None
    if not hasattr(model, "item_embedding"):
        raise TypeError(
            f"oie_init needs a sequential model with an 'item_embedding' table; {config['model']} has none."
        )
    logger = getLogger(__name__)
    real_tokens = item_tokens(dataset)
    check_literal_ids(real_tokens, f"real dataset '{config['dataset']}'")
    path = pretrained_model_path(config, len(real_tokens) - 1)
    if path.is_file():
        logger.info(f"OIE: reusing the pre-trained model {path}")
    else:
        logger.info(f"OIE: pre-training {config['model']} on the synthetic ordered dataset -> {path}")
        pretrain(config, real_tokens, path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    check_same_mapping(real_tokens, list(payload["item_tokens"]))
    state_dict, permutation = payload["state_dict"], transfer_permutation(config, model.n_items)
    if permutation is not None:
        state_dict = permute_item_rows(state_dict, permutation)
    transfer(model, state_dict, mode, freeze)
    notes = (", item ids permuted" if permutation is not None else "") + (", item table frozen" if freeze else "")
    logger.info(f"OIE: transferred ({mode}{notes}) from {path}")
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])  # same RNG as a vanilla run
    return path
