"""Ray Tune search for a stock model, through the project's tuning module where it is not RecBole-specific.

    python run_recbole_llm.py --task=stock --tune=StockMixer --model=StockMixer --dataset=nasdaq \\
        --num_samples=8 --epochs=30 [--search_alg=random|optuna|hyperopt] [--scheduler=asha|fifo] ...

Reused from :mod:`recbole_llm.tune`: the space format and its checks (``load_search_space``), the
conversion to Ray domains, the tuning flags (``TuneOptions``), the searcher, ASHA and the Ray session,
the trials table, ``trials.md`` and ``best.yaml``. Not reusable: its trainable and its space
validation build RecBole's ``Config`` and trainers, so this module has its own (a trial is a
:class:`~recbole_llm.stock.trainer.StockTrainer` reporting every validation; the test period is
never predicted). Shipped spaces: ``properties/search/stock/<Model>.yaml`` (``--tune=StockMixer``).
EDSMF (two members and an ensemble weight) is not searched: tune StockMixer, then set its keys.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recbole_llm.stock.config import StockConfig, stock_properties
from recbole_llm.tune.options import TuneOptions
from recbole_llm.tune.report import SearchRecord, trials_table, write_report
from recbole_llm.tune.runner import _ray_session, _scheduler, _search_algorithm
from recbole_llm.tune.space import SearchSpace, SearchSpaceError, load_search_space, representative, to_ray_space
from recbole_llm.validation import ConfigError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from recbole_llm.tune.report import TuneSummary


def resolve_space(source: str) -> Path | str:
    """A yaml path, or the name of a space in ``properties/search/stock/``."""
    shipped = stock_properties().parent / "search" / "stock" / f"{source}.yaml"
    return source if Path(source).is_file() or not shipped.is_file() else shipped


def check_space(
    model: str, dataset: str | None, space: SearchSpace, files: Sequence[str] | None, fixed: dict[str, Any]
) -> StockConfig:
    """Every searched key is a stock setting of ``model``; each choice (and range's ends) passes the config checks."""
    if model == "EDSMF":
        raise SearchSpaceError("EDSMF is not searched (two members, one ensemble weight): tune StockMixer instead")
    probe = StockConfig(model, dataset, files, fixed)
    for key in space:
        if key not in probe.internal_config_dict:
            raise SearchSpaceError(f"search space key '{key}': not a setting of {model} (properties/stock/)")
    base = {key: representative(*spec) for key, spec in space.items()}
    candidates = [base] + [
        {**base, key: value}
        for key, (dist, args) in space.items()
        for value in (args if dist in ("choice", "grid") else args[1:2])
    ]
    for params in candidates:
        try:
            StockConfig(model, dataset, files, {**fixed, **params})
        except ConfigError as exc:
            raise SearchSpaceError(f"search space values {params} are rejected: {exc}") from exc
    return probe


def stock_trainable(params: dict[str, Any], settings: dict[str, Any]) -> None:
    """One trial: train with the sampled settings, report each validation to Ray; returns nothing (ASHA)."""
    import torch
    from ray.air import session
    from recbole.utils import init_seed

    from recbole_llm.stock.data import load_stock_data
    from recbole_llm.stock.trainer import StockTrainer
    from recbole_llm.tune.space import plain

    torch.set_num_threads(max(1, int(settings["cpus_per_trial"])))
    config = StockConfig(settings["model"], settings["dataset"], settings["files"], {**settings["fixed"], **params})
    config["seed"] = plain(params.get("seed", config["seed"]))
    init_seed(int(config["seed"]), bool(config["reproducibility"]))
    data, _ = load_stock_data(config)
    model = config.model_class(config, len(data.tickers), data.lookback, data.features.shape[-1])

    def report(epoch: int, valid: dict[str, float], best: float, stopping: bool) -> None:
        value = valid[str(config["valid_metric"])]
        metrics = {**{k: float(v) for k, v in valid.items()}, "valid_score": float(value)}
        session.report({**metrics, "best_valid_score": float(best), "epoch": epoch + 1, "finished": bool(stopping)})

    StockTrainer(config, model, data, callback=report).fit(test=False)


def _trials(space: SearchSpace, settings: dict[str, Any], options: TuneOptions, output: Path, probe: StockConfig):
    from ray import air, tune

    bigger = probe["valid_metric"] != "loss"
    max_reports = max(1, int(probe["epochs"]) // max(1, int(probe["eval_step"])))
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(stock_trainable, settings=settings), {"cpu": options.cpus_per_trial}),
        param_space=to_ray_space(space),
        tune_config=tune.TuneConfig(
            metric="valid_score",
            mode="max" if bigger else "min",
            search_alg=_search_algorithm(options, space, int(probe["seed"])),
            scheduler=_scheduler(options, max_reports),
            num_samples=options.num_samples,
            time_budget_s=options.time_budget_s,
            chdir_to_trial_dir=True,
        ),
        run_config=air.RunConfig(name="ray", storage_path=str(output), verbose=options.verbose),
    )
    return tuner.fit(), "max" if bigger else "min"


def _command(args, overrides: list[str]) -> str:
    flags = ["--task=stock", f"--tune={args.tune}", f"--model={args.model}"]
    flags += [
        f"--{name}={getattr(args, name)}" for name in ("dataset", "config_files", "output") if getattr(args, name)
    ]
    return "python run_recbole_llm.py " + " ".join(shlex.quote(a) for a in [*flags, *overrides])


def run_stock_tune(args: argparse.Namespace, overrides: list[str], tune_flags: dict[str, Any]) -> TuneSummary:
    """Check the space, run the trials, write ``trials.md`` / ``trials.csv`` / ``best.yaml``."""
    from recbole_llm.stock.config import parse_flag

    options = TuneOptions(output=args.output, **tune_flags)
    options.validate()
    space = load_search_space(resolve_space(args.tune))
    files = [str(Path(f).resolve()) for f in args.config_files.split()] if args.config_files else None
    fixed = {**space.fixed, **dict(parse_flag(a) for a in overrides)}
    probe = check_space(args.model, args.dataset, space, files, fixed)
    if probe["panel_path"] and not Path(str(probe["panel_path"])).is_absolute():
        from recbole_llm.stock.data import resolve_panel_path

        fixed["panel_path"] = str(resolve_panel_path(probe).resolve())  # trials run in their own folders
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output = Path(options.output or Path("saved", "tune", f"{args.model}-{probe['dataset']}-{stamp}")).resolve()
    output.mkdir(parents=True, exist_ok=True)
    settings = {"model": args.model, "dataset": args.dataset, "files": files, "fixed": fixed}
    settings["cpus_per_trial"] = options.cpus_per_trial
    started = time.time()
    with _ray_session(options):
        results, mode = _trials(space, settings, options, output, probe)
        table = trials_table(results, list(space), mode)
    record = SearchRecord(
        model=args.model,
        dataset=probe["dataset"],
        metric=str(probe["valid_metric"]),
        mode=mode,
        command=_command(args, overrides),
        setup=f"Search: {options.search_alg}, scheduler {options.scheduler}, num_samples {options.num_samples}",
        searched=list(space),
        base_settings={**probe.file_config_dict, **fixed},
        elapsed_s=time.time() - started,
        entry_flags="--task=stock",
    )
    return write_report(output, table, record)
