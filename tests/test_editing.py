"""P5Edit and recbole_llm.editing on a tiny random-weight T5 (random-t5) and the mini HetRec Last.fm file.

The trie admits only item numbers; beam search returns only valid, distinct items; task-vector
arithmetic is exact; lambda = 0 reproduces the rec model's scores; one epoch beats a random ranking;
local seq2seq and causal LM folders load and search.
"""

from __future__ import annotations

import math
from contextlib import chdir
from pathlib import Path

import numpy as np
import pytest
import torch
from recbole.trainer import Trainer

from recbole_llm.editing.arithmetic import ArithmeticTask
from recbole_llm.editing.evaluation import per_user_metrics
from recbole_llm.editing.indexing import FIRST_INDEX, sequential_numbers
from recbole_llm.editing.prompts import SEEN_TEMPLATES, UNSEEN_TEMPLATES, parse_prompt_choice
from recbole_llm.editing.task_vector import TaskVector, WeightEditor, load_state, save_state
from recbole_llm.editing.trainer import PrefixBudgetMixin, last_rows_per_user
from recbole_llm.editing.trie import Trie

from conftest import FAST as QUIET_ONE_EPOCH
from oie_helpers import single_thread

MINI_RAW = Path(__file__).resolve().parent / "data" / "raw"
FIXTURE = "lastfm"  # tests/data/raw/lastfm: 30 users, 198 artists; the next play repeats the last one for 70%
FAST = {
    **QUIET_ONE_EPOCH,
    "backbone": "random-t5",
    "MAX_ITEM_LIST_LENGTH": 1,
    "beam_size": 10,
    "train_batch_size": 8,
    "sample_num": 2,
    "learning_rate": 0.002,
    "train_prefixes_per_user": None,
    "eval_batch_size": 400000,
    "seed": 2020,
    "reproducibility": True,
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(folder, config, train, valid, test, model): P5Edit with random-t5 on the mini Last.fm file, untrained."""
    from recbole_llm.config import Config
    from recbole_llm.quick_start import build

    folder = tmp_path_factory.mktemp("p5edit")
    with chdir(folder), single_thread():
        config = Config(
            "P5Edit", FIXTURE, config_dict={**FAST, "data_path": str(folder / "data"), "raw_data_path": str(MINI_RAW)}
        )
        _, train_data, valid_data, test_data, model, _ = build(config)
    return folder, config, train_data, valid_data, test_data, model


def first_batch(data):
    """The first batch's interaction (evaluation loaders yield tuples)."""
    batch = next(iter(data))
    return batch[0] if isinstance(batch, tuple) else batch


def test_trie_allows_only_stored_sequences():
    trie = Trie([[5, 7, 1], [5, 8, 1], [6, 1]])
    assert sorted(trie.allowed([])) == [5, 6]
    assert sorted(trie.allowed([5])) == [7, 8]
    assert trie.allowed([5, 7, 1]) == [] and trie.allowed([9]) == []
    assert [5, 7, 1] in trie and [5, 7] not in trie
    with pytest.raises(ValueError):
        trie.add([])


def test_beam_search_yields_only_valid_distinct_items(tiny):
    _, config, _, valid_data, _, model = tiny
    interaction = first_batch(valid_data)[:8]
    model.eval()
    with single_thread():
        scores = model.full_sort_predict(interaction)
    assert scores.shape == (8, model.n_items)
    finite = torch.isfinite(scores)
    assert (finite.sum(dim=1) == config["beam_size"]).all()  # beam_size distinct items per user
    assert not finite[:, 0].any()  # never the padding id
    model.beam_batch_size = 3  # searched in chunks of 3 users: the same scores
    with single_thread():
        assert torch.equal(model.full_sort_predict(interaction), scores)
    model.beam_batch_size = config["beam_batch_size"]
    prompts = model.prompts(interaction, [model.test_template] * 8)
    answers, _ = model.lm.beam_search(prompts, model.trie, config["beam_size"])
    assert all(tokens in model.trie and tokens in model.token_to_item for row in answers for tokens in row)


def test_sequential_indexing_numbers_items_by_first_appearance():
    history = np.array([[3, 1, 0], [3, 1, 4]])
    numbers = sequential_numbers(history, np.array([2, 3]), np.array([4, 2]), n_items=6)
    assert numbers.tolist() == [0, FIRST_INDEX + 1, FIRST_INDEX + 3, FIRST_INDEX, FIRST_INDEX + 2, FIRST_INDEX + 4]


def test_prompts_fill_openp5_templates(tiny):
    _, _, train_data, _, _, model = tiny
    interaction = first_batch(train_data)[:2]
    prompt = model.prompts(interaction, [UNSEEN_TEMPLATES[0]] * 2)[0]
    assert prompt.startswith(f"What is the top recommended item for {FIXTURE} user_")
    history = interaction[model.ITEM_SEQ][0, : interaction[model.ITEM_SEQ_LEN][0]]
    assert " , ".join(str(model.item_numbers[i]) for i in history.tolist()) in prompt
    assert len(SEEN_TEMPLATES) == 10 and parse_prompt_choice("seen:9") == ("seen", 9)
    with pytest.raises(ValueError, match="test_prompt 'unseen:1'"):
        parse_prompt_choice("unseen:1")


def test_arithmetic_answers_are_right_and_in_range():
    task = ArithmeticTask(1001, 1100, max_addend=9)
    examples = task.examples(300, seed=3)
    assert examples == task.examples(300, seed=3)
    for question, answer in examples:
        numbers = [int(token) for token in question.split() if token.isdigit()]
        assert 1001 <= int(answer) <= 1100 and all(1001 <= n <= 1100 for n in numbers if n > 9)
        if "after" in question or "follows" in question:
            assert int(answer) == numbers[0] + 1
        elif "before" in question or "precedes" in question or " - 1" in question:
            assert int(answer) == numbers[0] - 1
        else:
            assert int(answer) == sum(numbers)


def test_task_vector_arithmetic_is_exact(tiny, tmp_path):
    *_, model = tiny
    base = {k: v.clone() for k, v in model.state_dict().items()}
    base["counter"] = torch.tensor([3], dtype=torch.long)  # integer buffers are skipped
    generator = torch.Generator().manual_seed(0)
    tuned = {
        k: (v + 0.01 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v + 1)
        for k, v in base.items()
    }
    tau = TaskVector.between(base, tuned)
    assert "counter" not in tau.vector
    rebuilt = tau.apply_to(base)
    assert all(torch.equal(rebuilt[k], tuned[k]) for k in base if k != "counter")
    editor = WeightEditor(model)
    rec = {k: v.clone() for k, v in model.state_dict().items()}
    tau = TaskVector.between(rec, {k: v + 0.01 * torch.randn(v.shape, generator=generator) for k, v in rec.items()})
    for coef in (0.3, 1.0, 2.5):
        editor.add(tau, coef)
        assert not torch.equal(model.state_dict()["lm.model.shared.weight"], rec["lm.model.shared.weight"])
        editor.subtract(tau, coef)
        assert all(torch.equal(v, rec[k]) for k, v in model.state_dict().items())  # add, then subtract: bit for bit
    twice = (tau + tau) - tau
    assert all(torch.equal(twice.vector[k], tau.vector[k]) for k in tau.vector)
    assert all(torch.equal((2 * tau).vector[k], (tau + tau).vector[k]) for k in tau.vector)
    tau.save(tmp_path / "tau.pt")
    loaded = TaskVector.load(tmp_path / "tau.pt")
    assert all(torch.equal(loaded.vector[k], tau.vector[k]) for k in tau.vector)
    save_state(base, tmp_path / "theta0.pt")
    assert all(torch.equal(load_state(tmp_path / "theta0.pt")[k], base[k]) for k in base)


def test_lambda_zero_reproduces_the_rec_scores(tiny):
    *_, valid_data, _, model = tiny
    rec = {k: v.clone() for k, v in model.state_dict().items()}
    tau = TaskVector({k: torch.randn(v.shape) for k, v in rec.items() if v.is_floating_point()})
    interaction = first_batch(valid_data)[:6]
    model.eval()
    with single_thread():
        expected = model.full_sort_predict(interaction)
        model.load_state_dict(tau.apply_to(rec, 0.0))
        again = model.full_sort_predict(interaction)
        model.load_state_dict(tau.apply_to(rec, 1.0))
        moved = model.full_sort_predict(interaction)
        model.load_state_dict(rec)
    assert torch.equal(again, expected)
    assert not torch.equal(moved, expected)


def test_prefix_budget_keeps_each_users_last_rows():
    users = np.array([1, 1, 1, 2, 3, 3])
    assert last_rows_per_user(users, 2).tolist() == [1, 2, 3, 4, 5]
    assert last_rows_per_user(users, 1).tolist() == [2, 3, 5]


def test_one_epoch_beats_random(tiny):
    """One epoch on every training prefix (2 prompts each) ranks the held-out next item well above chance."""
    folder, config, train_data, valid_data, test_data, model = tiny
    theta0 = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = type("P5EditTrainer", (PrefixBudgetMixin, Trainer), {})(config, model)
    with chdir(folder), single_thread():
        trainer.fit(train_data, None, verbose=False, saved=False)
        test = trainer.evaluate(test_data, load_best_model=False)
        users = per_user_metrics(model, test_data, config)
    model.load_state_dict(theta0)
    assert set(test) == {"hit@5", "hit@10", "ndcg@5", "ndcg@10"} and all(math.isfinite(v) for v in test.values())
    assert test["hit@10"] > 2 * 10 / (model.n_items - 1)  # twice a random ranking's expected hit@10
    assert np.isclose(users["ndcg@10"].mean(), test["ndcg@10"], atol=1e-4)  # per-user = RecBole's evaluator


def _save_tiny_model(kind: str, folder):
    """A random tiny T5 or GPT-2 folder (``save_pretrained``) with the bundled MiniLM tokenizer."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    from recbole_llm.text.encoder import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    torch.manual_seed(0)
    if kind == "seq2seq":
        config = T5Config(
            vocab_size=len(tokenizer),
            d_model=32,
            d_ff=64,
            d_kv=16,
            num_heads=2,
            num_layers=1,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.sep_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
        )
        model = T5ForConditionalGeneration(config)
    else:
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_embd=32,
            n_layer=1,
            n_head=2,
            n_positions=128,
            eos_token_id=tokenizer.sep_token_id,
            bos_token_id=tokenizer.cls_token_id,
        )
        model = GPT2LMHeadModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["seq2seq", "causal"])
def test_local_model_folders_train_and_search(kind, tmp_path):
    from recbole_llm.editing.backbone import LanguageModel

    lm = LanguageModel(str(_save_tiny_model(kind, tmp_path / kind)), "unused", {}, max_prompt_tokens=64)
    assert lm.is_encoder_decoder == (kind == "seq2seq")
    targets = [lm.target_tokens(str(n)) for n in range(1001, 1031)]
    trie = Trie(targets)
    prompts = ["What would user_3 buy after items 1004 , 1007 ?", "What is 1010 + 1 ?"]
    loss = lm.loss(prompts, targets[:2])
    loss.backward()
    assert torch.isfinite(loss) and lm.model.get_input_embeddings().weight.grad is not None
    lm.eval()
    answers, scores = lm.beam_search(prompts, trie, num_beams=5)
    assert scores.shape == (2, 5) and torch.isfinite(scores).all()
    assert all(tokens in trie for row in answers for tokens in row)
    assert all(len(set(row)) == 5 for row in answers)


def test_arithmetic_exact_match_counts_right_first_beams():
    from recbole_llm.editing.arithmetic import exact_match

    class EchoLM:  # answers "1005" to everything
        def target_tokens(self, text):
            return [int(text), 0]

        def beam_search(self, prompts, trie, num_beams):
            return [[(1005, 0), (1006, 0)] for _ in prompts], None

    examples = [("What is 1004 + 1 ?", "1005"), ("What is 1007 - 1 ?", "1006"), ("q", "1005"), ("q", "1010")]
    assert exact_match(EchoLM(), None, examples, batch_size=3) == 0.5


def test_experiment_resumes_from_committed_results(tmp_path, monkeypatch, capsys):
    """The experiment end to end: a report with every arm; a seed killed half-way recomputes only what is missing;
    a finished seed is skipped without data, model or states (they live in the wiped ``--work-dir``)."""
    import json
    import shutil

    from recbole_llm.editing import experiment
    from recbole_llm.editing.report import ARMS

    argv = [*_tiny_experiment_argv(tmp_path), f"--out={tmp_path / 'r.md'}"]
    seed_file = tmp_path / "results" / FIXTURE / "seed2020.json"
    with chdir(tmp_path), single_thread():
        assert experiment.main(argv) == 0
        report = (tmp_path / "r.md").read_text()
        assert all(f"| {arm} | {prompt} |" in report for arm in ARMS for prompt in ("seen", "unseen"))
        done = json.loads(seed_file.read_text())
        assert done["complete"] is True and (tmp_path / "results" / FIXTURE / "run.json").is_file()
        assert all(0 < done[f"{arm}/test/seen:0"]["distinct_lists"] <= 1 for arm in ARMS)
        assert "| distinct top-10 lists |" in report
        assert f"--results-dir={tmp_path / 'results'} --out={tmp_path / 'r.md'}`" in report  # reruns to these files
        assert not list((tmp_path / "work").rglob("*.json"))  # only states and checkpoints there
        run_file = tmp_path / "results" / FIXTURE / "run.json"
        ran = run_file.read_text()
        assert experiment.main([*argv, "--device=cuda"]) == 0  # nothing to run: only the report is rebuilt
        assert run_file.read_text() == ran  # the run it reports keeps its minutes and device

        def no_training(*_):
            raise AssertionError("trained again")

        evaluated = []
        original_ranked_lists = experiment.ranked_lists
        monkeypatch.setattr(experiment, "exact_match", no_training)
        monkeypatch.setattr(experiment, "ranked_lists", lambda *a: evaluated.append(1) or original_ranked_lists(*a))
        monkeypatch.setattr(experiment.SeedRun, "train_rec", no_training)
        monkeypatch.setattr(experiment.SeedRun, "train_arith", no_training)
        killed = {key: value for key, value in done.items() if key not in ("complete", "joint/test/unseen:0")}
        seed_file.write_text(json.dumps(killed))  # as if killed before the last test evaluation
        assert experiment.main(argv) == 0
        assert len(evaluated) == 1 and json.loads(seed_file.read_text()) == done  # recomputed: that key alone
        stored = seed_file.read_bytes()
        other_weights = {**killed, "state/joint": "0" * 16}  # results computed from a joint state not on disk
        seed_file.write_text(json.dumps(other_weights))
        with pytest.raises(experiment.StateMismatch, match=r"joint\.pt .* not the joint state"):
            experiment.main(argv)
        assert json.loads(seed_file.read_text()) == other_weights  # nothing evaluated with the other weights
        seed_file.write_bytes(stored)
        shutil.rmtree(tmp_path / "work")  # the machine is wiped: states gone, committed results kept
        monkeypatch.setattr(experiment.SeedRun, "__init__", no_training)
        assert experiment.main(argv) == 0
    assert seed_file.read_bytes() == stored
    assert f"{FIXTURE} seed 2020 done: lambda* = {done['lambda']} (stored)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--lambdas=0,a", "not a comma-separated list of numbers"),
        ("--lambdas=0,nan", "not finite"),
        ("--config-json={bad", "not valid JSON"),
        ("--config-json=[1]", "not a JSON object"),
        ("--seeds=0", "not a whole number >= 1"),
        ("--epochs=-1", "not a whole number >= 1"),
        ("--prefixes-per-user=-3", "not a whole number >= 0"),
    ],
)
def test_bad_experiment_flags_are_one_line_errors(flag, message, capsys):
    """A typo in a flag stops the experiment at parse time with argparse's message, before any data is built."""
    from recbole_llm.editing import experiment

    with pytest.raises(SystemExit) as stopped:
        experiment.parse_args([flag])
    assert stopped.value.code == 2 and message in capsys.readouterr().err
    kept = experiment.parse_args(["--lambdas=0,.5", '--config-json={"seed": 1}'])
    assert (kept.lambdas, kept.config_json) == ("0,.5", '{"seed": 1}')  # stored as typed: settings keys unchanged


def test_state_fingerprint_tells_one_ulp_apart():
    """Equal for a copy, different for one float changed in its last bit; bf16, bool and 0-d tensors hash too."""
    from recbole_llm.editing.task_vector import state_fingerprint

    state = {"w": torch.randn(3, 4), "n": torch.arange(3), "b": torch.tensor([True]), "s": torch.tensor(1.5)}
    state["h"] = torch.randn(2, 2, dtype=torch.bfloat16)
    assert state_fingerprint({k: v.clone() for k, v in state.items()}) == state_fingerprint(state)
    nudged = {**state, "w": state["w"].clone()}
    nudged["w"][0, 0] = torch.nextafter(nudged["w"][0, 0], torch.tensor(math.inf))
    assert state_fingerprint(nudged) != state_fingerprint(state)
    assert state_fingerprint({**state, "w": state["w"].reshape(4, 3)}) != state_fingerprint(state)


def test_distinct_share_tells_a_prompt_blind_recommender():
    """One list for every user (the item prior a briefly trained generator falls back on) vs all different."""
    from recbole_llm.editing.evaluation import distinct_share

    same = np.array([[3, 1, 2], [1, 2, 3], [2, 3, 1], [3, 2, 1]])
    assert distinct_share(same) == 0.25
    assert distinct_share(np.array([[1, 2], [2, 3], [3, 4]])) == 1.0


def _tiny_experiment_argv(tmp_path) -> list[str]:
    """The experiment's flags for the mini Last.fm file with random-t5: seconds, not hours."""
    import json

    extra = {key: FAST[key] for key in ("sample_num", "learning_rate", "eval_batch_size", "state", "reproducibility")}
    extra.update(raw_data_path=str(MINI_RAW), data_path=str(tmp_path / "data"), train_batch_size=64)
    argv = [f"--dataset={FIXTURE}", "--backbone=random-t5", "--epochs=1", "--seeds=1", "--lambdas=0,1"]
    argv += ["--beam-size=10", "--max-his=1", "--prefixes-per-user=0", f"--config-json={json.dumps(extra)}"]
    return argv + [f"--work-dir={tmp_path / 'work'}", f"--results-dir={tmp_path / 'results'}"]


def test_results_of_other_settings_are_refused_not_reused(tmp_path):
    """A seed stored with --epochs=1 is neither skipped nor resumed by a run asking --epochs=2 (one clear error)."""
    import json

    from recbole_llm.editing import experiment

    argv = _tiny_experiment_argv(tmp_path)
    stored = experiment.parse_args(argv)
    seed_file = experiment.results_file(stored, 2020)
    seed_file.parent.mkdir(parents=True)
    seed_file.write_text(json.dumps({"settings": experiment.settings(stored), "complete": True, "lambda": 0.0}))
    assert experiment.stored_results(stored, 2020)["complete"] is True
    other = experiment.parse_args([*argv, "--epochs=2"])
    assert experiment.settings_key(other) != experiment.settings_key(stored)  # states in another folder too
    with pytest.raises(experiment.SettingsMismatch, match=r"epochs differ.*another --results-dir"):
        experiment.main([*argv, "--epochs=2", f"--out={tmp_path / 'r.md'}"])
    seed_file.write_text(json.dumps({"complete": True, "lambda": 0.0}))  # made before settings were stored
    with pytest.raises(experiment.SettingsMismatch):
        experiment.stored_results(stored, 2020)


def test_probe_scores_the_rec_arm_on_validation_only(tmp_path, monkeypatch):
    """The probe trains rec alone, stores validation figures only, lists them, and reads them back on a rerun."""
    import json

    from recbole_llm.editing import experiment, probe

    argv = _tiny_experiment_argv(tmp_path)
    with chdir(tmp_path), single_thread():
        assert probe.main(argv) == 0
        table = (tmp_path / "results" / FIXTURE / "probes.md").read_text()
        (seed_file,) = (tmp_path / "results" / "probes").glob(f"*/{FIXTURE}/seed2020.json")
        results = json.loads(seed_file.read_text())
        assert "rec/valid/seen:0" in results and not any("/test/" in key for key in results)
        assert 0 < results["rec/valid/seen:0"]["distinct_lists"] <= 1
        assert table.count("\n| random-t5 | 1 | all | 1 |") == 1

        def no_training(*_):
            raise AssertionError("trained again")

        monkeypatch.setattr(experiment.SeedRun, "train_rec", no_training)
        assert probe.main(argv) == 0
        # Another results folder reuses the trained state and still reports its training seconds.
        assert probe.main([*argv, f"--results-dir={tmp_path / 'elsewhere'}"]) == 0
        (elsewhere,) = (tmp_path / "elsewhere" / "probes").glob(f"*/{FIXTURE}/seed2020.json")
        assert json.loads(elsewhere.read_text())["time/rec"] == pytest.approx(results["time/rec"])
    assert json.loads(seed_file.read_text()) == results


def test_probe_row_of_a_state_without_kept_seconds_says_na():
    """Results whose rec state was trained before its seconds were kept still give a table row."""
    from recbole_llm.editing import probe

    settings = {"backbone": "random-t5", "epochs": 3, "prefixes_per_user": 0, "max_his": 10, "config": {}}
    valid = {"ndcg@10": [0.0, 1.0], "hit@10": [0.0, 1.0], "distinct_lists": 0.5}
    row = probe.probe_row({"settings": settings, "rec/valid/seen:0": valid})
    assert row.endswith("| 0.500 | n/a |") and "| all |" in row
