"""Task vectors (Ilharco et al., "Editing Models with Task Arithmetic", ICLR 2023).

``tau = theta_finetuned - theta_base`` over every floating-point tensor of the state dict (integer and
bool buffers such as position ids are skipped, as in ``mlfoundations/task_vectors``); vectors add,
negate and scale, and ``apply_to(theta, coef)`` gives ``theta + coef * tau``.

Differences are kept in float64 and an edit is rounded once to the weights' dtype: the difference of
two float32 (or bf16/fp16) tensors is exact in float64 whenever their exponents differ by at most 29,
so ``base + (finetuned - base)`` returns ``finetuned`` bit for bit. Rounding an edited model to float32
loses bits, so edits are never stacked on edited weights: :class:`WeightEditor` keeps the origin and the
float64 sum of the applied vectors, and writes ``origin + sum`` (rounded once) into the model; adding
then subtracting a vector leaves an exactly zero sum, so the origin comes back bit for bit. Every
vector of an experiment is taken from the same saved base weights (``save_state`` / ``load_state``),
so they live in one coordinate system.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch

StateDict = Mapping[str, torch.Tensor]


def is_task_tensor(tensor: torch.Tensor) -> bool:
    """Floating-point tensors take part in task arithmetic; integer and bool buffers do not."""
    return torch.is_floating_point(tensor)


class TaskVector:
    """A float64 difference per state-dict key; see the module docstring."""

    def __init__(self, vector: Mapping[str, torch.Tensor]) -> None:
        self.vector = {key: value.detach().to("cpu", torch.float64) for key, value in vector.items()}

    @classmethod
    def between(cls, base: StateDict, finetuned: StateDict) -> TaskVector:
        """``finetuned - base`` over the floating-point tensors both hold (same keys and shapes required)."""
        missing = sorted(set(base) ^ set(finetuned))
        if missing:
            raise KeyError(f"TaskVector.between: state dicts differ in keys, e.g. {missing[:3]}")
        vector = {}
        for key, value in finetuned.items():
            if not is_task_tensor(value):
                continue
            if value.shape != base[key].shape:
                shapes = f"{tuple(value.shape)} vs {tuple(base[key].shape)}"
                raise ValueError(f"TaskVector.between: '{key}' has shape {shapes}")
            vector[key] = value.detach().cpu().double() - base[key].detach().cpu().double()
        return cls(vector)

    def __add__(self, other: TaskVector) -> TaskVector:
        if set(self.vector) != set(other.vector):
            raise KeyError("TaskVector +: the vectors cover different tensors")
        return TaskVector({key: value + other.vector[key] for key, value in self.vector.items()})

    def __neg__(self) -> TaskVector:
        return TaskVector({key: -value for key, value in self.vector.items()})

    def __sub__(self, other: TaskVector) -> TaskVector:
        return self + (-other)

    def __mul__(self, coef: float) -> TaskVector:
        return TaskVector({key: value * float(coef) for key, value in self.vector.items()})

    __rmul__ = __mul__

    def apply_to(self, state: StateDict, coef: float = 1.0) -> dict[str, torch.Tensor]:
        """``state + coef * tau`` as a new state dict (each tensor rounded once to its own dtype and device).

        Tensors the vector does not cover (integer buffers) are returned unchanged.
        """
        edited = {}
        for key, value in state.items():
            delta = self.vector.get(key)
            if delta is None:
                edited[key] = value.clone()
                continue
            step = float(coef) * delta
            total = (value.detach().cpu().double() + step).to(value.dtype)
            edited[key] = torch.where(step == 0, value.detach().cpu(), total).to(value.device)  # +0 keeps -0.0
        return edited

    def norm(self) -> float:
        """L2 norm over all covered tensors (for reports)."""
        return float(torch.sqrt(sum((value**2).sum() for value in self.vector.values())))

    def save(self, path: str | Path) -> None:
        save_state(self.vector, path)

    @classmethod
    def load(cls, path: str | Path) -> TaskVector:
        return cls(load_state(path))


class WeightEditor:
    """A model edited from fixed origin weights: ``origin + sum(coef_i * tau_i)``, rounded once per write."""

    def __init__(self, model: torch.nn.Module, origin: StateDict | None = None) -> None:
        self.model = model
        self.origin = {k: v.detach().clone() for k, v in (origin or model.state_dict()).items()}
        self.total: TaskVector | None = None

    def add(self, tau: TaskVector, coef: float = 1.0) -> None:
        """Add ``coef * tau`` to the model (the float64 sum is kept; the model gets origin + sum)."""
        scaled = tau * coef
        self.total = scaled if self.total is None else self.total + scaled
        self.model.load_state_dict(self.total.apply_to(self.origin))

    def subtract(self, tau: TaskVector, coef: float = 1.0) -> None:
        self.add(tau, -coef)

    def reset(self) -> None:
        """Back to the origin weights."""
        self.total = None
        self.model.load_state_dict(self.origin)


def save_state(state: StateDict, path: str | Path) -> None:
    """Write a state dict (tensors only, loadable with ``weights_only=True``) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({key: value.detach().cpu() for key, value in state.items()}, tmp)
    tmp.replace(path)


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict written by :func:`save_state` (weights only: no code is unpickled)."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def state_fingerprint(state: StateDict) -> str:
    """A short hash of every tensor's key, dtype, shape and bytes: tells whether two trainings gave the same weights.

    Results stored for a state must never be mixed with results of a retrained state that differs from it
    (another torch version or machine can change the last bits of training).
    """
    digest = hashlib.sha1()
    for key in sorted(state):
        tensor = state[key].detach().cpu()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]
