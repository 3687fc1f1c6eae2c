"""Distributed runs: RecBole's multi-process training (``--nproc``), on CPU (gloo) or GPU (NCCL).

How a run is spread, as in RecBole's ``run_recbole.py``: :func:`run_distributed` spawns ``nproc``
processes with ``torch.multiprocessing``; process ``i`` gets ``local_rank = i`` and the shared
``world_size``, ``ip``, ``port``, ``nproc`` and ``offset`` (``--group_offset``: the global rank of this
machine's first process), from which RecBole's Config joins the process group (the backend choice,
gloo on CPU and NCCL on CUDA, is ``distributed_backend`` in :mod:`recbole_llm.compat`). RecBole's
trainer then wraps the model in ``DistributedDataParallel``, keeps its gradient-sync hooks and gives
each process a ``DistributedSampler`` share of every dataloader. Rank 0's result is returned.

Why metrics are gathered: RecBole computes each metric on each process's share of the evaluation
data and averages the values weighted by sample count (``Trainer._map_reduce``). That is right for
per-user means (Recall, NDCG, ...), wrong for AUC/GAUC, ItemCoverage, GiniIndex, ShannonEntropy,
AveragePopularity, TailPercentage, CategoryDiversity and the per-impression news metrics (RecBole PR
#1872). :class:`DistributedEvalMixin` gathers the collected evaluation data (the collector's data
struct) from every process before the evaluator runs, so every metric is computed once on the whole
evaluation set, exactly as in a single process, and the averaging step becomes the identity. The
``DistributedSampler`` pads each split to a multiple of the world size by repeating its first samples;
the padded sample (at most one per process, always its last) is dropped before gathering.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from recbole.evaluator.collector import DataStruct

if TYPE_CHECKING:
    from recbole.config import Config
    from recbole.data.dataloader import AbstractDataLoader

#: Keys of the evaluation data struct that hold one entry per evaluated sample (user, row or candidate).
PER_SAMPLE_KEYS = ("rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label")
#: Set by the news trainer: the impression of every candidate row (an impression is one sample).
IMPRESSION_KEY = "data.impression"
CANDIDATE_ITEM_KEY = "data.candidate_item"


def is_distributed(config: Config) -> bool:
    """True inside a process of a multi-process run (RecBole's ``single_spec`` is off)."""
    return not config["single_spec"]


def is_main_process(config: Config) -> bool:
    """True for the process that logs and writes files: the only one, or global rank 0."""
    return not is_distributed(config) or dist.get_rank() == 0


def free_port() -> int:
    """A TCP port free on this machine right now (for a one-machine process group)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def distributed_settings(nproc: int, world_size: int, ip: str, port: str | int, group_offset: int) -> dict:
    """The config keys RecBole's Config reads to join a process group (``local_rank`` is added per process)."""
    world_size = nproc if world_size == -1 else world_size
    if nproc < 1 or world_size < nproc or not 0 <= group_offset <= world_size - nproc:
        raise ValueError(
            f"--nproc={nproc}, --world_size={world_size}, --group_offset={group_offset}: need nproc >= 1, "
            "world_size >= nproc (-1: nproc) and 0 <= group_offset <= world_size - nproc"
        )
    return {"world_size": world_size, "ip": ip, "port": str(port), "nproc": nproc, "offset": group_offset}


def _worker(local_rank: int, function: Callable, kwargs: dict, queue) -> None:
    """One spawned process: join the group through the config keys, run, hand rank 0's result back."""
    import recbole_llm  # noqa: F401  (compatibility layer in this process)

    kwargs = dict(kwargs)
    kwargs["config_dict"] = {**(kwargs.get("config_dict") or {}), "local_rank": local_rank}
    try:
        result = function(**kwargs)
        if local_rank == 0:
            queue.put(result)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def spawn(function: Callable[..., Any], nproc: int, settings: dict, **kwargs: Any) -> Any:
    """Run ``function(config_dict=..., **kwargs)`` in ``nproc`` processes joined by ``settings``; rank 0's result.

    ``function`` must be importable (module level): the processes are started fresh ("spawn").
    """
    import torch.multiprocessing as mp

    queue = mp.get_context("spawn").SimpleQueue()
    kwargs["config_dict"] = {**(kwargs.get("config_dict") or {}), **settings}
    mp.spawn(_worker, args=(function, kwargs, queue), nprocs=nproc, join=True)
    return None if queue.empty() else queue.get()


def _prepare(model, dataset, config_file_list, config_dict, cmd_args, nproc: int) -> None:
    """Checks and work done once before the processes start, since they would race to do it.

    On CUDA every process needs its own GPU (one line naming ``gpu_id`` otherwise). A named dataset
    is converted, and RecBole's output folders are made (its ``ensure_dir`` checks, then creates:
    two processes creating ``./log`` at once make one of them fail).
    """
    from pathlib import Path

    from recbole_llm.config import Config
    from recbole_llm.data import named_datasets
    from recbole_llm.validation import ConfigError

    probe = Config(model, dataset, config_file_list, config_dict, cmd_args=cmd_args)
    gpus = str(probe["gpu_id"]).split(",")
    if probe["device"].type == "cuda" and len(gpus) < nproc:
        raise ConfigError(
            f"--nproc={nproc} on CUDA needs one GPU per process: gpu_id '{probe['gpu_id']}' lists {len(gpus)} "
            f"(set --gpu_id=0,1,... or an empty gpu_id for gloo on the CPU)"
        )
    named_datasets.prepare_named_dataset(probe)
    for folder in (Path("log") / probe["model"], Path(probe["checkpoint_dir"])):
        folder.mkdir(parents=True, exist_ok=True)


def run_distributed(
    model: str,
    dataset: str | None = None,
    config_file_list: Sequence[str] | None = None,
    config_dict: dict[str, Any] | None = None,
    cmd_args: Sequence[str] | None = None,
    *,
    nproc: int = 1,
    world_size: int = -1,
    ip: str = "localhost",
    port: str | int = "5678",
    group_offset: int = 0,
) -> dict[str, Any] | None:
    """:func:`recbole_llm.quick_start.run_recbole_llm` in ``nproc`` processes of a ``world_size`` group.

    On several machines run the same command on each, with the first machine's ``ip``, the total
    ``world_size`` and ``group_offset`` = the number of processes on the machines before it.
    """
    from recbole_llm.quick_start import run_recbole_llm

    settings = distributed_settings(nproc, world_size, ip, port, group_offset)
    _prepare(model, dataset, config_file_list, config_dict, cmd_args, nproc)
    return spawn(
        run_recbole_llm,
        nproc,
        settings,
        model=model,
        dataset=dataset,
        config_file_list=list(config_file_list or []) or None,
        config_dict=config_dict,
        cmd_args=list(cmd_args or []),
    )


def evaluate_checkpoint(
    model_file: str,
    model: str,
    dataset: str | None = None,
    config_file_list: Sequence[str] | None = None,
    config_dict: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Test-split metrics of a saved checkpoint, in this process (use :func:`spawn` for several)."""
    from recbole.utils import init_seed

    from recbole_llm.config import Config
    from recbole_llm.quick_start import build

    config = Config(model, dataset, config_file_list, config_dict)
    init_seed(config["seed"], config["reproducibility"])
    _, train_data, _, test_data, _, trainer = build(config)
    trainer.eval_collector.data_collect(train_data)  # what fit() does first: item counts for the metrics
    return dict(trainer.evaluate(test_data, load_best_model=True, model_file=model_file))


def _drop_padding(values: dict[str, torch.Tensor], padded: bool) -> dict[str, torch.Tensor]:
    """Without this process's padded last sample: its last row, or its last impression's rows."""
    if not padded:
        return values
    if IMPRESSION_KEY in values:
        impressions = values[IMPRESSION_KEY]
        keep = impressions != impressions[-1]
        return {key: value[keep] for key, value in values.items()}
    return {key: value[:-1] for key, value in values.items()}


def _merge(shares: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One struct from every rank's share, in the single-process order where the sampler allows it.

    Rank ``r`` evaluated samples ``r, r + world_size, ...``: rows are interleaved back into that order.
    Impression rows (several per sample) are concatenated; their metrics do not depend on the order.
    """
    merged: dict[str, torch.Tensor] = {}
    for key in shares[0]:
        parts = [share[key] for share in shares]
        if IMPRESSION_KEY in shares[0]:
            merged[key] = torch.cat(parts)
            continue
        total = sum(len(part) for part in parts)
        out = parts[0].new_empty((total, *parts[0].shape[1:]))
        for rank, part in enumerate(parts):
            out[rank :: len(parts)] = part
        merged[key] = out
    return merged


def gather_data_struct(struct: DataStruct, padded: bool) -> DataStruct:
    """``struct`` with its per-sample entries replaced by those of every process (collective call)."""
    keys = [k for k in (*PER_SAMPLE_KEYS, IMPRESSION_KEY, CANDIDATE_ITEM_KEY) if k in struct]
    local = _drop_padding({key: struct.get(key).cpu() for key in keys}, padded)
    shares: list[dict[str, torch.Tensor] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(shares, local)
    gathered = DataStruct()
    for key in struct._data_dict:
        gathered.set(key, struct.get(key))
    for key, value in _merge(shares).items():
        gathered.set(key, value)
    return gathered


def holds_padding(eval_data: AbstractDataLoader) -> bool:
    """True when this process's share of ``eval_data`` ends with a sample the DistributedSampler repeated."""
    sampler = eval_data.sampler
    last_position = sampler.rank + (sampler.num_samples - 1) * sampler.num_replicas
    return last_position >= len(sampler.dataset)


class _GatheringEvaluator:
    """RecBole's Evaluator, fed the evaluation data of every process instead of this one's share."""

    def __init__(self, evaluator, trainer) -> None:
        self.evaluator = evaluator
        self.trainer = trainer

    def evaluate(self, struct: DataStruct) -> dict[str, float]:
        return self.evaluator.evaluate(gather_data_struct(struct, self.trainer.eval_holds_padding))

    def __getattr__(self, name: str):
        return getattr(self.evaluator, name)


class DistributedEvalMixin:
    """Trainer mixin for multi-process runs (added by :func:`recbole_llm.trainer.get_trainer`).

    - metrics from every process's gathered evaluation data (module docstring); RecBole's
      sample-weighted averaging (``_map_reduce``) becomes the identity, since every process now
      holds the same, complete result;
    - one checkpoint file name for all processes (rank 0's: the name holds the start time), and a
      barrier before a checkpoint is loaded, so no process reads it while rank 0 still writes it.
    """

    def __init__(self, config, model) -> None:
        super().__init__(config, model)
        self.evaluator = _GatheringEvaluator(self.evaluator, self)
        self.eval_holds_padding = False
        name = [self.saved_model_file]
        dist.broadcast_object_list(name, src=0)
        self.saved_model_file = name[0]

    def evaluate(
        self,
        eval_data: AbstractDataLoader | None,
        load_best_model: bool = True,
        model_file: str | None = None,
        show_progress: bool = False,
    ) -> dict[str, float] | None:
        if eval_data and load_best_model:
            dist.barrier()
        self.eval_holds_padding = bool(eval_data) and holds_padding(eval_data)
        return super().evaluate(
            eval_data, load_best_model=load_best_model, model_file=model_file, show_progress=show_progress
        )

    def _map_reduce(self, result, num_sample):
        return result
