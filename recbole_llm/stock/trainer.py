"""Training with early stopping on the validation period, as StockMixer's ``train.py`` does it.

One optimisation step is one trading day with all its stocks; an epoch visits the training days in
a shuffled order (seeded). After every ``eval_step`` epochs the validation period is predicted;
training stops when ``valid_metric`` has not improved for ``stopping_step`` evaluations (StockMixer
ran 100 epochs and reported the test figures of the epoch with the lowest validation loss, which is
``valid_metric: loss`` without the stop). The best weights are restored before the test period is
predicted once.

EDSMF (:func:`fit_edsmf`) trains one member per context, each with that context's signal channels,
then mixes their predicted returns ``w * first + (1 - w) * second`` with ``w`` chosen on the validation
period over ``ensemble_grid`` evenly spaced weights (the released code fixed 0.4 / 0.6).
"""

from __future__ import annotations

import copy
import logging
import resource
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from recbole_llm.stock.data import StockData, add_signals
from recbole_llm.stock.metrics import evaluate
from recbole_llm.stock.signals import SignalFile

if TYPE_CHECKING:
    from recbole_llm.stock.config import StockConfig

logger = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class StockTrainer:
    """Fits one stock model on one :class:`StockData`; ``fit`` returns the run's result dict."""

    def __init__(
        self, config, model: torch.nn.Module, data: StockData, callback: Callable[..., None] | None = None
    ) -> None:
        """``callback(epoch, valid_metrics, best_score, stopping)`` runs after every validation (Ray Tune reports)."""
        self.config, self.data, self.callback = config, data, callback
        self.device = resolve_device(str(config["device"]))
        self.model = model.to(self.device)
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=float(config["learning_rate"]), weight_decay=float(config["weight_decay"])
        )
        self.alpha = float(config["alpha"])
        self.valid_metric = str(config["valid_metric"])
        self.bigger = self.valid_metric != "loss"
        self.rng = np.random.default_rng(int(config["seed"]))

    def train_epoch(self) -> float:
        """One pass over the training days in a seeded random order; returns the mean ranking loss."""
        from recbole_llm.stock.models import ranking_loss

        self.model.train()
        total = 0.0
        days = self.data.periods["train"].copy()
        self.rng.shuffle(days)
        for d in days:
            x, base, truth, mask = self.data.day(int(d), self.device)
            self.optimizer.zero_grad()
            loss, *_ = ranking_loss(self.model(x), base, truth, mask, self.alpha)
            loss.backward()
            self.optimizer.step()
            total += loss.item()
        return total / max(1, len(days))

    @torch.no_grad()
    def predict(self, period: str, data: StockData | None = None) -> dict[str, Any]:
        """Predicted returns, realised returns and masks ``[N, days]`` of a period, and its mean loss."""
        from recbole_llm.stock.models import ranking_loss

        data = data or self.data
        self.model.eval()
        preds, truths, masks, losses = [], [], [], []
        for d in data.periods[period]:
            x, base, truth, mask = data.day(int(d), self.device)
            loss, _, _, ratio = ranking_loss(self.model(x), base, truth, mask, self.alpha)
            preds.append(ratio.cpu().numpy())
            truths.append(truth.cpu().numpy())
            masks.append(mask.cpu().numpy() > 0.5)
            losses.append(float(loss))
        return {
            "pred": np.stack(preds, 1),
            "truth": np.stack(truths, 1),
            "mask": np.stack(masks, 1),
            "loss": np.mean(losses),
        }

    def metrics(self, outputs: dict[str, Any]) -> dict[str, float]:
        return {
            **score(outputs["pred"], outputs["truth"], outputs["mask"], self.config),
            "loss": float(outputs["loss"]),
        }

    def _improved(self, value: float, best: float | None) -> bool:
        return best is None or (value > best if self.bigger else value < best)

    def fit(self, test: bool = True) -> dict[str, Any]:
        """Train to early stopping; the result holds validation (and, with ``test``, test) metrics and predictions."""
        epochs, patience, eval_step = (
            int(self.config["epochs"]),
            int(self.config["stopping_step"]),
            int(self.config["eval_step"]),
        )
        best, best_state, best_valid, best_epoch, waited = None, None, None, -1, 0
        epoch_times, history = [], []
        for epoch in range(epochs):
            started = time.perf_counter()
            train_loss = self.train_epoch()
            epoch_times.append(time.perf_counter() - started)
            if eval_step < 1 or (epoch + 1) % eval_step:
                continue
            valid = self.metrics(self.predict("valid"))
            value = valid[self.valid_metric]
            history.append((epoch, float(value)))
            logger.info(
                "epoch %d: train loss %.4g, valid %s = %.4g (%.1f s training)",
                *(epoch, train_loss, self.valid_metric, value, epoch_times[-1]),
            )
            if self._improved(value, best):
                best, best_valid, best_epoch, waited = value, valid, epoch, 0
                best_state = copy.deepcopy(self.model.state_dict())
            else:
                waited += 1
            if self.callback is not None:
                self.callback(epoch, valid, best, waited >= patience or epoch + eval_step >= epochs)
            if waited >= patience:
                break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        return self._result(best_valid, best_epoch, epoch_times, history, test)

    def _result(self, best_valid, best_epoch, epoch_times, history, test: bool) -> dict[str, Any]:
        valid_out = self.predict("valid")
        test_out = self.predict("test") if test else None
        return {
            "best_valid_result": best_valid or self.metrics(valid_out),
            "test_result": self.metrics(test_out) if test else {},
            "best_epoch": best_epoch,
            "epoch_times": epoch_times,
            "valid_history": history,
            "valid_score_bigger": self.bigger,
            "valid_outputs": valid_out,
            "test_outputs": test_out,
        }


