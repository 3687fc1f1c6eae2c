"""recbole_llm.stock: panel loading, leakage, metrics by hand, StockMixer's pieces, the --task=stock command."""

from __future__ import annotations

import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recbole_llm.cli import main
from recbole_llm.stock.config import StockConfig
from recbole_llm.stock.data import build_stock_data, split_days
from recbole_llm.stock.features import TrainScaler, derived_channel
from recbole_llm.stock.metrics import daily_ic, evaluate, precision_at, sharpe_ratio, top_n
from recbole_llm.stock.models import StockMixer, TriU, ranking_loss
from recbole_llm.stock.panel import Panel, PanelError, load_csv_panel, load_feng_panel, nyse_trading_days
from recbole_llm.stock.signals import calendar_standin, load_signals, signal_channels

FIXTURE = Path(__file__).resolve().parent / "data" / "raw" / "stocks-nasdaq" / "trsr_nasdaq_2013-2017.tar.gz"
TINY = ["--split=[30,15,15]", "--device=cpu"]  # the fixture's 60 days: 30 train, 15 valid, 15 test


def _fixture_panel() -> Panel:
    """The fixture as --dataset=nasdaq reads it: 61 rows, the last dropped (drop_last_days: 1)."""
    return load_feng_panel(FIXTURE, drop_last_days=1)


def _config(model: str = "StockMixer", **values) -> StockConfig:
    return StockConfig(model, "nasdaq", config_dict={"split": [30, 15, 15], "device": "cpu", **values})


