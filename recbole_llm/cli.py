"""Command line: ``python run_recbole_llm.py`` / ``recbole-llm`` (the flags of RecBole's run_recbole.py).

    recbole-llm --model=LightGCN --dataset=ml-100k --epochs=2            # one run
    recbole-llm --compare=LightGCN,BPR --seeds=3 --reference=LightGCN    # benchmark table
    recbole-llm <subcommand> ...                                         # e.g. profiles

Any further ``--key=value`` is a RecBole config override (highest precedence).
"""
from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from typing import Sequence

# Subcommands are registered here and imported only when used: name -> "module:function".
SUBCOMMANDS: dict[str, str] = {
    "profiles": "recbole_llm.profiles.cli:main",  # P4R item-profile generation
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_recbole_llm.py",
        description="Train and evaluate recbole-llm or RecBole models; extra --key=value flags override the config.",
    )
    parser.add_argument("--model", "-m", type=str, default="BPR", help="model name (ours or RecBole's)")
    parser.add_argument("--dataset", "-d", type=str, default=None, help="dataset name (default: ml-100k, bundled)")
    parser.add_argument("--config_files", type=str, default=None, help="space-separated yaml config files")
    parser.add_argument("--nproc", type=int, default=1, help="processes (only 1 is supported)")
    parser.add_argument("--ip", type=str, default="localhost")
    parser.add_argument("--port", type=str, default="5678")
    parser.add_argument("--world_size", type=int, default=-1)
    parser.add_argument("--group_offset", type=int, default=0)
    parser.add_argument("--compare", type=str, default=None, help="comma-separated models to benchmark")
    parser.add_argument("--seeds", type=str, default="3", help="with --compare: a count or a comma-separated list")
    parser.add_argument("--reference", type=str, default=None, help="with --compare: model for the paired test")
    parser.add_argument("--output", type=str, default=None, help="with --compare / --tune: output folder")
    parser.add_argument("--tune", type=str, default=None, help="Ray Tune search-space yaml (see properties/search/)")
    return parser


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        module_name, func_name = SUBCOMMANDS[argv[0]].split(":")
        return getattr(importlib.import_module(module_name), func_name)(argv[1:])

    args, overrides = build_parser().parse_known_args(argv)
    bad = [a for a in overrides if not (a.startswith("--") and "=" in a)]
    if bad:
        return _fail(f"unrecognised argument(s) {' '.join(bad)}: config overrides take the form --key=value")
    if args.nproc != 1 or args.world_size > 1:
        return _fail("distributed runs (--nproc/--world_size > 1) are not supported by recbole-llm yet")
    config_files = args.config_files.strip().split(" ") if args.config_files else None

    import recbole_llm  # noqa: F401  (applies the compatibility layer)
    from recbole_llm.data import DatasetNotFoundError
    from recbole_llm.utils import UnknownModelError, get_model

    try:
        if args.tune:
            from recbole_llm.tune import run_from_cli

            return run_from_cli(args, overrides)
        if args.compare:
            from recbole_llm.compare import compare, parse_seeds

            models = [m.strip() for m in args.compare.split(",") if m.strip()]
            for name in models:
                get_model(name)  # fail before any training on a typo
            seed_overrides = [a for a in overrides if a.startswith("--seed=")]
            base_seed = int(seed_overrides[-1].split("=", 1)[1]) if seed_overrides else 2020
            overrides = [a for a in overrides if not a.startswith("--seed=")]
            output = args.output or f"benchmarks/results/compare_{args.dataset or 'ml-100k'}"
            compare(
                models, args.dataset, parse_seeds(args.seeds, base_seed), config_files, overrides,
                reference=args.reference, output_dir=output,
                command="python run_recbole_llm.py " + " ".join(shlex.quote(a) for a in argv),
            )
            return 0
        from recbole_llm.quick_start import run_recbole_llm

        result = run_recbole_llm(args.model, args.dataset, config_files, cmd_args=overrides)
    except (UnknownModelError, DatasetNotFoundError) as exc:
        return _fail(str(exc))
    print(f"best valid: {result['best_valid_result']}")
    print(f"test result: {result['test_result']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
