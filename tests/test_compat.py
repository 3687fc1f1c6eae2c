"""RecBole patches (recbole_llm.compat): one place, applied once, tied to the RecBole source they were written for."""

from __future__ import annotations

import pickle

import pytest
import recbole
import torch

import recbole_llm  # noqa: F401  (applies the patches)
from recbole_llm import compat


@pytest.mark.parametrize("patch", compat.PATCHES + compat.RAY_SHIMS, ids=lambda p: p.name)
def test_upstream_source_is_the_one_the_patch_was_written_for(patch):
    assert compat.source_hash(patch) == patch.source_sha256, (
        f"upstream changed {', '.join(patch.targets)}: re-read '{patch.name}' in recbole_llm/compat.py, "
        "then record the new hash."
    )


def test_stale_ray_client_mode_is_switched_off():
    """The state a failed ray.init("ray://...") leaves in Ray 2.6.3: client mode on, no client connected."""
    import ray
    from ray._private import client_mode_hook

    assert not compat.clear_stale_ray_client()  # nothing to clear
    client_mode_hook._explicitly_enable_client_mode()
    try:
        assert not ray.is_initialized()  # asks the absent client
        assert compat.clear_stale_ray_client()
        assert not client_mode_hook.is_client_mode_enabled
    finally:
        client_mode_hook._explicitly_disable_client_mode()


def test_source_hash_changes_when_upstream_code_changes(monkeypatch):
    patch = compat.Patch("probe", ("recbole.evaluator.collector:Collector.get_data_struct",), "", lambda: None)
    before = compat.source_hash(patch)
    monkeypatch.setitem(compat._ORIGINALS, patch.targets[0], compat.Patch)  # any other source
    assert compat.source_hash(patch) != before


def test_patches_refuse_another_recbole_version(monkeypatch):
    monkeypatch.setattr(recbole, "__version__", "1.3.0")
    with pytest.raises(compat.RecBoleVersionError) as info:
        compat.check_version(compat.PATCHES[0])
    message = str(info.value)
    assert "\n" not in message and "1.2.1" in message and "1.3.0" in message and compat.PATCHES[0].name in message


def test_apply_is_idempotent():
    from recbole.evaluator.collector import Collector

    wrapped = Collector.data_collect
    compat.apply()
    assert Collector.data_collect is wrapped and wrapped.__wrapped__ is compat.resolve(
        "recbole.evaluator.collector:Collector.data_collect"
    )


def test_trainer_torch_load_reads_recbole_checkpoints_only_there(tmp_path):
    import recbole.trainer.trainer as recbole_trainer_module

    path = tmp_path / "checkpoint.pth"
    torch.save({"config": compat.Patch("x", (), "", print)}, path)  # not weights-only loadable
    assert recbole_trainer_module.torch.load(path)["config"].name == "x"
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)


def test_get_data_struct_keeps_non_tensors():
    from recbole.evaluator.collector import Collector, DataStruct

    collector = Collector.__new__(Collector)
    collector.data_struct = DataStruct()
    collector.data_struct.set("data.num_items", 7)
    collector.data_struct.set("rec.topk", torch.ones(2, 3))
    struct = collector.get_data_struct()
    assert struct.get("data.num_items") == 7 and torch.equal(struct.get("rec.topk"), torch.ones(2, 3))
    assert "rec.topk" not in collector.data_struct


def test_our_metrics_are_registered():
    from recbole.evaluator import register

    assert "categorydiversity" in register.metrics_dict
    assert register.metric_information["categorydiversity"]


def test_importing_recbole_sequential_models_leaves_anomaly_mode_off():
    """RecBole's sine.py switches anomaly detection on at import; after our patches it is off."""
    import importlib

    import recbole.model.sequential_recommender.sine as sine
    import torch

    importlib.reload(sine)  # its module body runs again: anomaly mode on ...
    assert torch.is_anomaly_enabled()
    compat._install_anomaly_mode_off()  # ... and the patch's install switches it off
    assert not torch.is_anomaly_enabled()
