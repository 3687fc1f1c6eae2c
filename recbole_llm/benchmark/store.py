"""What a suite has finished: one JSON line per tuning trial, per trial set and per final run, keyed by content.

A key is the hash of the resolved configuration of the run (RecBole's final config: every yaml
default, the suite's settings, the tuned values, the seed; paths and device left out, so a result
carries across machines) and of the model's code version (the hash of its source file). Change a
default, a setting or the model's code and the key changes, so the run is done again; anything else
is skipped on a rerun. Lines are appended and flushed one at a time: a kill loses the running job only.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from recbole_llm.config import PLACEMENT_KEYS

# Settings that say where or how verbosely a run happens, not what it computes.
VOLATILE_KEYS = PLACEMENT_KEYS | frozenset(
    {
        "ip",
        "port",
        "offset",
        "state",
        "show_progress",
        "log_wandb",
        "wandb_project",
        "tensorboard",
        "raw_data_path",
        "text_cache_dir",
        "oie_cache_dir",
        "profile_dir",
        "worker",
        "dataset_save_path",
        "dataloaders_save_path",
    }
)


#: Settings added to the yaml defaults after results were stored, with the value that computes exactly what
#: was computed before they existed: left out of a key while at that value, so those results keep their keys
#: (a new default key would otherwise change every key of every suite and rerun everything).
INERT_DEFAULTS: dict[str, Any] = {"oie_permute_ids": False, "oie_permute_seed": None, "profile_allow_partial": False}

#: Settings that change how fast a result is computed, not the result (the profiles written in batches of 8 or
#: 32 are the same): a key holds the value the stored results were made with, whatever the setting, so a faster
#: default reruns nothing.
SPEED_ONLY_KEYS: dict[str, Any] = {"profile_batch_size": 8}


#: Model files changed in a way that computes every result to the bit as before (a speed change): the new file's
#: hash -> the version its results are stored under, so a faster model reruns nothing. Each entry names the test
#: that proves the equivalence; any further edit of the file gives a hash not listed here, hence new keys.
EQUIVALENT_CODE_VERSIONS: dict[str, str] = {
    # P4R propagates with GeneralGraphRecommender.propagate (transpose built once) instead of PyG's LGConv,
    # the same torch.sparse.mm products: tests/test_p4r.py::test_propagation_is_bit_identical_to_pyg_lgconv;
    # and gathers its batch rows with index_select instead of indexing (bit-identical on one thread, where
    # indexing's backward is repeatable):
    # tests/test_p4r.py::test_loss_gathers_are_bit_identical_to_indexing_on_one_thread.
    "803aa374b071": "2a8321bb025e",
}


@cache
def model_code_version(model: str) -> str:
    """First 12 hex digits of the sha256 of the model class's source file (``UnknownModelError`` if none),
    or the version it is equivalent to (``EQUIVALENT_CODE_VERSIONS``)."""
    source = Path(inspect.getsourcefile(model_class(model)))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    return EQUIVALENT_CODE_VERSIONS.get(digest, digest)


def model_class(model: str) -> type:
    """The class a model name runs: a stock-ranking model (``--task=stock``), else a RecBole or recbole-llm one."""
    from recbole_llm.stock.models import STOCK_MODELS
    from recbole_llm.utils import get_model

    return STOCK_MODELS[model] if model in STOCK_MODELS else get_model(model)


def resolved_config(model: str, dataset: str, config_file_list: list[str] | None, config_dict: dict[str, Any]) -> dict:
    """RecBole's final configuration for these settings, without the volatile keys and inert defaults, and with
    the speed-only settings at their stored values.

    A named dataset not converted yet is converted first: its converter writes settings of its own
    (``<data_path>/<name>/<name>.yaml``) that enter the configuration, so a key computed before the
    conversion would differ from the one a run stores after it, and a fresh checkout would not find the
    committed results of that dataset. (A present folder is left to the run, which reconverts it if stale.)
    """
    from recbole_llm.config import Config
    from recbole_llm.data import named_datasets

    config = Config(model, dataset, config_file_list, dict(config_dict))
    if dataset in named_datasets.NAMED_DATASETS and not named_datasets.atomic_files_present(
        config["data_path"], dataset, config
    ):
        named_datasets.prepare_named_dataset(config)
        config = Config(model, dataset, config_file_list, dict(config_dict))
    return {
        k: SPEED_ONLY_KEYS.get(k, v)
        for k, v in config.final_config_dict.items()
        if k not in VOLATILE_KEYS and not (k in INERT_DEFAULTS and v == INERT_DEFAULTS[k])
    }


@cache
def data_version(dataset: str) -> str | None:
    """First 12 hex digits of a hash of how a named dataset is converted (its converter's parameters
    and source), or None for a dataset no converter of ours builds (RecBole's ml-100k, a user's files).

    Results computed on a conversion that has since changed must not be found again; the raw files'
    dates are left out on purpose, so a fresh checkout beside the same data finds its stored results.
    """
    from recbole_llm.data.conversion_stamp import converter_parameters, converter_sources
    from recbole_llm.data.named_datasets import NAMED_DATASETS

    entry = NAMED_DATASETS.get(dataset)
    if entry is None:
        return None
    how = {"parameters": converter_parameters(entry.convert), "sources": converter_sources(entry.convert)}
    return hashlib.sha256(json.dumps(how, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:12]


def content_key(kind: str, model: str, payload: dict[str, Any]) -> str:
    """Hash of ``kind``, the model's code version, the dataset's conversion (when ``payload`` names a
    converted dataset) and ``payload`` (JSON, keys sorted)."""
    version = data_version(payload["dataset"]) if "dataset" in payload else None
    data = {"data": version} if version is not None else {}  # absent, not None: older keys stay valid
    text = json.dumps({"kind": kind, "code": model_code_version(model), **data, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def trial_key(set_key: str, params: dict[str, Any]) -> str:
    """Key of one tuning trial: its trial set's key (which holds the code and data versions) and its values."""
    text = json.dumps({"kind": "trial", "set": set_key, "params": params}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class ResultStore:
    """Append-only JSON-lines file of finished entries, each with a ``key``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._entries: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:  # a line cut by a kill mid-write: that job runs again
                        continue
                    self._entries[entry["key"]] = entry

    def get(self, key: str) -> dict[str, Any] | None:
        return self._entries.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def entries(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self._entries.values() if kind is None or e.get("kind") == kind]

    def add(self, entry: dict[str, Any]) -> None:
        """Store one finished entry (it must carry ``key`` and ``kind``), on disk before returning.

        Tuning trials are added from a Ray Tune callback, which runs in the driver's thread (the one
        that called ``fit``): one writer at a time, as for every other entry.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+", encoding="utf-8") as handle:
            if handle.tell() > 0:
                handle.seek(handle.tell() - 1)
                if handle.read(1) != "\n":  # end a line cut by a kill, so this entry starts clean
                    handle.write("\n")
            handle.write(json.dumps(entry, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self._entries[entry["key"]] = entry
