"""Cross-sectional stock ranking: StockMixer (AAAI 2024), EDSMF's event-signal ensemble, a Rank-LSTM baseline.

Not a user-item recommender, so not RecBole's Dataset/DataLoader/Evaluator: a panel of
``[tickers, days, channels]`` is predicted one day (all stocks) at a time. The sub-package shares the
project's habits instead: yaml defaults only in ``properties/stock/``, the project's config checks,
RecBole's seeding, the comparison runner for seeds and models, one-line errors.

    python run_recbole_llm.py --task=stock --model=StockMixer --dataset=nasdaq --epochs=1
    python run_recbole_llm.py stock-signals --output=signals.json        # stand-in event signals
    python run_recbole_llm.py --task=stock --model=EDSMF --signals=signals.json

Modules: ``panel`` (Feng et al.'s per-ticker files, plain OHLCV CSV), ``features`` (causal channels,
training-period scalers), ``signals`` (the versioned signal file, the calendar stand-in), ``data``
(split by predicted day, one day's tensors), ``models`` (StockMixer, RankLSTM, EDSMF member),
``metrics`` (IC, rank IC, ICIR, Prec@N, Sharpe), ``trainer`` (early stopping, EDSMF ensemble),
``config`` and ``runner`` (the command line).
"""

from recbole_llm.stock.config import StockConfig
from recbole_llm.stock.metrics import evaluate
from recbole_llm.stock.panel import Panel, PanelError, load_csv_panel, load_feng_panel
from recbole_llm.stock.runner import run_stock

__all__ = ["Panel", "PanelError", "StockConfig", "evaluate", "load_csv_panel", "load_feng_panel", "run_stock"]
