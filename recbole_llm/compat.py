"""Compatibility layer between RecBole 1.2.1 and the pinned stack (applied once, on import).

Everything recbole-llm changes inside RecBole lives in this one module, so the full list of
patches is readable in one place (:data:`PATCHES`). Each patch was written against RecBole 1.2.1:
on another version :func:`apply` refuses with one line, and ``tests/test_compat.py`` compares a
hash of the source of every upstream function a patch relies on with the hash recorded here, so
an upstream change fails the test suite instead of silently breaking the patch.

1. ``trainer_torch_load``: PyTorch >= 2.6 made ``torch.load`` weights-only by default. RecBole's
   checkpoints hold the ``Config`` object, so ``Trainer.resume_checkpoint`` and
   ``Trainer.evaluate(load_best_model=True)`` fail. RecBole's trainer module (and only it) gets a
   ``torch`` namespace whose ``load`` reads RecBole's own checkpoints with ``weights_only=False``;
   every other ``torch.load`` keeps safe loading. Our ``load_data_and_model`` uses
   :func:`load_recbole_checkpoint`.
2. ``collector_item_categories``: ``Collector.data_collect`` only knows a fixed list of data
   resources. It also collects ``data.item_categories`` when a registered metric needs it
   (``recbole_llm.metrics.CategoryDiversity``); nothing else changes.
3. ``collector_data_struct``: RecBole 1.2.1's ``Collector.get_data_struct`` calls ``.cpu()`` on every
   collected resource, but ``data.num_items`` is an int and ``data.count_items`` a Counter, so
   ``ItemCoverage``, ``GiniIndex``, ``AveragePopularity`` and ``TailPercentage`` crash. The
   replacement moves only tensors to the CPU; the rest is RecBole's code.
4. ``anomaly_mode_off``: RecBole's ``sine.py`` turns PyTorch's anomaly detection on for the whole
   process when it is imported (any RecBole sequential model imports it): slow backward passes,
   and a NaN gradient anywhere aborts training. It is imported once and anomaly mode turned off.
5. ``metric_registry``: our metrics (:data:`recbole_llm.metrics.METRICS`) are written into RecBole's
   metric registry (``recbole.evaluator.register``), which RecBole builds once from its own module.
5. ``distributed_backend``: RecBole 1.2.1 starts every distributed run with NCCL on ``cuda:local_rank``
   (``Config._init_device``) and wraps the model with ``device_ids=[local_rank]``
   (``AbstractTrainer.__init__``), so ``--nproc`` > 1 needs one GPU per process. The replacements are
   RecBole's code with one choice added: NCCL on CUDA as before, gloo on the CPU (no GPU visible, or an empty
   ``gpu_id``), where the model is wrapped without ``device_ids``. Sparse buffers (graph
   adjacency built from the dataset, the same in every process) are left out of DDP's buffer
   broadcast, which cannot send them (ReviewGNN's CSR matrix). Metrics of distributed
   runs are gathered by :class:`recbole_llm.distributed.DistributedEvalMixin`, not patched here.

Model shims (:data:`MODEL_SHIMS`; RecBole's classes are not replaced, :func:`hold_lightgcn_adjacency_in_csr`
changes one built model): RecBole's LightGCN keeps its normalised adjacency as an uncoalesced COO tensor, the slowest
layout for ``torch.sparse.mm`` on the CPU (one product and its backward on globo at 128 dims, 2 threads: 70 ms
uncoalesced, 48 coalesced, 34 in CSR). Held in CSR, a training step takes 21-27% less on 2 threads (globo, 128 dims,
3 layers: 189-195 -> 149-156 ms; later, the machine slower, 227-242 -> 165-173 ms) and as long on one. In CSR,
autograd still spends about 40% of that step on ``A.t()`` (a CSC view that torch sorts back into CSR in every
backward of every layer); :class:`ConstantSparseMatrix` builds that transpose once: 29-40% less a step on globo
(2 threads, back to back, 2026-12-06: 142-152 -> 98-108 ms; and 235-239 -> 141-146 ms with ``A`` itself as the
transpose, the same arrays for this exactly symmetric matrix); with int32 indices (the project's ``csr_matrix``)
101-120 ms against 105-145 with int64 ones, alternated 4 times. It gives plain CSR's results to the bit (tested on
one thread). CSR and RecBole's COO add the same terms, rounded alike on one CPU (a whole run, the demo's ml-100k
LightGCN on one thread, 95 epochs: the same test metrics and validation history) and 1.8e-7 apart on another (an
AVX-512 EPYC; the test allows 1e-6); on 2 threads no layout repeats to the bit (measured: two 15- or 30-step
trainings from one seed end with different parameters), so results stored before the shim keep their keys, as
with ``EQUIVALENT_CODE_VERSIONS`` (recbole_llm/benchmark/store.py).

Ray shims (:data:`RAY_SHIMS`; nothing in Ray is replaced, our code calls them): Ray 2.6.3's
``ray.init("ray://...")`` switches the process into Ray Client mode before it connects, and when the
connection fails it closes the connection without switching client mode off again. Every later
``ray.is_initialized()`` and ``_internal_kv_initialized()`` of the process then asks the absent
client and answers False, even around a local Ray started afterwards (whose own start then fails an
assertion on the key-value store). :func:`clear_stale_ray_client` switches such a leftover off,
:func:`ray_half_initialized` tells a driver whose key-value store is gone (a cluster shut down under
it), and :func:`shutdown_ray` leaves the process with no Ray whatever was left.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import inspect
import os
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

#: The RecBole version every patch below was written for.
RECBOLE_VERSION = "1.2.1"


class RecBoleVersionError(RuntimeError):
    """A patch met a RecBole version other than the one it was written for."""


@dataclass(frozen=True)
class Patch:
    """One change to RecBole: what it relies on upstream (and that source's hash) and how it is installed."""

    name: str
    targets: tuple[str, ...]  # "module:qualified.name" of each upstream object the patch relies on
    source_sha256: str  # first 16 hex digits of sha256 over the targets' concatenated source
    install: Callable[[], None]


_APPLIED = False
_ORIGINALS: dict[str, Any] = {}


def load_recbole_checkpoint(path: str, map_location: Any = None) -> dict:
    """Load a checkpoint written by RecBole's trainer (it pickles the Config object).

    Only use this for files RecBole itself wrote: it turns weights-only loading off for this call.
    """
    return torch.load(path, map_location=map_location, weights_only=False)


def resolve(target: str) -> Any:
    """The object named ``"module:qualified.name"``, as it was before our patches."""
    if target in _ORIGINALS:
        return _ORIGINALS[target]
    module_name, _, qualname = target.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in qualname.split(".") if qualname else ():  # "module:" names the whole module
        value = getattr(value, part)
    return value


def source_hash(patch: Patch) -> str:
    """sha256 (16 hex digits) of the current upstream source of ``patch.targets``."""
    source = "".join(inspect.getsource(resolve(target)) for target in patch.targets)
    return hashlib.sha256(source.encode()).hexdigest()[:16]


class _TorchForRecBoleTrainer(types.ModuleType):
    """``torch`` as seen from ``recbole.trainer.trainer``: identical except ``load``."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    @staticmethod
    def load(f: Any, map_location: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("weights_only", False)
        return torch.load(f, map_location=map_location, **kwargs)


def _install_trainer_torch_load() -> None:
    import recbole.trainer.trainer as recbole_trainer_module

    recbole_trainer_module.torch = _TorchForRecBoleTrainer()


def _install_collector_item_categories() -> None:
    from recbole.evaluator.collector import Collector

    original = Collector.data_collect

    def data_collect(self: Collector, train_data: Any) -> None:
        original(self, train_data)
        if self.register.need("data.item_categories"):
            from recbole_llm.metrics.category_diversity import item_category_matrix

            self.data_struct.set("data.item_categories", item_category_matrix(self.config, train_data.dataset))

    data_collect.__wrapped__ = original
    Collector.data_collect = data_collect


def _get_data_struct(self):
    """RecBole's ``Collector.get_data_struct``, moving only tensors to the CPU (see item 3)."""
    for key, value in self.data_struct._data_dict.items():
        if isinstance(value, torch.Tensor):
            self.data_struct._data_dict[key] = value.cpu()
    returned_struct = copy.deepcopy(self.data_struct)
    for key in ["rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label"]:
        if key in self.data_struct:
            del self.data_struct[key]
    return returned_struct


def _install_collector_data_struct() -> None:
    from recbole.evaluator.collector import Collector

    Collector.get_data_struct = _get_data_struct


def _install_anomaly_mode_off() -> None:
    """Importing RecBole's sequential models runs ``sine.py``, whose module body calls
    ``torch.autograd.set_detect_anomaly(True)``: every later backward pass of the process is traced
    (several times slower) and any NaN gradient aborts training. Import it once here, then switch
    anomaly mode back off."""
    importlib.import_module("recbole.model.sequential_recommender")
    torch.autograd.set_detect_anomaly(False)


def _install_metric_registry() -> None:
    """Make our metrics usable by name in ``metrics: [...]``: RecBole's Config, Register and Evaluator
    read the same registry dicts, so adding entries in place is enough."""
    from recbole.evaluator import register

    from recbole_llm.metrics import METRICS

    for metric in METRICS:
        name = metric.__name__.lower()
        register.metrics_dict[name] = metric
        register.metric_information[name] = metric.metric_need
        register.metric_types[name] = metric.metric_type
        if metric.smaller and name not in register.smaller_metrics:
            register.smaller_metrics.append(name)


def _init_device(self) -> None:
    """RecBole's ``Config._init_device`` with gloo on the CPU (see item 5)."""
    config = self.final_config_dict
    gpu_id = config["gpu_id"]
    config["gpu_id"] = ",".join(map(str, gpu_id)) if isinstance(gpu_id, tuple) else str(gpu_id)
    gpu_id = config["gpu_id"]
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu_id
    on_cuda = len(gpu_id) > 0 and torch.cuda.is_available()
    if "local_rank" not in config:
        config["single_spec"] = True
        config["local_rank"] = 0
        config["device"] = torch.device("cuda") if on_cuda else torch.device("cpu")
        return
    if on_cuda and len(gpu_id.split(",")) < config["nproc"]:
        raise ValueError(f"--nproc={config['nproc']} needs as many GPUs in gpu_id, got gpu_id='{gpu_id}'")
    torch.distributed.init_process_group(
        backend="nccl" if on_cuda else "gloo",
        rank=config["local_rank"] + config["offset"],
        world_size=config["world_size"],
        init_method=f"tcp://{config['ip']}:{config['port']}",
    )
    config["device"] = torch.device("cuda", config["local_rank"]) if on_cuda else torch.device("cpu")
    config["single_spec"] = False
    if on_cuda:
        torch.cuda.set_device(config["local_rank"])
    if config["local_rank"] != 0:
        config["state"] = "error"
        config["show_progress"] = False
        config["verbose"] = False


def _abstract_trainer_init(self, config, model) -> None:
    """RecBole's ``AbstractTrainer.__init__``; no ``device_ids`` on the CPU, sparse buffers not broadcast (item 5)."""
    from torch.nn.parallel import DistributedDataParallel

    self.config = config
    self.model = model
    if not config["single_spec"]:
        self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        sparse = [name for name, buffer in self.model.named_buffers() if buffer.layout != torch.strided]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self.model, sparse)
        device_ids = [config["local_rank"]] if config["device"].type == "cuda" else None
        self.distributed_model = DistributedDataParallel(self.model, device_ids=device_ids)


