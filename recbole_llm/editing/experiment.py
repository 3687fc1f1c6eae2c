"""The editing experiment as one command (issue #17): does adding an arithmetic task vector help P5Edit?

    python -m recbole_llm.editing.experiment --dataset=ml-100k --seeds=3 [--device=cuda]

Per dataset and seed, from one saved base theta_0 (the backbone with its random cross-attention):
``rec`` (theta_0 trained on next-item prompts), ``arith`` (theta_0 trained on as many arithmetic
steps), tau_arith = theta_arith - theta_0, ``edit`` = theta_rec + lambda* tau_arith with lambda* chosen
on VALIDATION NDCG@10 (seen prompt) from ``--lambdas``, the ``negation`` control theta_rec - lambda*
tau_arith, and ``joint`` (theta_0 trained on rec + arithmetic prompts mixed 1:1). Each arm is tested
with the seen and the unseen prompt. Every evaluation is written to ``<--results-dir>/<dataset>/seed<k>.json``
(default ``benchmarks/results/editing``, small and committed) as soon as it exists, with ``<dataset>/run.json``
beside it; the trained states (~200 MB each) go under ``--work-dir`` (git-ignored), which a wiped machine
loses. So a killed run resumes where it stopped, and a seed whose file is marked complete is skipped without
building its data or model: a finished seed is never recomputed. The report (``--out``, default
``benchmarks/results/editing.md``) is rebuilt from the results files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from recbole.trainer import Trainer
from recbole.utils import init_logger, init_seed
from tqdm.auto import tqdm

from recbole_llm.config import Config
from recbole_llm.data import create_dataset, data_preparation
from recbole_llm.editing.arithmetic import exact_match
from recbole_llm.editing.evaluation import distinct_share, ranked_lists
from recbole_llm.editing.task_vector import TaskVector, load_state, save_state, state_fingerprint
from recbole_llm.editing.trainer import PrefixBudgetMixin, budget_train_data

if TYPE_CHECKING:
    from collections.abc import Sequence

DEFAULT_LAMBDAS = "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0"
PROMPTS = ("seen:0", "unseen:0")
ARITH_HELD_OUT = 200  # arithmetic questions scored per arm (exact match)
# The default budget is the one the probe found to personalise on a CPU (validation only): pre-trained MiniLM
# trained 3 epochs on each user's last 3 prefixes ranks every user alike; a small T5 from scratch on all prefixes
# does not. With a GPU, OpenP5's budget is e.g. --backbone=all-MiniLM-L6-v2 --epochs=20 --device=cuda.
BACKBONE_HELP = "random-t5 (small T5 from scratch), all-MiniLM-L6-v2 (bundled), or a local seq2seq / causal LM folder"
RESULT_SHAPING_FLAGS = ("dataset", "epochs", "max_his", "prefixes_per_user", "beam_size", "backbone", "lambdas")


class SettingsMismatch(SystemExit):
    """Stored results were made with other flags: reusing them would report one budget under another's name."""


class StateMismatch(SystemExit):
    """A retrained state differs from the one whose results are stored: the two must not share one table."""


def settings(args: argparse.Namespace) -> dict:
    """The flags that shape a seed's results (not where files go, nor the device), stored with them."""
    return {**{flag: getattr(args, flag) for flag in RESULT_SHAPING_FLAGS}, "config": json.loads(args.config_json)}


def settings_key(args: argparse.Namespace) -> str:
    """A short hash of :func:`settings`: trained states of other settings live in other folders."""
    return hashlib.sha1(json.dumps(settings(args), sort_keys=True).encode()).hexdigest()[:10]


class EditingTrainer(PrefixBudgetMixin, Trainer):
    """RecBole's trainer on each user's last ``train_prefixes_per_user`` prefixes."""