def _ohlcv_csv(path: Path, tickers: int = 5, days: int = 50, seed: int = 0) -> Path:
    """A random-walk OHLCV panel with one ticker absent on a few days."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=days)
    rows = []
    for i in range(tickers):
        close = 20 * np.exp(np.cumsum(rng.normal(0, 0.02, days)))
        for t, day in enumerate(dates):
            if i == 1 and t in (10, 11, 40):
                continue
            c = close[t]
            rows.append((day.date(), f"T{i}", c * 0.99, c * 1.02, c * 0.97, c, rng.integers(1000, 5000)))
    pd.DataFrame(rows, columns=["date", "ticker", "open", "high", "low", "close", "volume"]).to_csv(path, index=False)
    return path


def _mutated_after(panel: Panel, t: int, seed: int = 1) -> Panel:
    """A copy whose every value after day ``t`` is replaced (noise, scaled prices, new gaps)."""
    rng = np.random.default_rng(seed)
    values, close, mask = panel.values.copy(), panel.close.copy(), panel.mask.copy()
    values[:, t + 1 :] = values[:, t + 1 :] * rng.uniform(0.2, 5.0, values[:, t + 1 :].shape)
    close[:, t + 1 :] = values[:, t + 1 :, panel.channels.index("close")]
    gaps = rng.random(close[:, t + 1 :].shape) < 0.1
    close[:, t + 1 :][gaps] = np.nan
    values[:, t + 1 :, panel.channels.index("close")] = close[:, t + 1 :]
    mask[:, t + 1 :] = ~np.isnan(close[:, t + 1 :])
    return Panel(values, close, mask, panel.tickers, panel.dates, panel.channels, panel.source)


# ----------------------------------------------------------------------------- panels
def test_feng_panel_from_tar_and_from_folder_agree(tmp_path):
    panel = _fixture_panel()
    assert panel.shape == (8, 60, 5) and panel.channels == ["ma5", "ma10", "ma20", "ma30", "close"]
    assert panel.tickers[:2] == ["AAPL", "ABMD"]
    assert not panel.mask.all() and np.isnan(panel.close[~panel.mask]).all()
    assert (panel.values != -1234).all()
    assert panel.dates[0] == pd.Timestamp("2013-01-02") and pd.Timestamp("2013-01-21") not in panel.dates  # MLK day
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(tmp_path, filter="data")
    folder = load_feng_panel(tmp_path / "data" / "2013-01-01", drop_last_days=1)
    np.testing.assert_array_equal(folder.values, panel.values)
    assert folder.tickers == panel.tickers


def test_feng_panel_drops_the_last_days_asked(tmp_path):
    for ticker in ("AAA", "BBB"):
        rows = [f"{d}.0,0.5,0.5,0.5,0.5,{0.5 + d / 100}" for d in range(5)] + ["5.0" + ",-1234.0" * 5]
        (tmp_path / f"NASDAQ_{ticker}_1.csv").write_text("\n".join(rows) + "\n")
    assert load_feng_panel(tmp_path).shape == (2, 6, 5)
    assert load_feng_panel(tmp_path, drop_last_days=1).shape == (2, 5, 5)
    with pytest.raises(PanelError, match="drop_last_days = 6 is not allowed"):
        load_feng_panel(tmp_path, drop_last_days=6)


def test_nyse_calendar_gives_the_papers_split_dates():
    days = nyse_trading_days("2013-01-02", 1245)
    assert (days[755], days[756], days[1008], days[-1]) == tuple(
        pd.Timestamp(d) for d in ("2015-12-31", "2016-01-04", "2017-01-03", "2017-12-08")
    )


def test_csv_panel_marks_absent_days_missing(tmp_path):
    panel = load_csv_panel(_ohlcv_csv(tmp_path / "p.csv"))
    assert panel.shape == (5, 50, 5) and panel.channels == ["open", "high", "low", "close", "volume"]
    assert list(np.nonzero(~panel.mask[1])[0]) == [10, 11, 40] and panel.mask[[0, 2, 3, 4]].all()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda f: f.drop(columns="volume"), "missing column(s) volume"),
        (lambda f: pd.concat([f, f.iloc[[3]]]), "repeats date"),
        (lambda f: f.assign(close=f["close"].astype(object).where(f.index != 4, "abc")), ":6: field 'close'"),
    ],
)
def test_csv_panel_errors_name_the_problem(tmp_path, edit, message):
    path = _ohlcv_csv(tmp_path / "p.csv")
    edit(pd.read_csv(path)).to_csv(path, index=False)
    with pytest.raises(PanelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_csv_panel(path)


def test_split_days_counts_fractions_and_errors():
    _, _, periods = split_days([756, 252, 237], 1245, 16)
    assert [len(periods[k]) for k in ("train", "valid", "test")] == [740, 252, 237]
    assert periods["valid"][0] == 756 and periods["test"][0] == 1008
    assert split_days([0.5, 0.25, 0.25], 100, 16)[:2] == (50, 75)
    with pytest.raises(PanelError, match="covers 1245 days but the panel has 60"):
        split_days([756, 252, 237], 60, 16)


# ----------------------------------------------------------------------------- leakage
@pytest.mark.parametrize("source", ["feng", "csv"])
def test_features_of_day_t_never_change_when_later_data_changes(tmp_path, source):
    """Every derived channel is causal for every day; scaled features too, from the training period's end on."""
    if source == "feng":
        panel, config = _fixture_panel(), _config()
    else:
        panel = load_csv_panel(_ohlcv_csv(tmp_path / "p.csv", days=60))
        config = _config(
            panel_format="csv", features=["open", "high", "low", "volume", "variation", "ema", "ma5", "close"]
        )
    names = list(config["features"])
    train_end = split_days(config["split"], len(panel.dates), 16)[0]
    data = build_stock_data(panel, config)
    for t in range(len(panel.dates) - 1):
        later = _mutated_after(panel, t)
        for name in names:  # raw channels: causal for every day, training days included
            np.testing.assert_array_equal(
                derived_channel(later, name, 10)[:, : t + 1], derived_channel(panel, name, 10)[:, : t + 1]
            )
        if t >= train_end - 1:  # the scaler is fixed once training ends: model inputs of days <= t
            changed = build_stock_data(later, config)
            np.testing.assert_array_equal(changed.features[:, : t + 1], data.features[:, : t + 1])
            x_new, base_new, *_ = changed.day(t + 1)
            x_old, base_old, *_ = data.day(t + 1)
            assert torch.equal(x_new, x_old) and torch.equal(base_new, base_old)


