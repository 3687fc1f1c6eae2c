"""Quality report of generated P4R profile files -> ``benchmarks/results/p4r_profiles.md``.

For each file: share of profiles with all three sections, mean length, share with a repeated
sentence, share naming a number or proper noun absent from the item's attributes (a cheap
hallucination proxy, see :mod:`recbole_llm.profiles.quality`), and five random examples.

    python benchmarks/p4r_profiles.py dataset/ml-100k/ml-100k.p4r-profiles.*.jsonl --profile_extrinsic=False
    python benchmarks/p4r_profiles.py --dataset=ml-100k --seed=2020 FILE [FILE ...] --output=/tmp/q.md

The item attributes come from each file's dataset (its header; ``--dataset`` for all files) and its
training split under the given config flags (``--key=value``, e.g. ``--seed``, ``--profile_extrinsic``):
use the settings the profiles were generated with.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's recbole_llm, not an installed copy


def prompt_of(header: dict, prompt_files: str):
    """The prompt file (of ``prompt_files``) whose hash the profile file's header names, or None."""
    from recbole_llm.profiles.prompt import PromptTemplate

    for name in [p.strip() for p in prompt_files.split(",") if p.strip()]:
        prompt = PromptTemplate.load(name)
        if prompt.text_hash == header.get("prompt_hash"):
            return prompt
    return None


def item_attributes(dataset: str, overrides: list[str]):
    """Every item's attributes as the prompt showed them, for ``dataset`` under the config flags given."""
    from recbole_llm.config import Config
    from recbole_llm.profiles.attributes import collect_item_attributes
    from recbole_llm.profiles.generate import _load_dataset_and_train_split

    config = Config("P4R", dataset, config_dict={"state": "ERROR", "show_progress": False}, cmd_args=overrides)
    data, train_data = _load_dataset_and_train_split(config)
    return collect_item_attributes(config, data, train_data), int(config["seed"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="profile JSON-lines files")
    parser.add_argument("--dataset", default=None, help="default: the dataset each file's header names")
    parser.add_argument("--examples", type=int, default=5, help="random examples per file")
    parser.add_argument(
        "--prompts",
        default="p4r_item.txt,p4r_item_zero_shot.txt",
        help="prompt files to match against each file's prompt hash (for the copy measure)",
    )
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "p4r_profiles.md"))
    args, overrides = parser.parse_known_args(argv)
    bad = [a for a in overrides if not (a.startswith("--") and "=" in a)]
    if bad:
        parser.error(f"unrecognised argument(s) {' '.join(bad)}: config overrides take the form --key=value")

    import recbole_llm  # noqa: F401  (compatibility layer)
    from recbole_llm.profiles.quality import assess_profiles, report_markdown
    from recbole_llm.profiles.store import read_header

    shown = " ".join([*([f"--dataset={args.dataset}"] if args.dataset else []), *overrides, *args.files])
    note = (
        "Measures: see `recbole_llm/profiles/quality.py` (the proper-noun proxy over-counts harmless "
        "capitalised words and misses invented facts in lower case)."
    )
    lines = ["# P4R profile quality", "", f"Command: `python benchmarks/p4r_profiles.py {shown}`", "", note, ""]
    attributes: dict[str, tuple] = {}
    for path in args.files:
        header = read_header(path) or {}
        dataset = args.dataset or header.get("dataset") or "ml-100k"
        if dataset not in attributes:
            attributes[dataset] = item_attributes(dataset, overrides)
        items, seed = attributes[dataset]
        prompt = prompt_of(header, args.prompts)
        prompt_text = None if prompt is None else prompt.system + "\n" + prompt.user
        report = assess_profiles(path, items, n_examples=args.examples, seed=seed, prompt_text=prompt_text)
        lines += report_markdown(report)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[:12]))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
