"""RecBole patches (recbole_llm.compat): one place, applied once, tied to the RecBole source they were written for."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import pytest
import recbole
import torch
from recbole.model.general_recommender import NGCF, LightGCN
from recbole.utils import init_seed

import recbole_llm  # noqa: F401  (applies the patches)
from recbole_llm import compat
from recbole_llm.config import Config
from recbole_llm.data import create_dataset, data_preparation
from recbole_llm.quick_start import build_model

from conftest import FAST


@pytest.mark.parametrize("patch", compat.PATCHES + compat.MODEL_SHIMS + compat.RAY_SHIMS, ids=lambda p: p.name)
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


@pytest.fixture(scope="module")
def ml100k_lightgcn():
    """RecBole's ml-100k split once for LightGCN (3 layers), and its first 8 training batches."""
    config = Config("LightGCN", "ml-100k", config_dict={**FAST, "train_batch_size": 2048, "n_layers": 3})
    train_data, _, _ = data_preparation(config, create_dataset(config))
    return config, train_data, [batch for _, batch in zip(range(8), train_data)]


def _lightgcn(config, train_data, adjacency: Callable[[torch.Tensor], Any] | None = None) -> LightGCN:
    """RecBole's LightGCN from seed 2020; ``adjacency`` turns RecBole's COO adjacency into another form."""
    init_seed(2020, True)
    model = LightGCN(config, train_data._dataset)
    assert model.norm_adj_matrix.layout == torch.sparse_coo
    if adjacency is not None:
        model.norm_adj_matrix = adjacency(model.norm_adj_matrix)
    return model


def _train(model: LightGCN, batches) -> LightGCN:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for batch in batches:
        optimizer.zero_grad()
        model.calculate_loss(batch).backward()
        optimizer.step()
    return model


def _on_one_thread(function: Callable[[], Any]) -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return function()
    finally:
        torch.set_num_threads(threads)


def test_transposed_once_trains_lightgcn_bit_identically_to_plain_csr(ml100k_lightgcn):
    """A transpose built once (int32 indices) is the one torch builds in every backward: equal to the bit (one thread:
    on two, RecBole's LightGCN repeats to the bit in no layout)."""
    config, train_data, batches = ml100k_lightgcn

    def plain_csr(coo: torch.Tensor) -> torch.Tensor:
        return coo.coalesce().to_sparse_csr()

    csr, shimmed = _on_one_thread(
        lambda: [
            _train(_lightgcn(config, train_data, f), batches) for f in (plain_csr, compat.ConstantSparseMatrix.from_coo)
        ]
    )
    assert not torch.equal(csr.user_embedding.weight, _lightgcn(config, train_data).user_embedding.weight)  # trained
    assert all(torch.equal(a, b) for a, b in zip(csr.parameters(), shimmed.parameters()))
    users = {csr.USER_ID: torch.arange(1, 50)}
    assert torch.equal(csr.full_sort_predict(users), shimmed.full_sort_predict(users))