def score(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, config: StockConfig) -> dict[str, float]:
    """The metrics of :mod:`recbole_llm.stock.metrics` with the run's N, K and periods per year."""
    return evaluate(
        pred,
        truth,
        mask,
        precision_n=int(config["precision_at"]),
        portfolio_k=int(config["portfolio_size"]),
        periods_per_year=float(config["periods_per_year"]),
    )


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def fit_model(config: StockConfig, data: StockData) -> dict[str, Any]:
    """Build the configured model for ``data``'s shape and train it."""
    from recbole_llm.stock.config import get_stock_model

    model = get_stock_model(config["model"])(config, len(data.tickers), data.lookback, data.features.shape[-1])
    return StockTrainer(config, model, data).fit()


def _member(config, data: StockData, signals: SignalFile, context: str) -> dict[str, Any]:
    """One EDSMF member: trained with its context's signals; predicted with ``eval_context``'s if set."""
    from recbole_llm.stock.config import get_stock_model

    own = add_signals(data, signals, context, config["sectors_file"])
    model = get_stock_model(config["model"])(config, len(data.tickers), data.lookback, own.features.shape[-1])
    trainer = StockTrainer(config, model, own)
    result = trainer.fit()
    if config["eval_context"] is not None:
        shown = add_signals(data, signals, str(config["eval_context"]), config["sectors_file"])
        result["valid_outputs"], result["test_outputs"] = (
            trainer.predict("valid", shown),
            trainer.predict("test", shown),
        )
    return result


def fit_edsmf(config: StockConfig, data: StockData, signals: SignalFile) -> dict[str, Any]:
    """Two members (one per context), mixed with the weight that scores best on validation."""
    contexts = list(config["contexts"] or signals.contexts)
    if len(contexts) != 2 or any(c not in signals.contexts for c in contexts):
        raise ValueError(f"EDSMF needs two contexts of {signals.origin} (it has {signals.contexts}); got {contexts}")
    members = [_member(config, data, signals, c) for c in contexts]
    weights = np.linspace(0.0, 1.0, int(config["ensemble_grid"]))
    metric = str(config["ensemble_metric"])

    def mixed(period: str, w: float) -> dict[str, float]:
        first, second = members[0][f"{period}_outputs"], members[1][f"{period}_outputs"]
        return score(w * first["pred"] + (1 - w) * second["pred"], first["truth"], first["mask"], config)

    valid_scores = [mixed("valid", w)[metric] for w in weights]
    w = float(weights[int(np.nanargmax(valid_scores))])
    return {
        "best_valid_result": mixed("valid", w),
        "test_result": mixed("test", w),
        "ensemble_weight": w,
        "contexts": contexts,
        "members": {c: {"valid": m["best_valid_result"], "test": m["test_result"]} for c, m in zip(contexts, members)},
        "best_epoch": max(m["best_epoch"] for m in members),
        "epoch_times": [t for m in members for t in m["epoch_times"]],
        "valid_history": members[0]["valid_history"],
        "valid_score_bigger": True,
        "signals": {"file": signals.origin, "sha256": signals.sha256, "name": signals.name},
    }