def build_config(args: argparse.Namespace, seed: int) -> Config:
    """P5Edit's config for one seed, with the experiment's budget flags on top of the yaml."""
    values = {
        "seed": seed,
        "epochs": args.epochs,
        "MAX_ITEM_LIST_LENGTH": args.max_his,
        "beam_size": args.beam_size,
        "train_prefixes_per_user": args.prefixes_per_user or None,
        "backbone": args.backbone,
        "use_gpu": args.device.startswith("cuda"),
        "eval_step": 0,
        "checkpoint_dir": str(Path(args.work_dir) / "checkpoints"),
    }
    values.update(json.loads(args.config_json))
    return Config("P5Edit", args.dataset, config_dict=values)


def results_file(args: argparse.Namespace, seed: int) -> Path:
    """Where one seed's evaluations live: beside the report, so they are committed and outlive the machine."""
    return Path(args.results_dir) / args.dataset / f"seed{seed}.json"


def stored_results(args: argparse.Namespace, seed: int) -> dict:
    """One seed's stored evaluations ({} when none), read without building data or model.

    Raises :class:`SettingsMismatch` when they were made with other flags (``--epochs``, ``--config-json`` ...):
    skipping a finished seed, or resuming a half-done one, must never mix two budgets.
    """
    path = results_file(args, seed)
    results = json.loads(path.read_text()) if path.is_file() else {}
    if results and results.get("settings") != settings(args):
        differ = sorted(k for k in settings(args) if results.get("settings", {}).get(k) != settings(args)[k])
        raise SettingsMismatch(
            f"{path} was made with other settings ({', '.join(differ)} differ: stored "
            f"{ {k: results.get('settings', {}).get(k) for k in differ} }); pass another --results-dir or remove it"
        )
    return results