def test_shimmed_lightgcn_trains_like_recbole_up_to_float_rounding(ml100k_lightgcn):
    """RecBole's COO product and the CSR one add the same terms, rounded differently on some CPUs (equal to the bit on
    one, 1.8e-7 apart on an AVX-512 EPYC): 8 steps at lr 1e-2 move the weights by 0.08 and the layouts by < 1e-6."""
    config, train_data, batches = ml100k_lightgcn
    recbole = _train(_lightgcn(config, train_data), batches)
    model = _lightgcn(config, train_data)
    assert compat.hold_lightgcn_adjacency_in_csr(model)
    assert isinstance(model.norm_adj_matrix, compat.ConstantSparseMatrix)
    assert model.norm_adj_matrix.layout == torch.sparse_csr
    shimmed = _train(model, batches)
    untrained = _lightgcn(config, train_data).user_embedding.weight
    assert (recbole.user_embedding.weight - untrained).abs().max() > 0.01
    for a, b in zip(recbole.parameters(), shimmed.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    users = {recbole.USER_ID: torch.arange(1, 50)}
    torch.testing.assert_close(recbole.full_sort_predict(users), shimmed.full_sort_predict(users), rtol=0, atol=1e-6)


def test_csr_adjacency_only_for_recbole_lightgcn_on_cpu(ml100k_lightgcn):
    """A subclass may read the COO indices, NGCF does (node dropout), another device was not measured:
    all are left alone."""
    config, train_data, _ = ml100k_lightgcn

    class SubclassedLightGCN(LightGCN):
        pass

    ngcf_config = Config("NGCF", "ml-100k", config_dict=FAST)
    on_meta = LightGCN(config, train_data._dataset)
    on_meta.norm_adj_matrix = on_meta.norm_adj_matrix.to("meta")
    for model in (SubclassedLightGCN(config, train_data._dataset), NGCF(ngcf_config, train_data._dataset), on_meta):
        assert not compat.hold_lightgcn_adjacency_in_csr(model)
        assert model.norm_adj_matrix.layout == torch.sparse_coo


def test_runner_builds_recbole_lightgcn_with_csr_adjacency(ml100k_lightgcn):
    config, train_data, _ = ml100k_lightgcn
    model = build_model(config, train_data, train_data._dataset)
    assert type(model) is LightGCN and isinstance(model.norm_adj_matrix, compat.ConstantSparseMatrix)


def _random_coo(seed: int = 0) -> torch.Tensor:
    """A 50 x 40 sparse matrix (not square, so not symmetric), uncoalesced COO (repeated entries) like RecBole's."""
    generator = torch.Generator().manual_seed(seed)
    rows, cols = torch.randint(0, 50, (200,), generator=generator), torch.randint(0, 40, (200,), generator=generator)
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), torch.rand(200, generator=generator), (50, 40))


def test_constant_sparse_matrix_gives_torchs_product_and_gradient_to_the_bit():
    """Its backward multiplies by a transpose built once instead of one built per call: the very same numbers."""
    coo = _random_coo()
    outputs, gradients = [], []
    for operand in (coo.coalesce().to_sparse_csr(), compat.ConstantSparseMatrix.from_coo(coo)):
        dense = torch.randn(40, 8, generator=torch.Generator().manual_seed(1)).requires_grad_()
        hidden = torch.sparse.mm(operand, dense)
        (hidden.square() * torch.arange(8.0)).sum().backward()
        outputs.append(hidden.detach())
        gradients.append(dense.grad)
    assert torch.equal(*outputs) and torch.equal(*gradients)
    assert gradients[0].abs().sum() > 0


def test_constant_sparse_matrix_refuses_anything_but_the_product():
    matrix = compat.ConstantSparseMatrix.from_coo(_random_coo())
    assert matrix.shape == (50, 40) and matrix.layout == torch.sparse_csr
    with pytest.raises(TypeError, match=r"serves torch.sparse.mm\(matrix, dense\) only, not add"):
        torch.add(matrix, 1.0)
    with pytest.raises(TypeError, match="only, not mm"):
        torch.mm(matrix, torch.ones(40, 2))


def test_make_test_schedules_the_ray_files_as_one_unit_of_work():
    """``make test``'s xdist scheduler (tests/conftest.py) keeps each test file whole and puts the Ray-starting
    files in one unit of work: the override of the installed xdist's ``_split_scope`` takes effect."""
    pytest.importorskip("xdist")
    from conftest import RAY_FILES, ray_files_together

    scheduler_class = ray_files_together()
    scheduler = scheduler_class.__new__(scheduler_class)  # _split_scope reads the node id only
    ids = [f"tests/{stem}.py::test_{i}" for stem in (*sorted(RAY_FILES), "test_p4r", "test_popk") for i in range(2)]
    scopes = [scheduler._split_scope(nodeid) for nodeid in ids]
    assert len(set(scopes[: 2 * len(RAY_FILES)])) == 1  # the Ray files: one unit
    assert len(set(scopes)) == 3 and scopes[-1] == "tests/test_popk.py"  # other files: one unit each
