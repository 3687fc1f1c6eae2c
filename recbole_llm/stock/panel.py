"""Daily stock panels: ``[tickers, days, channels]`` arrays with a mask of the days each ticker traded.

Two sources:

- Feng et al.'s per-ticker folder (``NASDAQ_<ticker>_1.csv``: day index, 5-, 10-, 20-, 30-day moving
  averages and close, each divided by the ticker's maximum close over 2013-2017; ``-1234`` marks a
  missing day), read straight from the published ``.tar.gz`` or from an extracted folder. The files
  carry no dates: days are numbered from ``start_date`` on the NYSE calendar (:func:`nyse_trading_days`).
  ``drop_last_days`` removes the files' last rows: the NASDAQ files' day 1245 has a close for only 552 of
  the 1,026 tickers, and Feng's and StockMixer's loaders drop it, which leaves the papers' 1,245 days.
- A plain CSV ``date,ticker,open,high,low,close,volume`` (your own data); a ticker absent on a date
  is a missing day.

A missing value is NaN in ``values`` and ``close``; ``mask[i, t]`` is True when ticker ``i`` has a close
on day ``t``. Nothing here scales or fills: see :mod:`recbole_llm.stock.features`.
"""

from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: Feng et al.'s missing-value marker.
FENG_MISSING = -1234.0
FENG_CHANNELS = ("ma5", "ma10", "ma20", "ma30", "close")
CSV_COLUMNS = ("date", "ticker", "open", "high", "low", "close", "volume")
_FENG_NAME = re.compile(r"(?:^|/)([A-Z]+)_(.+)_1\.csv$")


class PanelError(ValueError):
    """A panel file that cannot be read as documented (one line: the file, the row or field, the problem)."""


@dataclass
class Panel:
    """Raw daily data: ``values[i, t, c]`` for ticker ``i``, day ``t``, channel ``c`` (NaN = missing)."""

    values: np.ndarray  # float64 [N, T, C]
    close: np.ndarray  # float64 [N, T]: the price whose day-to-day change is the target
    mask: np.ndarray  # bool [N, T]: the ticker has a close that day
    tickers: list[str]
    dates: pd.DatetimeIndex
    channels: list[str]
    source: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.values.shape)  # type: ignore[return-value]

    def returns(self) -> np.ndarray:
        """``close[t] / close[t-1] - 1`` (NaN when either day is missing, and on day 0)."""
        ret = np.full(self.close.shape, np.nan)
        ret[:, 1:] = self.close[:, 1:] / self.close[:, :-1] - 1.0
        return ret

    def channel(self, name: str) -> np.ndarray:
        if name not in self.channels:
            raise PanelError(f"panel {self.source}: no channel '{name}' (channels: {', '.join(self.channels)})")
        return self.values[:, :, self.channels.index(name)]


def nyse_trading_days(start: str, count: int) -> pd.DatetimeIndex:
    """``count`` NYSE trading days from ``start``: weekdays less the exchange's regular holidays.

    Rule-based (New Year, MLK, Presidents' Day, Good Friday, Memorial Day, Independence Day, Labor Day,
    Thanksgiving, Christmas); exact for 2013-2017, which had no unscheduled closures. Later years
    need Juneteenth (2022-) and the one-off closures added.
    """
    from pandas.tseries.holiday import (
        AbstractHolidayCalendar,
        GoodFriday,
        Holiday,
        USLaborDay,
        USMartinLutherKingJr,
        USMemorialDay,
        USPresidentsDay,
        USThanksgivingDay,
        nearest_workday,
        sunday_to_monday,
    )
    from pandas.tseries.offsets import CustomBusinessDay

    class NYSECalendar(AbstractHolidayCalendar):
        rules = [
            Holiday("NewYearsDay", month=1, day=1, observance=sunday_to_monday),
            USMartinLutherKingJr,
            USPresidentsDay,
            GoodFriday,
            USMemorialDay,
            Holiday("IndependenceDay", month=7, day=4, observance=nearest_workday),
            USLaborDay,
            USThanksgivingDay,
            Holiday("Christmas", month=12, day=25, observance=nearest_workday),
        ]

    return pd.date_range(start, periods=count, freq=CustomBusinessDay(calendar=NYSECalendar()))


def _feng_members(path: Path) -> list[tuple[str, str, bytes]]:
    """(market, ticker, file bytes) of every ``<MARKET>_<ticker>_1.csv`` in a tar.gz or a folder."""
    found: list[tuple[str, str, bytes]] = []
    if path.is_file():
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                match = _FENG_NAME.search(member.name)
                if member.isfile() and match:
                    found.append((match.group(1), match.group(2), archive.extractfile(member).read()))
    elif path.is_dir():
        for file in path.rglob("*_1.csv"):
            match = _FENG_NAME.search(file.as_posix())
            if match:
                found.append((match.group(1), match.group(2), file.read_bytes()))
    else:
        raise PanelError(f"panel path {path} not found (a .tar.gz or a folder of <MARKET>_<ticker>_1.csv files)")
    if not found:
        raise PanelError(f"panel {path}: no <MARKET>_<ticker>_1.csv file inside")
    return sorted(found, key=lambda item: item[1])


