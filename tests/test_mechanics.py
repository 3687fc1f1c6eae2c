"""Plugin mechanics: model lookup (incl. an external model package), yaml precedence, trainers, data hooks."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

import recbole_llm.config as config_module
from recbole_llm import cli
from recbole_llm.config import Config, setting
from recbole_llm.trainer import AdaptiveAlphaMixin, EpochTimingMixin, get_trainer
from recbole_llm.utils import MODEL_PATH_ENV, ModelImportError, UnknownModelError, get_model

from conftest import FAST

TINY_MODEL = '''
import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.model.loss import BPRLoss
from recbole.utils import InputType


class {name}(GeneralRecommender):
    """Matrix factorisation with BPR, defined outside recbole-llm."""

    input_type = InputType.PAIRWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.prepared = getattr(dataset, "tiny_prepared", False)
        self.user_embedding = torch.nn.Embedding(self.n_users, config["tiny_size"])
        self.item_embedding = torch.nn.Embedding(self.n_items, config["tiny_size"])
        self.loss = BPRLoss()

    @classmethod
    def prepare_data(cls, config, train_dataset):
        train_dataset.tiny_prepared = True

    def calculate_loss(self, interaction):
        user = self.user_embedding(interaction[self.USER_ID])
        pos = (user * self.item_embedding(interaction[self.ITEM_ID])).sum(-1)
        neg = (user * self.item_embedding(interaction[self.NEG_ITEM_ID])).sum(-1)
        return self.loss(pos, neg)

    def predict(self, interaction):
        user = self.user_embedding(interaction[self.USER_ID])
        return (user * self.item_embedding(interaction[self.ITEM_ID])).sum(-1)

    def full_sort_predict(self, interaction):
        user = self.user_embedding(interaction[self.USER_ID])
        return (user @ self.item_embedding.weight.T).view(-1)
'''


@pytest.fixture
def model_folder(tmp_path, monkeypatch, request):
    """An empty folder of model files with a unique package name; sys.path and sys.modules restored after."""
    name = f"lab_models_{request.node.name.split('[')[0].removeprefix('test_')}"
    folder = tmp_path / name
    folder.mkdir()
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield folder
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def _write_model(folder: Path, name: str, yaml_text: str, yaml_in_properties: bool = False) -> None:
    (folder / f"{name.lower()}.py").write_text(TINY_MODEL.format(name=name), encoding="utf-8")
    yaml_folder = folder / "properties" / "model" if yaml_in_properties else folder
    yaml_folder.mkdir(parents=True, exist_ok=True)
    (yaml_folder / f"{name}.yaml").write_text(yaml_text, encoding="utf-8")


def test_our_models_come_from_the_package_imports():
    import recbole_llm.model.general_recommender as general
    import recbole_llm.model.sequential_recommender as sequential

    assert get_model("P4R") is general.P4R and get_model("ReviewGNN") is general.ReviewGNN
    assert get_model("ReviewGCN") is general.ReviewGCN and issubclass(general.ReviewGCN, general.ReviewGNN)
    assert get_model("BSARec") is sequential.BSARec


def test_external_model_trains_through_the_command_line(model_folder, monkeypatch, capsys):
    _write_model(model_folder, "TinyMF", "tiny_size: 8\nlearning_rate: 0.01\n")
    monkeypatch.setenv(MODEL_PATH_ENV, str(model_folder))
    config = Config("TinyMF", "ml-100k")
    assert config["tiny_size"] == 8 and config["learning_rate"] == 0.01
    status = cli.main(
        [
            "--model=TinyMF",
            "--tiny_size=4",
            "--epochs=1",
            "--show_progress=False",
            "--state=ERROR",
            "--train_batch_size=4096",
        ]
    )
    assert status == 0, capsys.readouterr().err
    assert "test result" in capsys.readouterr().out


def test_external_model_package_from_config_with_yaml_in_properties(model_folder):
    _write_model(model_folder, "TinyMF", "tiny_size: 6\n", yaml_in_properties=True)
    config = Config("TinyMF", "ml-100k", config_dict={"model_packages": [str(model_folder)]})
    assert config["tiny_size"] == 6 and config.model_class.__module__ == f"{model_folder.name}.tinymf"


def test_import_error_inside_a_model_module_is_reported_as_such(model_folder, monkeypatch, capsys):
    (model_folder / "broken.py").write_text("import no_such_dependency_xyz\n", encoding="utf-8")
    monkeypatch.setenv(MODEL_PATH_ENV, str(model_folder))
    with pytest.raises(ModelImportError, match="no_such_dependency_xyz"):
        get_model("Broken")
    assert cli.main(["--model=Broken"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "no_such_dependency_xyz" in err[0] and "Unknown model" not in err[0]


def test_unknown_model_error_lists_close_names():
    with pytest.raises(UnknownModelError, match="ReviewGNN"):
        get_model("ReviewGNM")


def test_yaml_precedence_mro_overrides_dataset_converter_user(model_folder, tmp_path):
    _write_model(model_folder, "TinyBase", "tiny_size: 4\nlevel_a: base\nlevel_b: base\nlevel_c: base\n")
    (model_folder / "tinychild.py").write_text(
        f"from {model_folder.name}.tinybase import TinyBase\n\n\nclass TinyChild(TinyBase):\n"
        "    config_overrides = {'level_c': 'override', 'level_d': 'override'}\n",
        encoding="utf-8",
    )
    (model_folder / "TinyChild.yaml").write_text("level_b: child\nlevel_c: child\nlevel_d: child\n", encoding="utf-8")
    data = tmp_path / "data" / "tiny-data"
    data.mkdir(parents=True)
    (data / "tiny-data.yaml").write_text("level_d: converter\nlevel_e: converter\n", encoding="utf-8")
    config = Config(
        "TinyChild",
        "tiny-data",
        config_dict={"model_packages": [str(model_folder)], "data_path": str(tmp_path / "data"), "level_e": "user"},
    )
    assert config["level_a"] == "base" and config["level_b"] == "child"  # MRO: base first, subclass over it
    assert config["level_c"] == "override"  # config_overrides over every model yaml
    assert config["level_d"] == "converter"  # converter-written dataset yaml over the model's defaults
    assert config["level_e"] == "user"  # the user's values over every yaml default
    assert config["oie_metrics"] is True and config["model_packages"] == [str(model_folder)]  # shared yamls merged


def test_our_dataset_yaml_over_model_yaml(tmp_path, monkeypatch):
    props = tmp_path / "props"
    (props / "model").mkdir(parents=True)
    (props / "dataset").mkdir()
    (props / "model" / "P4R.yaml").write_text("embedding_size: 32\nn_layers: 2\n", encoding="utf-8")
    (props / "dataset" / "ml-100k.yaml").write_text("embedding_size: 48\n", encoding="utf-8")
    monkeypatch.setattr(config_module, "properties_dir", lambda: props)
    monkeypatch.setattr("recbole_llm.utils.properties_dir", lambda: props)
    config = Config("P4R", "ml-100k")
    assert config["embedding_size"] == 48 and config["n_layers"] == 2


def test_setting_raises_for_unknown_keys():
    config = Config("BPR", "ml-100k")
    assert setting(config, "oie_metrics") is True
    with pytest.raises(KeyError, match="oie_metric'.*oie_metrics"):
        setting(config, "oie_metric")


class _Reporting:
    """A caller's mixin (e.g. Ray Tune's reporting)."""


def test_trainer_composition():
    from recbole.trainer import Trainer

    from recbole_llm.oie.trainer import OIEMetricsMixin

    lightgcn = Config("LightGCN", "ml-100k")
    trainer = get_trainer(lightgcn, lightgcn.model_class, extra_mixins=(_Reporting,))
    assert trainer.__mro__[1:4] == (EpochTimingMixin, _Reporting, Trainer) and trainer.__name__ == "LightGCNTrainer"
    assert get_trainer(lightgcn, lightgcn.model_class) is get_trainer(lightgcn, lightgcn.model_class)

    reviewgnn = Config("ReviewGNN", "ml-100k")
    assert AdaptiveAlphaMixin in get_trainer(reviewgnn, reviewgnn.model_class).__mro__

    sasrec = Config("SASRec", "ml-100k", config_dict={"train_neg_sample_args": None})
    assert OIEMetricsMixin in get_trainer(sasrec, sasrec.model_class).__mro__
    quiet = Config("SASRec", "ml-100k", config_dict={"train_neg_sample_args": None, "oie_metrics": False})
    assert OIEMetricsMixin not in get_trainer(quiet, quiet.model_class).__mro__


def test_trainer_mixins_declared_by_the_model():
    from recbole.model.general_recommender.bpr import BPR

    class DeclaredMixin:
        pass

    class DeclaringBPR(BPR):
        trainer_mixins = (DeclaredMixin,)

    config = Config(DeclaringBPR, "ml-100k")
    assert DeclaredMixin in get_trainer(config, DeclaringBPR).__mro__


def test_popk_data_step_keeps_the_config_and_runs_the_model_hook(model_folder):
    from recbole_llm.data import create_dataset, data_preparation
    from recbole_llm.sampler import PopkTrainDataLoader

    _write_model(model_folder, "TinyMF", "tiny_size: 4\n")
    neg_args = {"distribution": "popk", "sample_num": 1, "popk": 2, "popk_bucket": 86400}
    config = Config(
        "TinyMF",
        "ml-100k",
        config_dict={
            **FAST,
            "model_packages": [str(model_folder)],
            "normalize_all": False,
            "train_neg_sample_args": neg_args,
        },
    )
    before = copy.deepcopy(config.final_config_dict["train_neg_sample_args"])
    train_data, valid_data, _ = data_preparation(config, create_dataset(config))
    assert config["train_neg_sample_args"] == before and before["distribution"] == "popk"
    assert isinstance(train_data, PopkTrainDataLoader) and train_data.neg_sample_args["distribution"] == "popk"
    assert train_data._dataset.tiny_prepared is True  # model_class.prepare_data ran on the train split
    assert not hasattr(valid_data._dataset, "tiny_prepared")


def test_looking_up_a_recbole_model_imports_none_of_our_model_files():
    """Our type packages export lazily: RecBole's LightGCN does not pay for P4R's PyG and transformers imports."""
    code = (
        "import sys; from recbole_llm.utils import get_model; get_model('LightGCN'); "
        "files = [m for m in sys.modules if m.startswith('recbole_llm.model.') and m.count('.') == 3]; "
        "print('torch_geometric' in sys.modules, bool(files))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[-2:] == ["False", "False"]