def _install_distributed_backend() -> None:
    from recbole.config.configurator import Config
    from recbole.trainer.trainer import AbstractTrainer

    Config._init_device = _init_device
    AbstractTrainer.__init__ = _abstract_trainer_init


PATCHES: tuple[Patch, ...] = (
    Patch(
        "trainer_torch_load",
        ("recbole.trainer.trainer:Trainer.resume_checkpoint", "recbole.trainer.trainer:Trainer.evaluate"),
        "9960d4e41af98172",
        _install_trainer_torch_load,
    ),
    Patch(
        "collector_item_categories",
        ("recbole.evaluator.collector:Collector.data_collect",),
        "d8a344993f87aca4",
        _install_collector_item_categories,
    ),
    Patch(
        "collector_data_struct",
        ("recbole.evaluator.collector:Collector.get_data_struct",),
        "b8062da76dd83758",
        _install_collector_data_struct,
    ),
    Patch(
        "anomaly_mode_off",
        ("recbole.model.sequential_recommender.sine:",),
        "16277f215552e1e1",
        _install_anomaly_mode_off,
    ),
    Patch(
        "metric_registry",
        ("recbole.evaluator.register:cluster_info", "recbole.evaluator.register:Register"),
        "021c249c92638c3d",
        _install_metric_registry,
    ),
    Patch(
        "distributed_backend",
        ("recbole.config.configurator:Config._init_device", "recbole.trainer.trainer:AbstractTrainer.__init__"),
        "a33770b08a126697",
        _install_distributed_backend,
    ),
)


