"""RecBole ``Config`` that knows recbole-llm's models and merges every recbole-llm yaml default."""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from recbole.config import Config as RecBoleConfig
from recbole.utils import ModelType

from recbole_llm.utils import get_model, model_yaml_files, properties_dir

if TYPE_CHECKING:
    from collections.abc import Mapping

    from recbole_llm.stock.config import StockConfig

_TYPE_DEFAULTS = {
    ModelType.GENERAL: "general.yaml",
    ModelType.SEQUENTIAL: "sequential.yaml",
}
#: yaml defaults shared by every model, merged right after RecBole's own defaults.
_SHARED_DEFAULTS = ("overall.yaml", "oie.yaml")


class Config(RecBoleConfig):
    """RecBole's Config, plus recbole-llm's model lookup and defaults.

    Precedence, lowest to highest: RecBole's own defaults (with its per-type quick-start
    defaults); ``properties/overall.yaml`` and ``properties/oie.yaml``; our per-type defaults for
    non-RecBole models (``properties/quick_start/<type>.yaml``); the yaml of every non-RecBole class
    in the model's MRO, base first (:func:`recbole_llm.utils.model_yaml_files`); the model class's
    ``config_overrides``; ``properties/dataset/<dataset>.yaml``; the converter-written
    ``<data_path>/<dataset>/<dataset>.yaml``; then the user's config files < ``config_dict`` <
    command-line ``--key=value`` arguments (RecBole's order). POPK's per-key defaults
    (``properties/sampler/popk.yaml``) fill ``train_neg_sample_args`` when its distribution is popk.

    Unlike RecBole, the command line is read only from ``cmd_args`` (the run script passes its
    leftover ``--key=value`` flags), never from ``sys.argv`` implicitly: importing recbole-llm in a
    notebook, a test runner or a Ray worker does not pick up that process's unrelated flags.
    """

    def __init__(
        self,
        model: str | type | None = None,
        dataset: str | None = None,
        config_file_list: Sequence[str] | None = None,
        config_dict: dict[str, Any] | None = None,
        cmd_args: Sequence[str] | None = None,
    ) -> None:
        self._cmd_args = list(cmd_args or [])
        super().__init__(
            model=model,
            dataset=dataset,
            config_file_list=list(config_file_list) if config_file_list else None,
            config_dict=dict(config_dict) if config_dict else None,
        )

    def _load_cmd_line(self) -> dict[str, Any]:
        cmd_config_dict: dict[str, Any] = {}
        for arg in self._cmd_args:
            if not arg.startswith("--") or "=" not in arg:
                raise ValueError(f"Command-line override '{arg}' is not of the form --key=value.")
            name, value = arg[2:].split("=", 1)
            if name in cmd_config_dict and cmd_config_dict[name] != value:
                raise ValueError(f"Command-line key '{name}' given twice with different values.")
            cmd_config_dict[name] = value
        return self._convert_config_dict(cmd_config_dict)

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise KeyError("No model given: pass --model=<Name> (or `model:` in a config file).")
        if isinstance(model, str):
            model_name, model_class = model, get_model(model, self.external_config_dict.get("model_packages"))
        else:
            model_name, model_class = model.__name__, model
        if dataset is None:
            dataset = self.external_config_dict.get("dataset", "ml-100k")
        return model_name, model_class, dataset

    def _merge_yaml(self, path: Path) -> dict[str, Any]:
        if not path.is_file():
            return {}
        with open(path, encoding="utf-8") as handle:
            values = yaml.load(handle.read(), Loader=self.yaml_loader) or {}
        self.internal_config_dict.update(values)
        return values

    def _set_train_neg_sample_args(self) -> None:
        """Also accept ``distribution: popk`` (recbole_llm.sampler), validated with its yaml defaults."""
        from recbole_llm.sampler.args import is_popk, normalize_popk_args

        args = self.final_config_dict.get("train_neg_sample_args")
        if is_popk(args):
            self.final_config_dict["train_neg_sample_args"] = normalize_popk_args(args)
            return
        super()._set_train_neg_sample_args()

    def _converter_yaml(self, dataset: str) -> Path:
        """``<data_path>/<dataset>/<dataset>.yaml``, written by recbole-llm's dataset converters."""
        if dataset == "ml-100k":  # RecBole forces its bundled copy (see _set_default_parameters)
            return Path(os.devnull)
        base = self.external_config_dict.get("data_path") or self.internal_config_dict.get("data_path") or "dataset/"
        return Path(base) / dataset / f"{dataset}.yaml"

    def _load_internal_config_dict(self, model, model_class, dataset) -> None:
        super()._load_internal_config_dict(model, model_class, dataset)
        props = properties_dir()
        for name in _SHARED_DEFAULTS:
            self._merge_yaml(props / name)
        type_file = _TYPE_DEFAULTS.get(model_class.type)
        if type_file and not model_class.__module__.startswith("recbole."):
            self._merge_yaml(props / "quick_start" / type_file)
        for path in model_yaml_files(model_class):
            self._merge_yaml(path)
        self.internal_config_dict.update(getattr(model_class, "config_overrides", None) or {})
        for path in (props / "dataset" / f"{dataset}.yaml", self._converter_yaml(dataset)):
            values = self._merge_yaml(path)
            self.parameters["Dataset"] += [k for k in values if k not in self.parameters["Dataset"]]
        logging.getLogger(__name__).debug("recbole-llm defaults merged for %s on %s", model, dataset)


#: Settings that say where a run happens (paths, devices, processes), not what it computes: a search
#: never varies them and a result's key leaves them out.
PLACEMENT_KEYS = frozenset(
    {"data_path", "checkpoint_dir", "device", "gpu_id", "use_gpu", "local_rank", "nproc", "world_size"}
)


def setting(config: RecBoleConfig | StockConfig | Mapping[str, Any], key: str) -> Any:
    """``config[key]`` for a key that must exist (a yaml default or a user value).

    RecBole's ``Config`` answers None for any unknown key, so a typo in code silently reads None;
    this raises ``KeyError`` naming the closest known keys instead.
    """
    values = getattr(config, "final_config_dict", config)
    if key in values:
        return values[key]
    close = difflib.get_close_matches(key, [str(k) for k in values], n=3)
    hint = f" Closest: {', '.join(close)}." if close else ""
    raise KeyError(f"Unknown setting '{key}': it is in no yaml default and not set by the user.{hint}")
