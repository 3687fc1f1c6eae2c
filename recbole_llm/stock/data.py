"""One run's data: features, targets and masks of a panel, split by the day that is predicted.

A sample is one trading day ``d`` with every stock: inputs are days ``d - lookback .. d - 1``, the
target is the return ``close[d] / close[d - 1] - 1``, and a stock counts (loss and metrics) only when
it traded on every day of its window and on ``d`` (StockMixer's mask). ``split = [train, valid, test]``
cuts the days into consecutive periods (counts summing to the panel's days, or fractions summing to 1);
a day is in the period of the day it predicts, so the paper's 756 / 252 / 237 gives 740 training
samples (the first ``lookback`` days have no full window), 252 validation and 237 test days. The
scaler is fitted on the training period's days only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from recbole_llm.stock.features import TrainScaler, build_features, forward_fill
from recbole_llm.stock.panel import Panel, PanelError, load_csv_panel, load_feng_panel
from recbole_llm.stock.signals import SignalFile, load_signals, read_sectors, signal_channels

if TYPE_CHECKING:
    from recbole_llm.stock.config import StockConfig


@dataclass
class StockData:
    """Arrays of one run, all ``[stocks, days, ...]``; ``periods`` maps train/valid/test to predicted days."""

    features: np.ndarray  # float32 [N, T, C]
    base: np.ndarray  # float32 [N, T]: scaled close, filled causally (the price a prediction is relative to)
    returns: np.ndarray  # float32 [N, T]: realised return of each day (0 where undefined)
    traded: np.ndarray  # bool [N, T]
    lookback: int
    periods: dict[str, np.ndarray]
    tickers: list[str]
    dates: pd.DatetimeIndex
    channels: list[str]
    scaler: TrainScaler

    def day(self, d: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, ...]:
        """Inputs ``[N, lookback, C]``, last close ``[N]``, target return ``[N]`` and mask ``[N]`` for day ``d``."""
        if d < self.lookback:
            raise IndexError(f"day {d} has no full window of {self.lookback} days")
        mask = self.traded[:, d - self.lookback : d + 1].all(axis=1)  # label side: may look at day d
        base = np.where(self.base[:, d - 1] > 0, self.base[:, d - 1], 1.0)  # inputs: days < d only
        arrays = (self.features[:, d - self.lookback : d], base, self.returns[:, d], mask)
        return tuple(torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device) for a in arrays)

    def with_channels(self, extra: np.ndarray, names: list[str]) -> StockData:
        """A copy with ``extra`` ``[N, T, S]`` channels appended (EDSMF's signals)."""
        features = np.concatenate([self.features, extra.astype(np.float32)], axis=-1)
        return StockData(**{**self.__dict__, "features": features, "channels": self.channels + names})


def split_days(split: list, days: int, lookback: int) -> tuple[int, int, dict[str, np.ndarray]]:
    """``(train_end, valid_end, periods)`` from day counts or fractions; one-line errors otherwise."""
    if not isinstance(split, (list, tuple)) or len(split) != 3:
        raise PanelError(f"split = {split!r} is not allowed: expected [train, valid, test] day counts or fractions")
    if all(isinstance(s, int) for s in split):
        counts = list(split)
        if sum(counts) != days:
            raise PanelError(f"split = {counts} covers {sum(counts)} days but the panel has {days}: set --split")
    elif abs(sum(float(s) for s in split) - 1.0) < 1e-9:
        counts = [int(round(float(s) * days)) for s in split[:2]]
        counts.append(days - sum(counts))
    else:
        raise PanelError(f"split = {split!r} is not allowed: integers summing to {days} or fractions summing to 1")
    train_end, valid_end = counts[0], counts[0] + counts[1]
    if train_end <= lookback or counts[1] < 1 or counts[2] < 1:
        raise PanelError(f"split = {split!r}: training needs more than lookback={lookback} days; valid, test >= 1")
    periods = {
        "train": np.arange(lookback, train_end),
        "valid": np.arange(train_end, valid_end),
        "test": np.arange(valid_end, days),
    }
    return train_end, valid_end, periods


def resolve_panel_path(config: StockConfig) -> Path:
    """``panel_path`` as given, or under the raw-data folder (``raw_data_path`` / ``RECBOLE_LLM_RAW_DATA``)."""
    from recbole_llm.data.named_datasets import raw_data_root

    path = Path(str(config["panel_path"])).expanduser()
    if path.is_absolute() or path.exists():
        return path
    root = raw_data_root(config)
    if root is not None and (root / path).exists():
        return root / path
    where = (
        f" or under {root}" if root is not None else " (no raw-data folder: set raw_data_path or RECBOLE_LLM_RAW_DATA)"
    )
    raise PanelError(f"panel {path} not found in the working directory{where}")


def load_panel(config: StockConfig) -> Panel:
    path = resolve_panel_path(config)
    if config["panel_format"] == "feng":
        return load_feng_panel(path, str(config["start_date"]), int(config["drop_last_days"]))
    return load_csv_panel(path)


def build_stock_data(panel: Panel, config: StockConfig) -> StockData:
    """Split, fit the scaler on the training days, build the features and targets."""
    lookback = int(config["lookback"])
    train_end, _, periods = split_days(config["split"], len(panel.dates), lookback)
    names = list(config["features"] or panel.channels)
    scaler = TrainScaler.fit(panel, train_end, str(config["scaler"]))
    features = build_features(panel, names, scaler, int(config["ema_span"]))
    base = forward_fill(scaler.transform("close", panel.close)).astype(np.float32)
    returns = np.nan_to_num(panel.returns(), nan=0.0).astype(np.float32)
    return StockData(features, base, returns, panel.mask, lookback, periods, panel.tickers, panel.dates, names, scaler)


def add_signals(data: StockData, signals: SignalFile, context: str | None, sectors_file: str | None) -> StockData:
    """``data`` with the signal channels of ``context`` appended (values known on or before each day)."""
    extra = signal_channels(signals, data.tickers, data.dates, context, read_sectors(sectors_file))
    return data.with_channels(extra, [f"signal:{c}" for c in signals.channels])


def load_stock_data(config: StockConfig) -> tuple[StockData, SignalFile | None]:
    """The run's data, and its signal file when the config names one."""
    data = build_stock_data(load_panel(config), config)
    path = config["signals"] if "signals" in config else None
    return data, (load_signals(path) if path else None)