class SeedRun:
    """One (dataset, seed): data, model, its states (``<work>/<dataset>/seed<k>/``) and results file."""

    def __init__(self, args, seed: int) -> None:
        self.args, self.seed = args, seed
        self.config = build_config(args, seed)
        init_seed(seed, True)
        dataset = create_dataset(self.config)
        self.train_data, self.valid_data, self.test_data = data_preparation(self.config, dataset)
        from recbole_llm.model.sequential_recommender.p5edit import P5Edit

        init_seed(seed, True)
        self.model = P5Edit(self.config, self.train_data._dataset).to(self.config["device"])
        self.folder = Path(args.work_dir) / args.dataset / settings_key(args) / f"seed{seed}"
        self.results_file = results_file(args, seed)
        self.results = stored_results(args, seed)
        if not self.results:
            self._record("settings", settings(args))
        self.theta0 = self.state("theta0", lambda: None)  # saved once: every task vector starts here

    def state(self, name: str, train: Callable[[], object]) -> dict[str, torch.Tensor]:
        """The saved state ``name``, or train it (``train()``, from theta_0) and save it first.

        Its training seconds are written beside it (``<name>.seconds``): a results file that reuses a state
        trained for another one (a probe's rec arm, say) still reports what the state cost. Its fingerprint is
        stored with the results (``state/<name>``); a state retrained after the machine lost it must match it,
        or the run stops with :class:`StateMismatch` rather than mix evaluations of two different models.
        """
        path = self.folder / f"{name}.pt"
        seconds_file = path.with_suffix(".seconds")
        if not path.is_file():
            if name != "theta0":
                self.model.load_state_dict(self.theta0)
                init_seed(self.seed, True)
                start = time.perf_counter()
                train()
                seconds_file.parent.mkdir(parents=True, exist_ok=True)
                seconds_file.write_text(f"{time.perf_counter() - start}\n")
            save_state(self.model.state_dict(), path)
        if f"time/{name}" not in self.results and seconds_file.is_file():
            self._record(f"time/{name}", float(seconds_file.read_text()))
        state = load_state(path)
        self._check_fingerprint(name, path, state_fingerprint(state))
        return state

    def _check_fingerprint(self, name: str, path: Path, fingerprint: str) -> None:
        """Record the state's fingerprint, or stop if the results on file were computed from other weights."""
        stored = self.results.get(f"state/{name}")
        if stored is None:
            self._record(f"state/{name}", fingerprint)
        elif stored != fingerprint:
            raise StateMismatch(
                f"{path} (fingerprint {fingerprint}) is not the {name} state whose evaluations {self.results_file} "
                f"holds ({stored}): training did not reproduce it here; restore that state or remove the results file"
            )

    def _record(self, key: str, value) -> None:
        """Store one result at once (tmp + replace: a kill never leaves a torn file), so nothing is recomputed."""
        self.results[key] = value
        self.results_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.results_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.results))
        tmp.replace(self.results_file)

    def train_rec(self, arith_mix: float = 0.0) -> None:
        self.model.arith_mix = arith_mix
        trainer = EditingTrainer(self.config, self.model)
        trainer.fit(self.train_data, None, verbose=False, saved=False, show_progress=self.config["show_progress"])
        self.model.arith_mix = 0.0

    def train_arith(self) -> None:
        """As many AdamW steps of arithmetic questions as the rec arm took, same batch size and learning rate."""
        batch = self.config["train_batch_size"]
        steps = self.config["epochs"] * len(budget_train_data(self.config, self.train_data))
        examples = self.model.arithmetic.examples(steps * batch, self.seed)
        optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=self.config["learning_rate"], weight_decay=self.config["weight_decay"]
        )
        self.model.train()
        for step in tqdm(range(steps), desc="arithmetic steps", disable=not self.config["show_progress"]):
            chunk = examples[step * batch : (step + 1) * batch]
            loss = self.model.lm.loss([q for q, _ in chunk], [self.model.lm.target_tokens(a) for _, a in chunk])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), **self.config["clip_grad_norm"])
            optimizer.step()

    def evaluate(self, key: str, state: dict[str, torch.Tensor], split: str, prompt: str) -> dict[str, list[float]]:
        """Per-user metrics of ``state`` on ``split`` with ``prompt`` (read back when already computed)."""
        key = f"{key}/{split}/{prompt}"
        if key not in self.results:
            self.model.load_state_dict(state)
            self.model.set_test_prompt(prompt)
            data = self.valid_data if split == "valid" else self.test_data
            metrics, top = ranked_lists(self.model, data, self.config)
            stored = {name: values.tolist() for name, values in metrics.items()}
            self._record(key, {**stored, "distinct_lists": distinct_share(top)})
        return self.results[key]

    def run(self, lambdas: list[float]) -> None:
        """Every arm of this seed (skipping what is already on disk), then the mark that lets ``main`` skip it."""
        rec = self.state("rec", self.train_rec)
        tau = TaskVector.between(self.theta0, self.state("arith", self.train_arith))
        joint = self.state("joint", lambda: self.train_rec(arith_mix=1.0))
        grid = {
            lam: np.mean(self.evaluate(f"edit@{lam:g}", tau.apply_to(rec, lam), "valid", "seen:0")["ndcg@10"])
            for lam in lambdas
        }
        best = max(grid, key=lambda lam: (grid[lam], -lam))  # ties: the smaller edit
        self._record("lambda", best)
        self._record("tau_norm", tau.norm())
        arms = {"rec": rec, "edit": tau.apply_to(rec, best), "negation": tau.apply_to(rec, -best), "joint": joint}
        for prompt in PROMPTS:
            for arm, state in arms.items():
                self.evaluate(arm, state, "test", prompt)
        for arm, state in {**arms, "arith": tau.apply_to(self.theta0)}.items():
            self.arithmetic_accuracy(arm, state)
        self._record("complete", True)  # last: every evaluation above is stored

    def arithmetic_accuracy(self, arm: str, state: dict[str, torch.Tensor]) -> float:
        """Exact-match accuracy of ``state`` on ARITH_HELD_OUT questions never trained on (other seed)."""
        key = f"arith_acc/{arm}"
        if key not in self.results:
            self.model.load_state_dict(state)
            self.model.eval()
            examples = self.model.arithmetic.examples(ARITH_HELD_OUT, self.seed + 10_000)
            self._record(key, exact_match(self.model.lm, self.model.trie, examples, self.config["train_batch_size"]))
        return self.results[key]


