"""Model inputs from a panel: causal derived channels, scalers fitted on the training days, causal filling.

Every derived channel of day ``t`` uses days ``<= t`` only (the released EDSMF code had an EMA equal to
the close and a "daily variation" using the predicted day's close):

- ``ema``: exponential moving average of the close, per ticker, over its traded days (span ``ema_span``);
- ``variation``: ``close[t] / close[t-1] - 1`` (from the previous close, never the predicted day's);
- ``ma<k>``: mean close of the last ``k`` days (Feng's files already hold ``ma5`` .. ``ma30``).

Scaling (``scaler: train_max``): price channels are divided by the ticker's largest close over the
training days, volume by its largest training volume; ratios are left alone. Feng's files divide by
the maximum over all five years, so a feature level tells how far a price is from its *future* peak;
dividing again by the training maximum turns that into ``price / training peak`` for every day, which
removes the look-ahead. Nothing after the training days enters a scaler (test_stock_leakage checks
it). A ticker without a training close keeps scale 1. Missing values are then carried forward from
the ticker's last traded day (causal) and set to 0 before its first one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recbole_llm.stock.panel import Panel, PanelError

PRICE_CHANNELS = frozenset({"open", "high", "low", "close", "ema"})
VOLUME_CHANNELS = frozenset({"volume"})
_MA = re.compile(r"^ma(\d+)$")


def channel_kind(name: str) -> str:
    """``price`` (scaled by the training peak close), ``volume`` or ``ratio`` (not scaled)."""
    if name in PRICE_CHANNELS or _MA.match(name):
        return "price"
    return "volume" if name in VOLUME_CHANNELS else "ratio"


def _ema(close: np.ndarray, span: int) -> np.ndarray:
    """Per ticker EMA over traded days (``adjust=False``); NaN on missing days and before the first."""
    frame = pd.DataFrame(close.T)
    ema = frame.ewm(span=span, adjust=False, ignore_na=True).mean().to_numpy().T
    return np.where(np.isnan(close), np.nan, ema)


def derived_channel(panel: Panel, name: str, ema_span: int) -> np.ndarray:
    """One input channel ``[N, T]``: a panel channel, or ``ema`` / ``variation`` / ``ma<k>`` computed causally."""
    if name in panel.channels:
        return panel.channel(name)
    if name == "ema":
        return _ema(panel.close, ema_span)
    if name == "variation":
        return panel.returns()
    match = _MA.match(name)
    if match:
        window = int(match.group(1))
        rolled = pd.DataFrame(panel.close.T).rolling(window, min_periods=1).mean().to_numpy().T
        return np.where(np.isnan(panel.close), np.nan, rolled)
    raise PanelError(
        f"feature '{name}': not a channel of {panel.source} ({', '.join(panel.channels)}) nor ema, variation, ma<k>"
    )


@dataclass
class TrainScaler:
    """Per-ticker divisors fitted on the training days ``[0, train_days)`` only."""

    price: np.ndarray  # [N]
    volume: np.ndarray  # [N]
    train_days: int
    kind: str = "train_max"

    @classmethod
    def fit(cls, panel: Panel, train_days: int, kind: str = "train_max") -> TrainScaler:
        """Per-ticker scale from the training days only (``train_max``) or none: no later price leaks in."""
        n = len(panel.tickers)
        if kind == "none":
            return cls(np.ones(n), np.ones(n), train_days, kind)
        if kind != "train_max":
            raise PanelError(f"scaler = {kind!r} is not allowed: expected train_max or none")
        return cls(
            _peak(panel.close[:, :train_days]),
            _peak(panel.channel("volume")[:, :train_days]) if "volume" in panel.channels else np.ones(n),
            train_days,
            kind,
        )

    def transform(self, name: str, values: np.ndarray) -> np.ndarray:
        kind = channel_kind(name)
        if kind == "price":
            return values / self.price[:, None]
        if kind == "volume":
            return values / self.volume[:, None]
        return values


def _peak(values: np.ndarray) -> np.ndarray:
    """Largest positive value per ticker; 1 where a ticker has none (so it stays unscaled)."""
    with np.errstate(all="ignore"):
        peak = np.nanmax(np.where(values > 0, values, np.nan), axis=1) if values.shape[1] else np.full(len(values), 1)
    return np.where(np.isfinite(peak) & (peak > 0), peak, 1.0)


def forward_fill(values: np.ndarray) -> np.ndarray:
    """Carry each ticker's last value forward along time (axis 1); 0 before its first value."""
    filled = pd.DataFrame(values.T).ffill().to_numpy().T
    return np.nan_to_num(filled, nan=0.0)


def build_features(panel: Panel, names: list[str], scaler: TrainScaler, ema_span: int) -> np.ndarray:
    """``[N, T, C]`` float32: the named channels, scaled by ``scaler``, filled causally."""
    channels = [forward_fill(scaler.transform(name, derived_channel(panel, name, ema_span))) for name in names]
    return np.stack(channels, axis=-1).astype(np.float32)