def _read_feng_file(name: str, data: bytes) -> np.ndarray:
    try:
        table = np.loadtxt(io.BytesIO(data), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise PanelError(f"{name}: not a numeric CSV ({exc})") from None
    if table.shape[1] != 1 + len(FENG_CHANNELS):
        raise PanelError(f"{name}: {table.shape[1]} columns, expected 6 (day index, ma5, ma10, ma20, ma30, close)")
    if not np.array_equal(table[:, 0], np.arange(len(table))):
        raise PanelError(f"{name}: the day index column is not 0, 1, 2, ...")
    return table[:, 1:]


def load_feng_panel(path: str | Path, start_date: str = "2013-01-02", drop_last_days: int = 0) -> Panel:
    """Feng et al.'s per-ticker CSVs (tar.gz or folder) as a :class:`Panel`; -1234 becomes NaN."""
    path = Path(path)
    members = _feng_members(path)
    markets = {market for market, _, _ in members}
    if len(markets) != 1:
        raise PanelError(f"panel {path}: files of several markets ({', '.join(sorted(markets))}); keep one")
    tables = [_read_feng_file(f"{path}:{m}_{t}_1.csv", data) for m, t, data in members]
    lengths = {len(table) for table in tables}
    if len(lengths) != 1:
        raise PanelError(f"panel {path}: tickers have different numbers of days ({sorted(lengths)})")
    values = np.stack(tables)
    values[np.isclose(values, FENG_MISSING)] = np.nan
    last = values.shape[1] - drop_last_days
    if drop_last_days < 0 or last < 1:
        raise PanelError(
            f"drop_last_days = {drop_last_days} is not allowed: the panel {path} has {values.shape[1]} days"
        )
    values = values[:, :last]
    close = values[:, :, -1].copy()
    return Panel(
        values=values,
        close=close,
        mask=~np.isnan(close),
        tickers=[ticker for _, ticker, _ in members],
        dates=nyse_trading_days(start_date, last),
        channels=list(FENG_CHANNELS),
        source=str(path),
    )


def _check_csv_frame(frame: pd.DataFrame, path: Path) -> None:
    missing = [c for c in CSV_COLUMNS if c not in frame.columns]
    if missing:
        raise PanelError(f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(CSV_COLUMNS)}")
    duplicated = frame.duplicated(["date", "ticker"], keep=False)
    if duplicated.any():
        row = int(np.nonzero(duplicated.to_numpy())[0][1])
        raise PanelError(f"{path}:{row + 2}: ticker {frame['ticker'].iloc[row]} repeats date {frame['date'].iloc[row]}")
    for column in CSV_COLUMNS[2:]:
        bad = pd.to_numeric(frame[column], errors="coerce").isna() & frame[column].notna()
        if bad.any():
            row = int(np.nonzero(bad.to_numpy())[0][0])
            raise PanelError(f"{path}:{row + 2}: field '{column}' = {frame[column].iloc[row]!r} is not a number")


def load_csv_panel(path: str | Path) -> Panel:
    """A ``date,ticker,open,high,low,close,volume`` CSV as a :class:`Panel` over the union of its dates."""
    path = Path(path)
    if not path.is_file():
        raise PanelError(f"panel file {path} not found")
    frame = pd.read_csv(path, dtype={"ticker": str})
    _check_csv_frame(frame, path)
    try:
        frame["date"] = pd.to_datetime(frame["date"])
    except (ValueError, TypeError) as exc:
        raise PanelError(f"{path}: field 'date' is not a date everywhere ({exc})") from None
    channels = list(CSV_COLUMNS[2:])
    frame[channels] = frame[channels].apply(pd.to_numeric)
    frame.loc[frame["close"] <= 0, "close"] = np.nan  # a non-positive close has no return
    dates = pd.DatetimeIndex(sorted(frame["date"].unique()))
    tickers = sorted(frame["ticker"].unique())
    cube = frame.set_index(["ticker", "date"])[channels].reindex(pd.MultiIndex.from_product([tickers, dates]))
    values = cube.to_numpy(dtype=np.float64).reshape(len(tickers), len(dates), len(channels))
    close = values[:, :, channels.index("close")].copy()
    return Panel(values, close, ~np.isnan(close), tickers, dates, channels, source=str(path))