def lambda_values(text: str) -> list[float]:
    """The numbers of a ``--lambdas`` grid, in the order typed."""
    return [float(x) for x in text.split(",")]


def lambda_grid(text: str) -> str:
    """``--lambdas`` checked when parsed (one-line error, not a traceback); kept as typed, since it is stored."""
    try:
        values = lambda_values(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of numbers, e.g. 0,0.5,1") from None
    if not all(np.isfinite(values)):
        raise argparse.ArgumentTypeError(f"'{text}' holds a value that is not finite")
    return text


def json_object(text: str) -> str:
    """``--config-json`` checked when parsed; kept as typed (the parsed object is stored with the results)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"'{text}' is not a JSON object like '{{\"learning_rate\": 0.001}}'")
    return text


def _whole_number(text: str, minimum: int) -> int:
    """A count flag parsed with argparse's one-line error; returned as int so stored settings keys do not change."""
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number >= {minimum}")
    return value


def positive_int(text: str) -> int:
    """Counts (seeds, epochs) below 1 would make an empty or untrained run look finished."""
    return _whole_number(text, 1)


def prefix_count(text: str) -> int:
    """``--prefixes-per-user``: 0 means all prefixes, a negative count means nothing and is refused."""
    return _whole_number(text, 0)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Flags of the editing experiment (dataset, seeds, device, budgets); defaults kept small enough for a CPU."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--seeds", type=positive_int, default=3, help="seeds 2020, 2021, ...")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--epochs", type=positive_int, default=3)
    parser.add_argument("--max-his", type=positive_int, default=10, help="history items per prompt (OpenP5: 20)")
    parser.add_argument(
        "--prefixes-per-user",
        type=prefix_count,
        default=0,
        help="training prefixes per user and epoch; 0 = all (OpenP5)",
    )
    parser.add_argument("--beam-size", type=positive_int, default=20)
    parser.add_argument("--backbone", default="random-t5", help=BACKBONE_HELP)
    parser.add_argument("--lambdas", type=lambda_grid, default=DEFAULT_LAMBDAS, help="comma-separated grid for lambda")
    parser.add_argument("--work-dir", default="saved/editing", help="trained states and checkpoints (large)")
    parser.add_argument(
        "--results-dir", default="benchmarks/results/editing", help="per-seed results and run.json (small, committed)"
    )
    parser.add_argument("--out", default="benchmarks/results/editing.md")
    parser.add_argument("--config-json", type=json_object, default="{}", help="extra P5Edit settings as a JSON object")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every seed not yet marked complete, then rebuild the report from the results files."""
    from recbole_llm.editing.report import write_report

    args = parse_args(argv)
    lambdas = lambda_values(args.lambdas)
    start = time.perf_counter()
    ran_any = False
    for seed in range(2020, 2020 + args.seeds):
        results = stored_results(args, seed)
        if results.get("complete"):  # skipped before any data, model or state is touched
            print(f"{args.dataset} seed {seed} done: lambda* = {results['lambda']} (stored)", flush=True)
            continue
        run = SeedRun(args, seed)
        if not ran_any:
            init_logger(run.config)
            logging.getLogger().setLevel(logging.WARNING)
            ran_any = True
        run.run(lambdas)
        print(f"{args.dataset} seed {seed} done: lambda* = {run.results['lambda']}", flush=True)
    run_file = Path(args.results_dir) / args.dataset / "run.json"
    if ran_any or not run_file.is_file():  # a rerun that only rebuilds the report keeps the run it reports
        summary = {**vars(args), "minutes": (time.perf_counter() - start) / 60}  # this invocation's minutes
        run_file.parent.mkdir(parents=True, exist_ok=True)
        run_file.write_text(json.dumps(summary))
    write_report(Path(args.results_dir), Path(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