def test_scaler_never_sees_validation_or_test_days():
    panel, config = _fixture_panel(), _config()
    train_end = split_days(config["split"], len(panel.dates), 16)[0]
    later = _mutated_after(panel, train_end - 1)
    fitted, refitted = TrainScaler.fit(panel, train_end), TrainScaler.fit(later, train_end)
    np.testing.assert_array_equal(fitted.price, refitted.price)
    np.testing.assert_array_equal(fitted.price, np.nanmax(panel.close[:, :train_end], axis=1))
    np.testing.assert_array_equal(
        build_stock_data(later, config).features[:, :train_end], build_stock_data(panel, config).features[:, :train_end]
    )
    # the released code's scaler on all days would see the change
    assert not np.array_equal(np.nanmax(later.close, axis=1), np.nanmax(panel.close, axis=1))


def test_signals_reach_a_prediction_only_when_known_before_the_predicted_day(tmp_path):
    panel, config = _fixture_panel(), _config()
    data = build_stock_data(panel, config)
    day = 40
    signal = {"format": "recbole-llm-stock-signals", "version": 1, "contexts": ["a", "b"], "channels": ["event"]}
    signal["signals"] = [{"date": str(panel.dates[day].date()), "channel": "event", "value": 2.0, "context": "a"}]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(signal))
    signals = load_signals(path)
    channels = signal_channels(signals, data.tickers, data.dates, "a")
    assert channels[:, day, 0].tolist() == [2.0] * 8 and channels.sum() == 16.0  # that day only
    assert signal_channels(signals, data.tickers, data.dates, "b").sum() == 0.0
    with_signal = data.with_channels(channels, ["signal:event"])
    assert with_signal.day(day)[0][:, :, -1].sum() == 0  # predicting day 40: inputs end on day 39
    assert with_signal.day(day + 1)[0][:, -1, -1].tolist() == [2.0] * 8  # predicting day 41 may use it


def test_triu_time_mixing_is_causal():
    torch.manual_seed(0)
    layer, x = TriU(16), torch.randn(3, 5, 16)
    changed = x.clone()
    changed[..., 9:] = torch.randn(3, 5, 7)
    assert torch.allclose(layer(x)[..., :9], layer(changed)[..., :9])
    assert not torch.allclose(layer(x)[..., 9:], layer(changed)[..., 9:])


# ----------------------------------------------------------------------------- metrics, by hand
def test_ic_rank_ic_and_icir_by_hand():
    pred = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [9.0, -9.0]])
    truth = np.array([[1.0, 1.0], [3.0, 2.0], [2.0, 10.0], [5.0, 5.0]])
    mask = np.array([[1, 1], [1, 1], [1, 1], [0, 0]], dtype=bool)  # stock 3 is masked out both days
    # day 0: x = [1, 2, 3], y = [1, 3, 2] -> deviations [-1, 0, 1] . [-1, 1, 0] = 1, norms sqrt 2 each -> 0.5
    # day 1: y = [1, 2, 10], mean 13/3 -> deviations (-10/3, -7/3, 17/3): dot 9, norm^2 146/3
    ic_day1 = 9 / math.sqrt(2 * 146 / 3)
    np.testing.assert_allclose(daily_ic(pred, truth, mask), [0.5, ic_day1])
    np.testing.assert_allclose(daily_ic(pred, truth, mask, rank=True), [0.5, 1.0])
    result = evaluate(pred, truth, mask, precision_n=2, portfolio_k=1, periods_per_year=4)
    assert result["ic"] == pytest.approx((0.5 + ic_day1) / 2)
    assert result["rank_ic"] == pytest.approx(0.75)
    assert result["icir"] == pytest.approx(((0.5 + ic_day1) / 2) / (abs(ic_day1 - 0.5) / 2))  # StockMixer's "RIC"


