"""OIE plots (matplotlib, PNG): AAE/SA over training epochs; cosine-similarity heatmaps of item rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_oie_history(histories: Mapping[str, Sequence[dict]], path: str | Path, title: str = "") -> Path:
    """AAE (left) and SA (right) against epochs trained, one line per label (``init`` + ``valid`` entries)."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for label, history in histories.items():
        points = [h for h in history if h["stage"] in ("init", "valid")]
        epochs = [h["epoch"] for h in points]
        left.plot(epochs, [h["aae"] for h in points], marker="o", ms=3, label=label)
        right.plot(epochs, [h["sa"] for h in points], marker="o", ms=3, label=label)
    for axis, name in ((left, "AAE (lower = adjacent ids closer)"), (right, "SA (higher = more ordered)")):
        axis.set_xlabel("epochs trained")
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
    first = next(iter(histories.values()), [])
    if first:
        left.axhline(first[0]["aae_random"], color="grey", ls="--", lw=1, label="random table")
        right.axhline(first[0]["sa_random"], color="grey", ls="--", lw=1, label="random table")
    right.legend(fontsize=7)
    return _save(plt, figure, title, path)


def plot_cosine_heatmaps(
    tables: Mapping[str, torch.Tensor], path: str | Path, first: int = 50, title: str = ""
) -> Path:
    """Cosine similarity among the first ``first`` item rows (ids 1..first) of each table, side by side."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(tables), figsize=(5 * len(tables), 4.4), squeeze=False)
    for axis, (label, table) in zip(axes[0], tables.items()):
        rows = torch.nn.functional.normalize(table[:first].float(), dim=1)
        image = axis.imshow((rows @ rows.t()).numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
        axis.set_title(label, fontsize=9)
        axis.set_xlabel("item id")
        axis.set_ylabel("item id")
        ticks = list(range(0, min(first, len(rows)), 10))
        axis.set_xticks(ticks, [t + 1 for t in ticks])
        axis.set_yticks(ticks, [t + 1 for t in ticks])
        figure.colorbar(image, ax=axis, fraction=0.046)
    return _save(plt, figure, title, path)


def _save(plt, figure, title: str, path: str | Path) -> Path:
    """Title, layout and PNG file of a finished figure (its folder is created); the figure is closed."""
    figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
