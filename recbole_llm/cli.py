"""Command line: ``python run_recbole_llm.py`` / ``recbole-llm`` (the flags of RecBole's run_recbole.py).

    recbole-llm --model=LightGCN --dataset=ml-100k --epochs=2            # one run
    recbole-llm --compare=LightGCN,BPR --seeds=3 --reference=LightGCN    # benchmark table
    recbole-llm --benchmark=suite.yaml                                   # a benchmark suite
    recbole-llm --task=stock --model=StockMixer --dataset=nasdaq         # stock ranking (recbole_llm.stock)
    recbole-llm <subcommand> ...                                         # profiles, inspect, stock-signals

Any further ``--key=value`` is a RecBole config override (highest precedence); flags are matched
exactly (``--seed=2021`` is the seed override, never an abbreviation of ``--seeds``). Configuration
mistakes exit with status 2 and one line on stderr; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from collections.abc import Sequence

# Subcommands are registered here and imported only when used: name -> "module:function".
SUBCOMMANDS: dict[str, str] = {
    "profiles": "recbole_llm.profiles.cli:main",  # P4R item-profile generation
    "inspect": "recbole_llm.data.inspect:main",  # what a dataset holds, as RecBole loads it
    "stock-signals": "recbole_llm.stock.signals:main",  # stand-in event-signal file for EDSMF
}
#: ``--benchmark=<suite.yaml>`` runs this function with (args, overrides).
BENCHMARK_ENTRY = "recbole_llm.benchmark:run_from_cli"
TUNE_ENTRY = "recbole_llm.tune:run_from_cli"
#: ``--task=stock`` runs this function with (args, argv, overrides): stock ranking, not RecBole.
STOCK_ENTRY = "recbole_llm.stock.runner:run_from_cli"


def build_parser() -> argparse.ArgumentParser:
    """The flags of RecBole's ``run_recbole.py`` plus ours; unknown ``--key=value`` flags become config overrides."""
    parser = argparse.ArgumentParser(
        prog="run_recbole_llm.py",
        description="Train and evaluate recbole-llm or RecBole models; extra --key=value flags override the config.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--task",
        choices=("recommendation", "stock"),
        default="recommendation",
        help="recommendation (RecBole models, the default) or stock (recbole_llm.stock: StockMixer, EDSMF, RankLSTM)",
    )
    parser.add_argument("--model", "-m", type=str, default="BPR", help="model name (ours or RecBole's)")
    parser.add_argument("--dataset", "-d", type=str, default=None, help="dataset name (default: ml-100k, bundled)")
    parser.add_argument("--config_files", type=str, default=None, help="space-separated yaml config files")
    parser.add_argument("--nproc", type=int, default=1, help="processes on this machine (gloo on CPU, NCCL on GPU)")
    parser.add_argument("--ip", type=str, default="localhost", help="address of the machine with global rank 0")
    parser.add_argument("--port", type=str, default="5678", help="free TCP port on that machine")
    parser.add_argument("--world_size", type=int, default=-1, help="processes on all machines (-1: nproc)")
    parser.add_argument("--group_offset", type=int, default=0, help="global rank of this machine's first process")
    parser.add_argument("--compare", type=str, default=None, help="comma-separated models to benchmark")
    parser.add_argument(
        "--seeds", type=str, default=None, help="--compare: a count or a list (default 3); --benchmark: the first N"
    )
    parser.add_argument("--reference", type=str, default=None, help="with --compare: model for the paired test")
    parser.add_argument(
        "--resume", action="store_true", help="with --compare: keep the output folder's finished runs, run the rest"
    )
    parser.add_argument("--output", type=str, default=None, help="with --compare / --tune: output folder")
    parser.add_argument("--tune", type=str, default=None, help="Ray Tune search-space yaml (see properties/search/)")
    parser.add_argument("--benchmark", type=str, default=None, help="benchmark suite yaml (recbole_llm.benchmark)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    return parser


def _fail(message: str, status: int = 2) -> int:
    print("error: " + " ".join(str(message).split()), file=sys.stderr)
    return status


def _entry(spec: str):
    module_name, func_name = spec.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def _run_compare(args, argv: list[str], config_files, overrides: list[str]) -> int:
    from recbole_llm.compare import compare, parse_seeds
    from recbole_llm.validation import validate_run

    models = [m.strip() for m in args.compare.split(",") if m.strip()]
    for name in models:  # fail before any training on a typo
        validate_run(name, args.dataset, config_files, overrides)
    seed_overrides = [a for a in overrides if a.startswith("--seed=")]
    base_seed = int(seed_overrides[-1].split("=", 1)[1]) if seed_overrides else 2020
    overrides = [a for a in overrides if not a.startswith("--seed=")]
    output = args.output or f"benchmarks/results/compare_{args.dataset or 'ml-100k'}"
    compare(
        models,
        args.dataset,
        parse_seeds(args.seeds or "3", base_seed),
        config_files,
        overrides,
        reference=args.reference,
        output_dir=output,
        command="python run_recbole_llm.py " + " ".join(shlex.quote(a) for a in argv),
        resume=args.resume,
    )
    return 0


def _run(args, argv: list[str], overrides: list[str]) -> int:
    """Dispatch one parsed command line; configuration mistakes raise ConfigError."""
    from recbole_llm.validation import ConfigError, check_config_files, validate_run

    config_files = args.config_files.strip().split() if args.config_files else None
    if args.task == "stock":
        if args.benchmark:
            raise ConfigError("--benchmark runs RecBole suites; with --task=stock use --seeds, --compare or --tune")
        return int(_entry(STOCK_ENTRY)(args, argv, overrides) or 0)
    if args.benchmark:
        check_config_files([args.benchmark])
        return int(_entry(BENCHMARK_ENTRY)(args, overrides) or 0)
    if args.tune:  # tune reads its own --key=value options (num_samples, ...) from the overrides
        validate_run(args.model, args.dataset, config_files)
        return int(_entry(TUNE_ENTRY)(args, overrides) or 0)
    if args.compare:
        return _run_compare(args, argv, config_files, overrides)
    validate_run(args.model, args.dataset, config_files, overrides)
    if args.nproc > 1 or args.world_size > 1:
        from recbole_llm.distributed import run_distributed

        result = run_distributed(
            args.model,
            args.dataset,
            config_files,
            cmd_args=overrides,
            nproc=args.nproc,
            world_size=args.world_size,
            ip=args.ip,
            port=args.port,
            group_offset=args.group_offset,
        )
    else:
        from recbole_llm.quick_start import run_recbole_llm

        result = run_recbole_llm(args.model, args.dataset, config_files, cmd_args=overrides)
    print(f"best valid: {result['best_valid_result']}")
    print(f"test result: {result['test_result']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """A subcommand (``inspect``, ``profiles``, ...) or a run, search, comparison or benchmark; the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return _entry(SUBCOMMANDS[argv[0]])(argv[1:])

    args, overrides = build_parser().parse_known_args(argv)
    bad = [a for a in overrides if not (a.startswith("--") and "=" in a)]
    if bad:
        return _fail(f"unrecognised argument(s) {' '.join(bad)}: config overrides take the form --key=value")
    if (args.nproc > 1 or args.world_size > 1) and (args.compare or args.tune or args.benchmark):
        return _fail("--nproc/--world_size apply to one run; --compare, --tune and --benchmark run in one process")
    from recbole_llm.distributed import distributed_settings

    try:
        distributed_settings(args.nproc, args.world_size, args.ip, args.port, args.group_offset)
    except ValueError as exc:
        return _fail(str(exc))

    import recbole_llm  # noqa: F401  (applies the compatibility layer)
    from recbole_llm.data import DatasetNotFoundError
    from recbole_llm.stock.panel import PanelError
    from recbole_llm.utils import ModelImportError
    from recbole_llm.validation import ConfigError

    try:
        return _run(args, argv, overrides)
    except (ConfigError, DatasetNotFoundError, PanelError) as exc:
        if args.debug:
            raise
        return _fail(str(exc))
    except ModelImportError as exc:
        if args.debug:
            raise
        return _fail(f"{exc} (run with --debug for the traceback)", status=1)


if __name__ == "__main__":
    sys.exit(main())