def test_precision_at_n_and_top_n_by_hand():
    pred = np.array([[0.3], [0.1], [0.2], [0.4], [0.9]])
    truth = np.array([[0.01], [-0.02], [-0.01], [0.0], [-0.5]])
    mask = np.array([[1], [1], [1], [1], [0]], dtype=bool)  # the top prediction is masked out
    assert top_n(pred[:, 0], mask[:, 0], 2).tolist() == [3, 0]
    assert precision_at(pred, truth, mask, 2) == 1.0  # 0.0 and 0.01 are >= 0
    assert precision_at(pred, truth, mask, 3) == pytest.approx(2 / 3)
    assert top_n(np.array([1.0, 1.0, 1.0]), np.ones(3, bool), 2).tolist() == [0, 1]  # ties: stock order


def test_sharpe_uses_the_given_periods_per_year():
    returns = np.array([0.01, 0.03])  # mean 0.02, population std 0.01
    assert sharpe_ratio(returns, 252) == pytest.approx(2 * math.sqrt(252))
    assert sharpe_ratio(returns, 1) == pytest.approx(2.0)
    pred = np.array([[1.0, 0.0], [0.0, 1.0]])
    truth = np.array([[0.01, 0.5], [0.7, 0.03]])
    result = evaluate(pred, truth, np.ones((2, 2), bool), precision_n=1, portfolio_k=1, periods_per_year=252)
    assert result["sharpe@1"] == pytest.approx(2 * math.sqrt(252)) and result["prec@1"] == 1.0


def test_ranking_loss_by_hand():
    base, mask = torch.ones(2), torch.ones(2)
    prediction = torch.tensor([1.1, 0.9])  # returns +0.1, -0.1
    loss, mse, hinge, _ = ranking_loss(prediction, base, torch.tensor([0.1, -0.1]), mask, alpha=0.1)
    assert float(mse) == pytest.approx(0.0, abs=1e-12) and float(hinge) == 0.0  # same order: no hinge
    loss, mse, hinge, _ = ranking_loss(prediction, base, torch.tensor([-0.1, 0.1]), mask, alpha=0.1)
    assert float(hinge) == pytest.approx(2 * 0.04 / 4) and float(mse) == pytest.approx(0.04)
    assert float(loss) == pytest.approx(0.04 + 0.1 * 0.02)


# ----------------------------------------------------------------------------- StockMixer
def test_stockmixer_matches_the_released_shapes():
    config = _config()
    model = StockMixer(config, stocks=8, lookback=16, channels=5)
    assert model.time_fc.in_features == 16 + 16 + 8  # inputs, scale-1 mixing, scale-2 mixing (released code)
    assert model.stock_mixer.dense_1.out_features == 20
    assert model(torch.randn(8, 16, 5)).shape == (8,)
    wider = StockMixer(_config(time_scales=[1, 2, 4]), stocks=8, lookback=16, channels=5)
    assert wider.time_fc.in_features == 16 + 16 + 8 + 4
    with pytest.raises(ValueError, match="time_scales"):
        StockMixer(_config(time_scales=[1, 3]), stocks=8, lookback=16, channels=5)


# ----------------------------------------------------------------------------- the command
def _run_cli(capsys, *flags: str) -> tuple[int, str, str]:
    status = main(["--task=stock", "--dataset=nasdaq", *TINY, *flags])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("model", ["StockMixer", "RankLSTM"])
def test_one_epoch_on_the_fixture_prints_the_test_metrics(capsys, model):
    status, out, _ = _run_cli(capsys, f"--model={model}", "--epochs=1")
    assert status == 0
    line = next(x for x in out.splitlines() if x.startswith("test result:"))
    for name in ("ic", "rank_ic", "icir", "prec@10", "sharpe@5"):
        assert f" {name} " in line + " "


