"""Cross-sectional ranking metrics over a test period: arrays ``[stocks, days]`` of predicted and realised returns.

Only stocks with ``mask`` True on a day take part in that day's figures (StockMixer's evaluator
correlates ``prediction * mask`` with ``truth * mask``, so masked stocks enter as zeros; here they
are left out). Names and definitions:

- ``ic``: mean over days of the Pearson correlation between predicted and realised returns;
- ``rank_ic``: the same with Spearman's correlation (ranks, ties averaged);
- ``icir``: ``mean(daily IC) / std(daily IC)`` (population std): what StockMixer's code and paper
  table call "RIC";
- ``prec@N``: share of the N stocks predicted highest whose realised return is >= 0, averaged over days;
- ``sharpe@K``: mean / std (population) of the daily return of an equal-weight portfolio of the K
  stocks predicted highest, times ``sqrt(periods_per_year)``. StockMixer uses K = 5 and 15.87
  (sqrt 252) for daily data; EDSMF kept that factor on 1-minute returns, so pass the number of
  periods a year of *your* data has.

A day with fewer than two stocks, or with constant predictions or returns, has no correlation and is
left out of the means (``days_without_ic`` counts them). Top-N picks break ties by stock order.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / denominator if denominator > 0 else float("nan")


def daily_ic(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, rank: bool = False) -> np.ndarray:
    """Per-day Pearson (``rank=False``) or Spearman correlation over the stocks masked in."""
    values = []
    for day in range(pred.shape[1]):
        keep = mask[:, day].astype(bool)
        x, y = pred[keep, day].astype(np.float64), truth[keep, day].astype(np.float64)
        if rank:
            x, y = rankdata(x), rankdata(y)
        values.append(_pearson(x, y))
    return np.asarray(values, dtype=np.float64)


def top_n(pred_day: np.ndarray, mask_day: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` stocks with the highest prediction among those masked in (ties: lower index first)."""
    candidates = np.nonzero(mask_day.astype(bool))[0]
    order = np.argsort(-pred_day[candidates], kind="stable")
    return candidates[order[:n]]


def precision_at(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, n: int) -> float:
    """Mean over days of the share of the top-``n`` predicted stocks with a realised return >= 0."""
    shares = []
    for day in range(pred.shape[1]):
        picks = top_n(pred[:, day], mask[:, day], n)
        if len(picks):
            shares.append(float(np.mean(truth[picks, day] >= 0)))
    return float(np.mean(shares)) if shares else float("nan")


def portfolio_returns(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """Daily return of an equal-weight portfolio of the ``k`` stocks predicted highest."""
    out = []
    for day in range(pred.shape[1]):
        picks = top_n(pred[:, day], mask[:, day], k)
        out.append(float(np.mean(truth[picks, day])) if len(picks) else float("nan"))
    return np.asarray(out, dtype=np.float64)


def sharpe_ratio(returns: np.ndarray, periods_per_year: float) -> float:
    """``mean / std * sqrt(periods_per_year)`` of per-period returns (population std; NaN when flat)."""
    returns = returns[np.isfinite(returns)]
    if len(returns) < 2 or np.std(returns) == 0:
        return float("nan")
    return float(np.mean(returns) / np.std(returns) * math.sqrt(periods_per_year))


def evaluate(
    pred: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray,
    precision_n: int = 10,
    portfolio_k: int = 5,
    periods_per_year: float = 252.0,
) -> dict[str, float]:
    """Every metric of the module docstring, plus ``mse`` over the masked-in entries."""
    mask = mask.astype(bool)
    ic = daily_ic(pred, truth, mask)
    rank_ic = daily_ic(pred, truth, mask, rank=True)
    valid_ic = ic[np.isfinite(ic)]
    std = float(np.std(valid_ic)) if len(valid_ic) else float("nan")
    return {
        "ic": float(np.mean(valid_ic)) if len(valid_ic) else float("nan"),
        "rank_ic": float(np.nanmean(rank_ic)) if np.isfinite(rank_ic).any() else float("nan"),
        "icir": float(np.mean(valid_ic) / std) if len(valid_ic) and std > 0 else float("nan"),
        f"prec@{precision_n}": precision_at(pred, truth, mask, precision_n),
        f"sharpe@{portfolio_k}": sharpe_ratio(portfolio_returns(pred, truth, mask, portfolio_k), periods_per_year),
        "mse": float(np.mean((pred[mask] - truth[mask]) ** 2)) if mask.any() else float("nan"),
        "days_without_ic": float(len(ic) - len(valid_ic)),
    }
