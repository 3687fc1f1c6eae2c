"""Event signals for EDSMF: a versioned JSON file of dated values, turned into extra input channels.

Format (``version`` 1)::

    {"format": "recbole-llm-stock-signals", "version": 1, "name": "...", "description": "...",
     "contexts": ["candidate_1", "candidate_2"], "channels": ["impact", ...],
     "signals": [{"date": "2016-11-07", "channel": "impact", "value": 1.0,
                  "end": "2016-11-10", "context": "candidate_1", "tickers": ["AAPL"], "sectors": null}]}

``date`` is the day the signal became known; it applies to trading days ``date <= t <= end`` (``end``
defaults to ``date``; a date that is not a trading day moves to the next one). Features of day ``t``
feed the prediction of day ``t + 1``, so a signal reaches a prediction only when it was known before
the predicted day. ``context`` (optional) names the scenario a signal belongs to (EDSMF trains one
model per context); a signal without one applies to every context. ``tickers`` / ``sectors`` restrict
it (null: every ticker; sectors need ``sectors_file``, a ``ticker,sector`` CSV). Values of signals
that meet on one ticker, day and channel add up.

EDSMF's signals come from an LLM pipeline (news, policy and market analysts -> a sign per candidate
and economic sector) that needs the 2024 election news and an API key; neither is available here.
:func:`calendar_standin` writes a stand-in file of public calendar facts (US election windows with a
+1 / -1 sign per scenario, pre-holiday days, options-expiry weeks, turns of the month) so the
ensemble runs end to end; replace it with LLM-derived signals in the same format.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recbole_llm.stock.panel import PanelError, nyse_trading_days

SIGNAL_FORMAT = "recbole-llm-stock-signals"
SIGNAL_VERSION = 1


class SignalFile:
    """A checked signal file: its contexts, channels, signals and content hash."""

    def __init__(self, data: dict[str, Any], origin: str) -> None:
        self.origin = origin
        self.name = str(data.get("name", Path(origin).stem))
        self.contexts: list[str] = [str(c) for c in data.get("contexts") or []]
        self.channels: list[str] = [str(c) for c in data.get("channels") or []]
        self.signals: list[dict[str, Any]] = list(data.get("signals") or [])
        self.sha256 = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
        for index, signal in enumerate(self.signals):
            self._check(index, signal)

    def _check(self, index: int, signal: dict[str, Any]) -> None:
        where = f"{self.origin}: signals[{index}]"
        for key in ("date", "channel", "value"):
            if key not in signal:
                raise PanelError(f"{where}: missing '{key}'")
        if signal["channel"] not in self.channels:
            raise PanelError(f"{where}: channel '{signal['channel']}' is not in the file's channels {self.channels}")
        if signal.get("context") is not None and signal["context"] not in self.contexts:
            raise PanelError(f"{where}: context '{signal['context']}' is not in the file's contexts {self.contexts}")
        try:
            float(signal["value"])
            start, end = pd.Timestamp(signal["date"]), pd.Timestamp(signal.get("end") or signal["date"])
        except (TypeError, ValueError) as exc:
            raise PanelError(f"{where}: {exc}") from None
        if end < start:
            raise PanelError(f"{where}: end {signal['end']} is before date {signal['date']}")


def load_signals(path: str | Path) -> SignalFile:
    """Read and check a signal file; refuses another format or version in one line."""
    path = Path(path)
    if not path.is_file():
        raise PanelError(f"signal file {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PanelError(f"signal file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != SIGNAL_FORMAT:
        raise PanelError(f"signal file {path}: 'format' must be {SIGNAL_FORMAT!r}")
    if data.get("version") != SIGNAL_VERSION:
        raise PanelError(f"signal file {path}: version {data.get('version')!r} unsupported (this code reads 1)")
    return SignalFile(data, str(path))


def read_sectors(path: str | Path | None) -> dict[str, str]:
    """``ticker -> sector`` from a ``ticker,sector`` CSV (empty when no file is given)."""
    if not path:
        return {}
    frame = pd.read_csv(path, dtype=str)
    if not {"ticker", "sector"} <= set(frame.columns):
        raise PanelError(f"sectors file {path}: needs the columns ticker,sector")
    return dict(zip(frame["ticker"], frame["sector"]))


def _rows(signal: dict[str, Any], tickers: Sequence[str], sectors: dict[str, str]) -> np.ndarray:
    """Indices of the tickers a signal applies to."""
    if signal.get("sectors") is not None:
        if not sectors:
            raise PanelError(f"signal on sectors {signal['sectors']} needs sectors_file (a ticker,sector CSV)")
        wanted = set(signal["sectors"])
        return np.array([i for i, t in enumerate(tickers) if sectors.get(t) in wanted], dtype=int)
    if signal.get("tickers") is not None:
        wanted = set(signal["tickers"])
        return np.array([i for i, t in enumerate(tickers) if t in wanted], dtype=int)
    return np.arange(len(tickers))


def signal_channels(
    signals: SignalFile,
    tickers: Sequence[str],
    dates: pd.DatetimeIndex,
    context: str | None,
    sectors: dict[str, str] | None = None,
) -> np.ndarray:
    """``[N, T, S]`` channel values under ``context`` (signals of other contexts are left out)."""
    out = np.zeros((len(tickers), len(dates), len(signals.channels)), dtype=np.float32)
    for signal in signals.signals:
        if signal.get("context") is not None and signal["context"] != context:
            continue
        first = int(dates.searchsorted(pd.Timestamp(signal["date"]), side="left"))
        last = int(dates.searchsorted(pd.Timestamp(signal.get("end") or signal["date"]), side="right")) - 1
        if first >= len(dates):
            continue
        rows = _rows(signal, tickers, sectors or {})
        out[np.ix_(rows, np.arange(first, max(first, last) + 1), [signals.channels.index(signal["channel"])])] += float(
            signal["value"]
        )
    return out


def _election_days(years: range) -> list[pd.Timestamp]:
    """US federal election days: the Tuesday after the first Monday of November, even years."""
    days = []
    for year in years:
        if year % 2 == 0:
            first = pd.Timestamp(year, 11, 1)
            days.append(first + pd.Timedelta(days=(0 - first.weekday()) % 7 + 1))  # first Monday, then Tuesday
    return days


def _third_friday(day: pd.Timestamp) -> pd.Timestamp:
    """The monthly options expiry day of ``day``'s month."""
    first = pd.Timestamp(day.year, day.month, 1)
    return first + pd.Timedelta(days=(4 - first.weekday()) % 7 + 14)