def test_edsmf_runs_end_to_end_on_the_stand_in_signals(capsys, tmp_path):
    signals = tmp_path / "signals.json"
    assert main(["stock-signals", "--start=2013-01-02", "--end=2013-03-28", f"--output={signals}"]) == 0
    status, out, _ = _run_cli(capsys, "--model=EDSMF", f"--signals={signals}", "--epochs=1", "--ensemble_grid=3")
    assert status == 0 and "ensemble weight on scenario_a" in out and "test result: ic" in out


def test_stand_in_signal_file_holds_the_calendar_facts():
    data = calendar_standin("2016-10-01", "2016-12-31")
    by_channel = {}
    for row in data["signals"]:
        by_channel.setdefault(row["channel"], set()).add(row["date"])
    assert "2016-11-08" in by_channel["election_window"]  # US election day
    assert "2016-11-23" in by_channel["pre_holiday"]  # the day before Thanksgiving
    assert "2016-11-18" in by_channel["opex_week"] and "2016-11-01" in by_channel["month_turn"]
    signs = {r["context"]: r["value"] for r in data["signals"] if r["channel"] == "election_window"}
    assert signs == {"scenario_a": 1.0, "scenario_b": -1.0}
    assert "STAND-IN" in data["description"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--model=Nope"], "unknown stock model 'Nope'"),
        (["--model=StockMixer", "--lookbak=8"], "Did you mean --lookback?"),
        (["--model=StockMixer", "--split=[756,252,237]"], "covers 1245 days but the panel has 60"),
        (["--model=StockMixer", "--valid_metric=auc"], "valid_metric = 'auc' is not allowed"),
        (["--model=StockMixer", "--epochs=abc"], "epochs = 'abc' is not allowed"),
        (["--model=EDSMF"], "EDSMF needs a signal file"),
        (["--model=StockMixer", "--signals=x.json"], "unknown option --signals"),
    ],
)
def test_stock_mistakes_are_one_line_errors(capsys, flags, message):
    status, _, err = _run_cli(capsys, *flags)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- trainer, tuning
def test_trainer_stops_early_and_keeps_the_best_validation_epoch():
    from recbole_llm.stock.trainer import StockTrainer

    config = _config(epochs=8, stopping_step=2, learning_rate=0.05)
    data = build_stock_data(_fixture_panel(), config)
    torch.manual_seed(0)
    model = StockMixer(config, len(data.tickers), data.lookback, data.features.shape[-1])
    calls = []
    result = StockTrainer(config, model, data, callback=lambda *a: calls.append(a)).fit(test=False)
    losses = [score for _, score in result["valid_history"]]
    assert len(calls) == len(losses) and calls[-1][3] is True  # the last report says training ends
    assert result["best_epoch"] == int(np.argmin(losses)) and result["test_result"] == {}
    assert result["best_valid_result"]["loss"] == pytest.approx(min(losses))
    assert len(losses) == 8 or losses.index(min(losses)) == len(losses) - 3  # stopped after 2 evaluations without gain


@pytest.mark.parametrize("model", ["StockMixer", "RankLSTM"])
def test_shipped_stock_search_spaces_are_valid(model):
    from recbole_llm.stock.tune import check_space, resolve_space
    from recbole_llm.tune import load_search_space

    space = load_search_space(resolve_space(model))
    assert "learning_rate" in space and check_space(model, "nasdaq", space, None, {"split": [30, 15, 15]})


def test_stock_search_space_mistakes_fail_before_ray():
    from recbole_llm.stock.tune import check_space
    from recbole_llm.tune import SearchSpaceError, load_search_space

    with pytest.raises(SearchSpaceError, match="'hidden_size': not a setting of StockMixer"):
        check_space("StockMixer", "nasdaq", load_search_space({"hidden_size": {"choice": [8]}}), None, {})
    with pytest.raises(SearchSpaceError, match="rejected"):
        check_space("StockMixer", "nasdaq", load_search_space({"market": {"choice": [20, 0]}}), None, {})
    with pytest.raises(SearchSpaceError, match="EDSMF is not searched"):
        check_space("EDSMF", "nasdaq", load_search_space({"market": {"choice": [20]}}), None, {})