def check_version(patch: Patch) -> None:
    """Refuse (one line) to install ``patch`` on a RecBole other than :data:`RECBOLE_VERSION`."""
    import recbole

    found = getattr(recbole, "__version__", "unknown")
    if found != RECBOLE_VERSION:
        raise RecBoleVersionError(
            f"recbole-llm patch '{patch.name}' was written for RecBole {RECBOLE_VERSION}, found {found}: "
            f"install recbole=={RECBOLE_VERSION} (see recbole_llm/compat.py)."
        )


#: Upstream code the model shims are written against (RecBole 1.2.1); the hash test flags a change. LightGCN's
#: whole class is hashed: the shim holds only if ``norm_adj_matrix`` is used by ``torch.sparse.mm`` alone.
MODEL_SHIMS: tuple[Patch, ...] = (
    Patch(
        "lightgcn_csr_adjacency",
        ("recbole.model.general_recommender.lightgcn:LightGCN",),
        "062a52c2e8704b12",
        lambda: None,
    ),
)


class ConstantSparseMatrix:
    """A constant CSR matrix and its transpose, built once, served to ``torch.sparse.mm(matrix, dense)``.

    Why: autograd computes ``A.t() @ grad`` for the dense input, and for CSR that means sorting every nonzero into
    a new CSR matrix in every backward (see the module docstring); the product here is
    :func:`recbole_llm.model.abstract_recommender.sparse_matmul`, the same two ``torch.sparse.mm`` calls on the
    same arrays, so the same numbers. Torch hands a call on this object to ``__torch_function__`` (its protocol
    for tensor-like types); only ``torch.sparse.mm(matrix, dense)`` is served, anything else raises. Attributes
    (``layout``, ``shape``, ``device``) are the matrix's.
    """

    def __init__(self, matrix: torch.Tensor, matrix_t: torch.Tensor) -> None:
        self.matrix = matrix
        self.matrix_t = matrix_t

    @classmethod
    def from_coo(cls, coo: torch.Tensor) -> ConstantSparseMatrix:
        """Both matrices built by the project's ``csr_matrix`` (int32 indices, which torch's CPU product takes)."""
        from recbole_llm.model.abstract_recommender import csr_matrix, transposed_csr_matrix

        coo = coo.coalesce()
        size = (coo.shape[0], coo.shape[1])
        return cls(
            csr_matrix(coo.indices(), coo.values(), size), transposed_csr_matrix(coo.indices(), coo.values(), size)
        )

    def __getattr__(self, name: str) -> Any:
        if name == "matrix" or name.startswith("__"):  # unset while unpickling; copy protocols are this object's
            raise AttributeError(name)
        return getattr(self.matrix, name)

    def __repr__(self) -> str:
        return f"ConstantSparseMatrix({self.matrix!r})"

    @classmethod
    def __torch_function__(cls, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        from recbole_llm.model.abstract_recommender import sparse_matmul

        is_product = func is torch.sparse.mm and len(args) == 2 and not kwargs
        if is_product and isinstance(args[0], cls) and isinstance(args[1], torch.Tensor):
            return sparse_matmul(args[0].matrix, args[0].matrix_t, args[1])
        name = getattr(func, "__name__", func)
        raise TypeError(f"ConstantSparseMatrix serves torch.sparse.mm(matrix, dense) only, not {name}: use .matrix")


def hold_lightgcn_adjacency_in_csr(model: torch.nn.Module) -> bool:
    """Hold a RecBole LightGCN's CPU adjacency in CSR with its transpose (a :class:`ConstantSparseMatrix`); True
    when it did.

    Only RecBole's own class (a subclass may use the COO indices) and only on the CPU, where it was measured.
    """
    from recbole.model.general_recommender import LightGCN

    adjacency = getattr(model, "norm_adj_matrix", None)
    if type(model) is not LightGCN or not isinstance(adjacency, torch.Tensor):
        return False
    if adjacency.layout != torch.sparse_coo or adjacency.device.type != "cpu":
        return False
    check_version(MODEL_SHIMS[0])
    model.norm_adj_matrix = ConstantSparseMatrix.from_coo(adjacency)
    return True


#: Upstream code the Ray shims are written against (Ray 2.6.3); the hash test flags a change.
RAY_SHIMS: tuple[Patch, ...] = (
    Patch(
        "stale_ray_client_mode",
        ("ray.util.client_connect:connect", "ray.util.client:_ClientContext.connect"),
        "9f9948c1fde15bb0",
        lambda: None,
    ),
)


def clear_stale_ray_client() -> bool:
    """Switch off the Ray Client mode a failed ``ray.init("ray://...")`` left on; True when it did."""
    from ray._private import client_mode_hook
    from ray.util.client import ray as ray_client

    if client_mode_hook.is_client_mode_enabled and not ray_client.is_connected():
        client_mode_hook._explicitly_disable_client_mode()
        return True
    return False


def ray_half_initialized() -> bool:
    """A Ray driver whose key-value store is gone: Ray Tune cannot register its trainable there."""
    import ray
    from ray.experimental.internal_kv import _internal_kv_initialized

    return ray.is_initialized() and not _internal_kv_initialized()


def shutdown_ray() -> None:
    """Leave this process without Ray: a client connection, a driver, a stale client mode."""
    import ray

    clear_stale_ray_client()
    ray.shutdown()


def apply() -> None:
    """Install every patch once (calling again is a no-op), each after its version check."""
    global _APPLIED
    if _APPLIED:
        return
    for patch in PATCHES:
        check_version(patch)
    for patch in PATCHES:
        for target in patch.targets:
            _ORIGINALS.setdefault(target, resolve(target))
        patch.install()
    _APPLIED = True