def _calendar_rows(days: pd.DatetimeIndex, window: int, contexts: Sequence[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    frame = pd.DataFrame({"date": days[:-1], "next": days[1:]})
    for day, nxt in zip(frame["date"], frame["next"]):
        if (nxt - day).days > (3 if day.weekday() == 4 else 1):  # the next weekday is a market holiday
            rows.append({"date": day, "channel": "pre_holiday", "value": 1.0})
    month = days.to_period("M")
    position = pd.Series(np.arange(len(days))).groupby(month).rank(method="first").to_numpy()
    size = pd.Series(month).map(pd.Series(month).value_counts()).to_numpy()
    for i, day in enumerate(days[:-1]):
        if position[i] <= 3 or position[i] == size[i]:
            rows.append({"date": day, "channel": "month_turn", "value": 1.0})
        if day.isocalendar()[:2] == _third_friday(day).isocalendar()[:2]:
            rows.append({"date": day, "channel": "opex_week", "value": 1.0})
    for election in _election_days(range(days[0].year, days[-1].year + 1)):
        centre = int(days.searchsorted(election))
        for i in range(max(0, centre - window), min(len(days) - 1, centre + window + 1)):
            for sign, context in zip((1.0, -1.0), contexts):
                rows.append({"date": days[i], "channel": "election_window", "value": sign, "context": context})
    return rows


def calendar_standin(
    start: str, end: str, window: int = 5, contexts: Sequence[str] = ("scenario_a", "scenario_b")
) -> dict[str, Any]:
    """A stand-in signal file (a dict) of public calendar facts between ``start`` and ``end``.

    Every value is known on its date (exchange calendars and election days are published in advance).
    ``election_window`` is +1 under the first context and -1 under the second on the trading days within
    ``window`` days of a US federal election, the shape of EDSMF's per-candidate impact signs.
    """
    count = len(pd.bdate_range(start, end)) + 30  # weekdays bound the trading days; 30 more for the look-ahead
    days = nyse_trading_days(start, count)
    days = days[days <= pd.Timestamp(end) + pd.Timedelta(days=10)]
    rows = [r for r in _calendar_rows(days, window, contexts) if r["date"] <= pd.Timestamp(end)]
    signals = [{**r, "date": r["date"].strftime("%Y-%m-%d")} for r in rows]
    return {
        "format": SIGNAL_FORMAT,
        "version": SIGNAL_VERSION,
        "name": "calendar-standin",
        "description": (
            "STAND-IN for EDSMF's LLM-derived political signals (not available offline): public calendar "
            f"facts {start}..{end}; election_window carries a +1/-1 sign per scenario like a candidate impact."
        ),
        "contexts": list(contexts),
        "channels": ["election_window", "pre_holiday", "month_turn", "opex_week"],
        "signals": signals,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python run_recbole_llm.py stock-signals --start=.. --end=.. --output=signals.json``."""
    parser = argparse.ArgumentParser(prog="run_recbole_llm.py stock-signals", description=calendar_standin.__doc__)
    parser.add_argument("--start", default="2013-01-02", help="first date (default: NASDAQ panel's)")
    parser.add_argument("--end", default="2017-12-08", help="last date (default: NASDAQ panel's)")
    parser.add_argument("--window", type=int, default=5, help="trading days each side of an election day")
    parser.add_argument("--output", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    data = calendar_standin(args.start, args.end, args.window)
    Path(args.output).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.output}: {len(data['signals'])} signals, channels {', '.join(data['channels'])} (a stand-in)")
    return 0