@pytest.mark.slow  # one spawned training process (about 20 s on a busy 2-core machine)
def test_seeds_run_through_the_comparison_runner(capfd, tmp_path):
    flags = ("--model=RankLSTM", "--epochs=1", "--seeds=1", "--seed=7", f"--output={tmp_path / 'cmp'}")
    status, out, err = _run_cli(capfd, *flags)  # capfd: the run's child process writes to the inherited fds
    assert status == 0 and "1 run(s) finished, 0 failed" in out
    assert "RankLSTM seed 7: epoch 0: train loss" in err  # a long run shows its epochs
    runs = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    assert runs["seed"].tolist() == [7] and set(runs["status"]) == {"ok"}
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| model | ic | rank_ic | icir | prec@10 | sharpe@5 |" in table


def test_stock_tune_refuses_a_bad_space_before_ray_starts(capsys, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("hidden_size: {choice: [8, 16]}\n")
    status, _, err = _run_cli(capsys, "--model=StockMixer", f"--tune={space}", "--num_samples=1")
    assert status == 2 and "search space key 'hidden_size': not a setting of StockMixer" in err


def test_a_best_yaml_naming_model_and_dataset_is_read(tmp_path):
    best = tmp_path / "best.yaml"
    best.write_text("dataset: nasdaq\nmodel: StockMixer\nmarket: 7\n")
    config = StockConfig("StockMixer", None, [str(best)])
    assert config["dataset"] == "nasdaq" and config["market"] == 7


def _feng_folder(folder: Path, raw_close: np.ndarray) -> Path:
    """Feng-style files: moving averages and close divided by the five-year peak close (their look-ahead)."""
    folder.mkdir()
    peak = raw_close.max()
    ma = pd.Series(raw_close).rolling(5, min_periods=1).mean().to_numpy()
    rows = [
        ",".join([f"{d}.000000", *[f"{ma[d] / peak:.6f}"] * 4, f"{raw_close[d] / peak:.6f}"]) for d in range(len(ma))
    ]
    for ticker in ("AAA", "BBB"):
        (folder / f"NASDAQ_{ticker}_1.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_training_peak_scaling_removes_the_five_year_peak_look_ahead(tmp_path):
    """Histories equal up to day 39, apart after (a later peak): Feng's files differ on every day, our inputs don't."""
    rng = np.random.default_rng(0)
    raw = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, 60)))
    later_peak = raw.copy()
    later_peak[40:] *= 3.0
    config = _config(features=["ma5", "close"])
    first, second = (load_feng_panel(_feng_folder(tmp_path / n, r)) for n, r in (("a", raw), ("b", later_peak)))
    assert not np.allclose(first.close[:, :40], second.close[:, :40])  # the files leak the future peak
    ours = [build_stock_data(p, config).features[:, :40] for p in (first, second)]
    np.testing.assert_allclose(ours[0], ours[1], rtol=1e-4)  # equal up to the files' 6 decimals
    unscaled = [
        build_stock_data(p, _config(features=["ma5", "close"], scaler="none")).features[:, :40] for p in (first, second)
    ]
    assert not np.allclose(unscaled[0], unscaled[1])


def test_real_nasdaq_panel_has_the_papers_shape(shared_datasets):
    panel = load_feng_panel(shared_datasets / "stocks-nasdaq" / "trsr_nasdaq_2013-2017.tar.gz", drop_last_days=1)
    assert panel.shape == (1026, 1245, 5) and panel.dates[-1] == pd.Timestamp("2017-12-08")
    config = StockConfig("StockMixer", "nasdaq")
    data = build_stock_data(panel, config)
    assert [len(data.periods[k]) for k in ("train", "valid", "test")] == [740, 252, 237]
    assert np.isfinite(data.features).all() and data.features[:, :756, -1].max() == pytest.approx(1.0)  # peak close
