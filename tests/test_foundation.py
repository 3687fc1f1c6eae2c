"""Foundation: model lookup, config merging, entry point, checkpoint reload.

(The comparison command is tested in tests/test_compare.py, every configuration mistake of the entry
point in tests/test_cli_errors.py.)
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
import torch
from recbole.model.general_recommender.lightgcn import LightGCN

import recbole_llm.config as config_module
from recbole_llm.cli import main
from recbole_llm.config import Config
from recbole_llm.quick_start import load_data_and_model, run_recbole_llm
from recbole_llm.trainer import get_trainer
from recbole_llm.utils import UnknownModelError, get_model

from conftest import FAST, PROJECT_ROOT

RUN_SCRIPT = str(PROJECT_ROOT / "run_recbole_llm.py")
# Users with at most 40 ratings: ~300 users, short histories; keeps sequential models fast on CPU.
SMALL_SEQUENTIAL = ["--user_inter_num_interval=[5,40]", "--MAX_ITEM_LIST_LENGTH=10"]


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, RUN_SCRIPT, *args], capture_output=True, text=True, timeout=timeout)


def test_get_model_finds_recbole_models():
    assert get_model("LightGCN") is LightGCN


def test_get_model_prefers_ours(tmp_path, monkeypatch):
    from recbole.model.general_recommender.bpr import BPR

    package = tmp_path / "recbole_llm_fake"
    (package / "model" / "general_recommender").mkdir(parents=True)
    (package / "model" / "general_recommender" / "bpr.py").write_text(
        "from recbole.model.general_recommender.bpr import BPR as _Base\nclass BPR(_Base):\n    pass\n"
    )
    # Our lookup resolves `recbole_llm.model.<type>.<name>`: emulate a plugin BPR by extending the path.
    import recbole_llm.model.general_recommender as ours

    monkeypatch.setattr(ours, "__path__", [str(package / "model" / "general_recommender"), *ours.__path__])
    sys.modules.pop("recbole_llm.model.general_recommender.bpr", None)
    try:
        found = get_model("BPR")
        assert found is not BPR and issubclass(found, BPR)
        assert found.__module__ == "recbole_llm.model.general_recommender.bpr"
    finally:
        sys.modules.pop("recbole_llm.model.general_recommender.bpr", None)


def test_unknown_model_lists_closest_names():
    with pytest.raises(UnknownModelError) as info:
        get_model("LightGNC")
    assert "LightGCN" in str(info.value)


def test_get_trainer_composes_recbole_trainer():
    from recbole.trainer import Trainer

    config = Config("LightGCN", "ml-100k")
    trainer = get_trainer(config, LightGCN)
    assert issubclass(trainer, Trainer) and trainer.__mro__[-3] is Trainer


def test_yaml_merging_our_defaults_then_user_overrides(tmp_path, monkeypatch):
    props = tmp_path / "props"
    (props / "model").mkdir(parents=True)
    (props / "dataset").mkdir()
    (props / "overall.yaml").write_text("raw_data_path: ~\n")
    (props / "model" / "P4R.yaml").write_text("n_layers: 4\nreg_weight: 0.5\nembedding_size: 32\n")
    (props / "dataset" / "ml-100k.yaml").write_text("embedding_size: 48\n")
    monkeypatch.setattr(config_module, "properties_dir", lambda: props)
    monkeypatch.setattr("recbole_llm.utils.properties_dir", lambda: props)
    user_file = tmp_path / "user.yaml"
    user_file.write_text("reg_weight: 0.25\n")

    config = Config("P4R", "ml-100k", [str(user_file)], {"n_layers": 2}, cmd_args=["--learning_rate=0.01"])
    assert config["embedding_size"] == 48  # dataset yaml over model yaml
    assert config["reg_weight"] == 0.25  # user file over our defaults
    assert config["n_layers"] == 2  # config_dict over file defaults
    assert config["learning_rate"] == 0.01  # command line parsed and typed
    plain = Config("P4R", "ml-100k", config_dict={"n_layers": 2})
    assert plain["reg_weight"] == 0.5 and plain["learning_rate"] == 0.001


def test_config_ignores_process_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest", "--epochs=999", "-q"])
    assert Config("BPR", "ml-100k")["epochs"] != 999


def test_entry_point_lightgcn_one_epoch():
    result = run_cli("--model=LightGCN", "--epochs=1", "--show_progress=False")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test result" in result.stdout and "ndcg@10" in result.stdout


def test_entry_point_sasrec_one_epoch(capsys):
    """In this process: the script itself is run by the LightGCN and unknown-model tests above and below."""
    argv = ["--model=SASRec", "--epochs=1", "--show_progress=False", "--train_neg_sample_args=None", *SMALL_SEQUENTIAL]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "test result" in out and "hit@10" in out


def test_entry_point_unknown_model_is_one_clear_line():
    result = run_cli("--model=NoSuchModel")
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "NoSuchModel" in lines[0] and "Closest names" in lines[0]


def test_checkpoint_reload_under_weights_only_torch():
    result = run_recbole_llm("BPR", "ml-100k", config_dict=dict(FAST), saved=True)
    assert result["saved_model_file"]
    config, model, _, _, _, test_data = load_data_and_model(result["saved_model_file"])
    state = torch.load(result["saved_model_file"], map_location="cpu", weights_only=False)["state_dict"]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor.cpu(), state[name].cpu()), name
    # Safe loading stays the default everywhere else.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(result["saved_model_file"])
    trainer = get_trainer(config, type(model))(config, model)
    reloaded = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    assert reloaded["ndcg@10"] == pytest.approx(result["test_result"]["ndcg@10"], abs=1e-4)
