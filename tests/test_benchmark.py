"""Benchmark suites: a tiny suite end to end, and runs killed half-way that resume without repeating work.

The suite's runs share what they can: one killed-and-resumed run of the tiny suite (fixture ``tiny_suite``)
serves both the end-to-end test and the kill test, one small local Ray serves every search run in this
process, and every run trains on one thread.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from contextlib import chdir
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from recbole_llm.benchmark import BenchmarkError, MinEpochsMixin, SuiteError, load_suite, restrict, run_suite
from recbole_llm.benchmark.stages import Workspace
from recbole_llm.benchmark.store import ResultStore

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TINY = PROJECT_ROOT / "benchmarks" / "suites" / "tiny.yaml"
SUITES = sorted((TINY.parent).glob("*.yaml"))
# Stage (a) of the tiny suite for LightGCN: python -c TUNE_LIGHTGCN <suite> <store.jsonl> <work dir>.
TUNE_LIGHTGCN_CTRL_C_AFTER_FIRST_TRIAL = """
import sys
from pathlib import Path
from recbole_llm.benchmark import load_suite
from recbole_llm.benchmark.stages import Workspace, tune_model
from recbole_llm.benchmark.store import ResultStore


class CtrlCOnceATrialIsStored(ResultStore):
    # Ctrl+C the moment the first trial is on disk, in Tune's loop (where the trial is stored): a signal sent
    # from outside after polling the store could come after the second, short trial had also finished, and
    # one sent to itself lands wherever the main thread is next (once in 4 full runs, inside Ray code that
    # let the search run on). Raised here, the interrupt reaches Tune's loop at one known place.
    def add(self, entry):
        super().add(entry)
        if entry["kind"] == "trial":
            raise KeyboardInterrupt


suite = load_suite(sys.argv[1])
ws = Workspace(suite, CtrlCOnceATrialIsStored(sys.argv[2]), Path(sys.argv[3]), "test")
tune_model(ws, suite.datasets[0], suite.models[0])
"""


class Interrupted(Exception):
    """Stands for a kill: raised from the store hook once the first final run is on disk."""


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Final runs (spawned children) and Ray's trials train on one thread: on a 2-core machine shared with
    other work, torch's thread per core made a LightGCN epoch of the tiny suite 8 s instead of 0.6 s."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        yield


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray of 1 CPU (the tiny suite's ``ray_num_cpus``) for every search run in this process; a
    search finds it running and leaves it (the start of its own Ray is exercised by the child process of
    ``test_interrupted_tuning_resumes_on_a_fresh_machine_without_rerunning_stored_trials``)."""
    import ray

    from recbole_llm.compat import shutdown_ray
    from recbole_llm.tune.runner import FORWARDED_ENV

    shutdown_ray()
    env_vars = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    ray.init(
        address="local",
        num_cpus=1,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": env_vars},
    )
    yield
    shutdown_ray()


def _stored(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "tiny.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def tiny_suite(local_ray, tmp_path_factory):
    """The tiny suite run end to end the way a kill leaves it: interrupted once its first final run is stored
    (job 2 of its 6: LightGCN's tuning, then LightGCN seed 2020), then run again to its end.

    ``before``: the store the kill left; ``stored_again``: what the rerun stored, in order; ``late``: entries
    the store hook saw before they were on disk (a kill there would lose a finished job: must stay empty).
    """
    root = tmp_path_factory.mktemp("tiny_suite")
    output, work = root / "results", root / "work"
    late: list[dict] = []

    def check_on_disk(entry):
        if entry["key"] not in ResultStore(output / "tiny.jsonl"):
            late.append(entry)

    def interrupt_after_first_run(entry):
        check_on_disk(entry)
        if entry["kind"] == "run":
            raise Interrupted

    stored_again: list[dict] = []

    def store_again(entry):
        check_on_disk(entry)
        stored_again.append(entry)

    with chdir(root):  # RecBole writes log folders into the working directory
        with pytest.raises(Interrupted):
            run_suite(load_suite(TINY), output, work, "test", interrupt_after_first_run)
        before = _stored(output)
        report = run_suite(load_suite(TINY), output, work, "test", store_again)
    return SimpleNamespace(output=output, report=report, before=before, stored_again=stored_again, late=late)


def _stored_trials(store: Path) -> list[dict]:
    """The tuning trials in a store file, read as a rerun would (a line cut by a kill left out)."""
    return ResultStore(store).entries("trial") if store.is_file() else []


def _search_interrupted_once_a_trial_is_stored(child: subprocess.Popen, store: Path, log: Path) -> list[dict]:
    """Wait for ``child`` (it presses Ctrl+C on itself once a trial is stored); returns the stored trials."""
    try:
        code = child.wait(timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the search was not interrupted in 300 s:\n{log.read_text()[-3000:]}")
    assert code != 0, f"the interrupted search ran to its end:\n{log.read_text()[-3000:]}"
    return _stored_trials(store)


def test_tiny_suite_end_to_end(tiny_suite):
    """2 models x 1 dataset x 2 trials x 2 seeds tuned, trained and reported: the store, table, report and plots
    that ``tiny_suite``'s run (killed half-way, then run again) leaves at its end."""
    report, entries = tiny_suite.report, _stored(tiny_suite.output)
    assert sorted(e["kind"] for e in entries) == ["run"] * 4 + ["trial"] * 4 + ["trials"] * 2
    assert {(e["model"], e["seed"]) for e in entries if e["kind"] == "run"} == {
        (m, s) for m in ("LightGCN", "BPR") for s in (2020, 2021)
    }
    sets = [e for e in entries if e["kind"] == "trials"]
    assert all(e["budget"] == 2 and e["best_params"] and e["searches"] == 1 and "note" not in e for e in sets)
    for trial_set in sets:  # the set sums up its stored trials: the best one's values and score
        trials = [e for e in entries if e["kind"] == "trial" and e["set_key"] == trial_set["key"]]
        assert len(trials) == 2 and trial_set["completed"] == 2
        best = max(trials, key=lambda t: t["best_valid_score"])
        assert (trial_set["best_params"], trial_set["best_valid_score"]) == (best["params"], best["best_valid_score"])
    text = report.read_text()
    assert "Strongest tuned baseline by validation ndcg@10: BPR" in text
    assert "- LightGCN vs BPR on test ndcg@10:" in text and "| BPR | 2 / 2 |" in text
    assert "- The paper's claim: none (a suite for the tests)" in text and "- Note: Its numbers mean nothing" in text
    assert "final runs" in text and "min." in text  # the time the suite took, beside the tuning time
    table = pd.read_csv(tiny_suite.output / "tiny.csv")
    assert {"ndcg@10", "recall@10", "best_epoch", "epochs", "epoch_time_s", "peak_memory_mb", "flags"} <= set(table)
    assert (table["epochs"] <= 2).all() and table["flags"].fillna("").str.contains("hit epoch cap|best in first").any()
    for png in ("tiny.png", "tiny_curves.png"):
        assert (tiny_suite.output / png).read_bytes()[:4] == b"\x89PNG"


def test_killed_suite_resumes_without_repeating_finished_runs(tiny_suite, tmp_path):
    """The kill of ``tiny_suite`` lost nothing finished (each entry was on disk when the store hook saw it, before
    the next job began) and its rerun ran only the jobs left: the other LightGCN seed, BPR's tuning and seeds."""
    before, stored_again = tiny_suite.before, tiny_suite.stored_again
    assert [e["kind"] for e in before] == ["trial", "trial", "trials", "run"]
    assert not tiny_suite.late, "an entry reached the store hook before it was on disk"
    after = _stored(tiny_suite.output)
    assert len(after) == 10 and len({e["key"] for e in after}) == 10
    assert {e["key"] for e in before}.isdisjoint(e["key"] for e in stored_again)
    assert [e["kind"] for e in stored_again] == ["run", "trial", "trial", "trials", "run", "run"]

    # The demo's mode: the stored tunings, fresh final runs of a subset in another folder, no search.
    demo_stored = []
    suite = restrict(load_suite(TINY), models="LightGCN", seeds="1")
    run_suite(
        suite,
        tmp_path / "demo",
        tmp_path / "demo_work",
        "test",
        demo_stored.append,
        tuned_from=tiny_suite.output / "tiny.jsonl",
    )
    assert [(e["kind"], e["model"], e["seed"]) for e in demo_stored] == [("run", "LightGCN", 2020)]


def test_interrupted_tuning_resumes_on_a_fresh_machine_without_rerunning_stored_trials(local_ray, tmp_path):
    """Ctrl+C once the first of LightGCN's 2 trials is stored (while the search runs, in a child process that
    starts its own Ray), then the Ray folder is deleted (another machine: only the store is committed): the
    rerun (here, on this process' Ray) runs only the second trial and stores the set of the 2 configurations
    drawn from the seed, noting that 2 searches ran them."""
    from recbole_llm.benchmark.stages import Workspace, tune_model
    from recbole_llm.tune.space import load_search_space, sample_configs

    store, work, log = tmp_path / "tiny.jsonl", tmp_path / "work", tmp_path / "first_run.log"
    command = [sys.executable, "-c", TUNE_LIGHTGCN_CTRL_C_AFTER_FIRST_TRIAL, str(TINY), str(store), str(work)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    with log.open("w") as handle:
        child = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT)
        try:
            [first] = _search_interrupted_once_a_trial_is_stored(child, store, log)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert "KeyboardInterrupt" in log.read_text()
    assert not ResultStore(store).entries("trials")  # the cut-short search is not stored as the tuning
    assert [t["key"] for t in _stored_trials(store)] == [first["key"]]  # the running trial was not stored
    shutil.rmtree(work)

    suite = load_suite(TINY)
    with chdir(tmp_path):  # the store keeps the search folder relative to the working folder
        tune_model(Workspace(suite, ResultStore(store), work, "test"), suite.datasets[0], suite.models[0])
    trials = _stored_trials(store)
    assert len(trials) == 2 and trials[0] == first and trials[1]["search"] != first["search"]  # one new trial
    [entry] = ResultStore(store).entries("trials")
    assert entry["model"] == "LightGCN" and entry["completed"] == 2 and entry["searches"] == 2
    assert entry["note"].startswith("trials stored by 2 searches")
    space = load_search_space(TINY.parent / "search" / "tiny_LightGCN.yaml")
    assert sorted(t["params"]["learning_rate"] for t in trials) == sorted(
        c["learning_rate"]
        for c in sample_configs(space, 2, seed=2020)  # RecBole's default seed
    )
    assert not Path(entry["trials_file"]).is_absolute()
    search = tmp_path / entry["trials_file"]
    assert len(pd.read_csv(search / "trials.csv")) == 1 and len(list((search / "ray").glob("trainable_*"))) == 1
    assert "1 trial(s) of the budget stored by an earlier search" in (search / "trials.md").read_text()
    assert not list((search / "snapshots").glob("*"))  # every trial ended: no snapshot left to resume


def test_random_search_configurations_follow_the_seed_alone():
    """The configurations a random search runs are drawn before Ray starts, from the seed only: two calls give
    the same list (a rerun on another machine knows which are stored), another seed another list; a
    configuration drawn twice is run once; each sample covers every grid combination, as in Ray."""
    from recbole_llm.tune.space import load_search_space, sample_configs

    space = load_search_space(
        {"learning_rate": {"loguniform": [1.0e-4, 1.0e-2]}, "n_layers": {"grid": [1, 2]}, "k": {"choice": [8, 16]}}
    )
    first = sample_configs(space, 3, seed=7)
    assert first == sample_configs(space, 3, seed=7) != sample_configs(space, 3, seed=8)
    assert len(first) == 6 and [c["n_layers"] for c in first] == [1, 2] * 3 and list(first[0]) == list(space)
    assert all(1.0e-4 <= c["learning_rate"] <= 1.0e-2 and type(c["learning_rate"]) is float for c in first)
    small = load_search_space({"learning_rate": {"choice": [0.001, 0.01]}})
    assert sorted(c["learning_rate"] for c in sample_configs(small, 5, seed=7)) == [0.001, 0.01]


def test_ledger_keeps_finished_trials_only():
    """What a ledger gets of a search's trials (the store's ``trial`` entries; through Ray Client all at the end):
    a trial that ran to its end is completed, one ASHA stopped is stopped early, errored or silent ones are left."""
    from types import SimpleNamespace

    from recbole_llm.tune.ledger import store_results

    class Ledger:
        def __init__(self):
            self.added = []

        def add(self, params, outcome):
            self.added.append((params, outcome["status"], outcome["reports"], outcome["best_epoch"]))

    def result(lr, metrics, error=None):
        return SimpleNamespace(config={"learning_rate": lr, "other": 1}, metrics=metrics, error=error, path=f"/t/{lr}")

    report = {"best_valid_score": 0.3, "best_epoch": 0, "finished": True, "training_iteration": 2, "epoch": 2}
    ledger = Ledger()
    results = [
        result(0.1, report),
        result(0.2, {**report, "finished": False, "training_iteration": 1}),
        result(0.3, report, error=RuntimeError("boom")),
        result(0.4, {}),
        result(0.5, {k: v for k, v in report.items() if k != "best_epoch"}),  # reported before best_epoch existed
    ]
    store_results(ledger, results, ["learning_rate"])
    assert ledger.added == [
        ({"learning_rate": 0.1}, "completed", 2, 0),
        ({"learning_rate": 0.2}, "stopped early", 1, 0),
        ({"learning_rate": 0.5}, "completed", 2, None),
    ]


def test_final_stage_without_a_stored_tuning_is_an_error(tmp_path):
    suite = restrict(load_suite(TINY), models="BPR", seeds="1")
    with pytest.raises(BenchmarkError, match="no stored tuning of BPR on ml-100k"):
        run_suite(suite, tmp_path / "out", tmp_path / "work", "test", tuned_from=tmp_path / "none.jsonl")
    with pytest.raises(SuiteError, match="--models: SASRec not in suite tiny"):
        restrict(load_suite(TINY), models="SASRec")


def test_changed_setting_gives_new_keys(tmp_path):
    """A key follows the resolved configuration: another learning rate is another run."""
    from recbole_llm.benchmark.store import content_key, resolved_config

    first = content_key("run", "BPR", {"config": resolved_config("BPR", "ml-100k", None, {"learning_rate": 0.01})})
    same = content_key("run", "BPR", {"config": resolved_config("BPR", "ml-100k", None, {"learning_rate": 0.01})})
    other = content_key("run", "BPR", {"config": resolved_config("BPR", "ml-100k", None, {"learning_rate": 0.02})})
    moved = content_key(
        "run",
        "BPR",
        {"config": resolved_config("BPR", "ml-100k", None, {"learning_rate": 0.01, "checkpoint_dir": "x"})},
    )
    assert first == same == moved and first != other


def test_trial_order_flag_keeps_the_trial_set_key(tmp_path):
    """``--trials_last=2`` changes only the order of a search's trials, so its stored trials still count."""
    from recbole_llm.benchmark import split_overrides
    from recbole_llm.benchmark.stages import Workspace, trial_set_key

    suite = load_suite(TINY)
    _, tuning = split_overrides(["--trials_last=2"])
    reordered = dataclasses.replace(suite, tuning={**suite.tuning, **tuning})
    assert tuning == {"trials_last": 2}

    def key(s):
        ws = Workspace(s, ResultStore(tmp_path / "s.jsonl"), tmp_path / "work", "test")
        return trial_set_key(ws, s.datasets[0], s.models[0], ws.fixed_config_file(s.datasets[0], s.models[0]))

    with chdir(tmp_path):
        assert key(reordered) == key(suite)
        assert key(dataclasses.replace(suite, tuning={**suite.tuning, "reduction_factor": 2.0})) != key(suite)


def test_key_follows_how_a_named_dataset_is_converted(monkeypatch):
    """Another sampling rule of a converted dataset is another run; RecBole's ml-100k keeps keys without it."""
    from recbole_llm.benchmark import store
    from recbole_llm.data import named_datasets

    def key(dataset: str) -> str:
        store.data_version.cache_clear()
        return store.content_key("run", "BPR", {"dataset": dataset, "config": {"learning_rate": 0.01}})

    assert store.data_version("ml-100k") is None
    before = key("globo")
    assert key("globo") == before and key("amazon-games") != before
    monkeypatch.setitem(named_datasets.GLOBO_SUBSET, "min_article_clicks", 2)
    assert key("globo") != before
    store.data_version.cache_clear()


def test_store_survives_a_line_cut_by_a_kill(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"key": "a", "kind": "run"}) + "\n" + '{"key": "b", "ki')
    store = ResultStore(path)
    assert "a" in store and "b" not in store
    store.add({"key": "c", "kind": "run"})
    assert {"a", "c"} <= set(ResultStore(path)._entries)


@pytest.mark.parametrize("suite", SUITES, ids=[s.stem for s in SUITES])
def test_every_committed_suite_loads(suite):
    """Every committed suite names known models, datasets and existing search spaces, has baselines to test
    against, and a model with per-dataset settings has them for each of the suite's datasets."""
    from recbole_llm.benchmark.stages import search_space_path
    from recbole_llm.data.named_datasets import known_dataset_names
    from recbole_llm.utils import get_model

    loaded = load_suite(suite)
    assert loaded.trials >= 1 and loaded.seeds and loaded.min_epochs < loaded.epoch_cap
    assert any(m.baseline for m in loaded.models) and any(not m.baseline for m in loaded.models)
    datasets = {d.name for d in loaded.datasets}
    assert datasets <= set(known_dataset_names()) | {"ml-100k"}  # ml-100k ships inside RecBole
    for model in loaded.models:
        assert get_model(model.model).__name__ == model.model
        assert search_space_path(model.search_space).is_file()
        assert not model.per_dataset or set(model.per_dataset) == datasets, model.name


@pytest.mark.parametrize(
    "change, message",
    [
        ({"tuning": {"trials": 0}}, "'tuning.trials' must be >= 1"),
        ({"protocol": {"min_epochs": 5, "epochs": 5}}, "protocol.min_epochs (5) must be below protocol.epochs (5)"),
        ({"final": {"seeds": "x"}}, "'final.seeds' must be a count"),
        ({"report": {"claim": "x"}}, "'report' takes only 'paper' (text) and 'notes'"),
        ({"report": {"notes": "x"}}, "'report.notes' must be a list of texts"),
    ],
)
def test_bad_suite_is_one_clear_error(tmp_path, change, message):
    import yaml

    raw = yaml.safe_load(TINY.read_text())
    for section, values in change.items():
        raw[section] = {**raw[section], **values}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SuiteError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_suite(path)


def test_final_runs_side_by_side_store_the_same_runs_as_one_at_a_time(tiny_suite, tmp_path):
    """``--jobs=2`` (the demo's final stage on 2 cores): both models' seeds run two at a time from the stored
    tunings, each stored once under the key the one-at-a-time suite gave it, marked as run beside another."""
    stored: list[dict] = []
    with chdir(tmp_path):
        report = run_suite(
            load_suite(TINY),
            tmp_path / "out",
            tmp_path / "work",
            "test",
            stored.append,
            tuned_from=tiny_suite.output / "tiny.jsonl",
            jobs=2,
        )
    one_at_a_time = {(e["model"], e["seed"]): e["key"] for e in _stored(tiny_suite.output) if e["kind"] == "run"}
    assert sorted((e["model"], e["seed"]) for e in stored) == sorted(one_at_a_time)
    assert all(e["key"] == one_at_a_time[(e["model"], e["seed"])] for e in stored)
    assert all(e["status"] == "ok" and e["concurrent_jobs"] == 2 and e["threads"] >= 1 for e in stored)
    # RecBole names a checkpoint by model and second: seeds side by side must not share one file
    assert len({e["saved_model_file"] for e in stored}) == len(stored)
    assert "runs 2 at a time" in report.read_text()


@pytest.mark.parametrize("jobs", ["0", "two"])
def test_jobs_flag_must_be_a_positive_whole_number(tmp_path, capsys, jobs):
    import argparse

    import recbole_llm.benchmark as benchmark

    args = argparse.Namespace(benchmark=str(TINY), output=str(tmp_path))
    assert benchmark.run_from_cli(args, [f"--jobs={jobs}"]) == 2
    assert f"--jobs must be a whole number of at least 1, got '{jobs}'" in capsys.readouterr().err


def test_restricted_rerun_reports_the_whole_suite_from_the_store(tiny_suite, tmp_path):
    """A command restricted to one model (``--models=BPR``) runs nothing already stored and still reports every
    stored result of the suite, so it does not overwrite the report with its own rows only."""
    output = tmp_path / "results"
    shutil.copytree(tiny_suite.output, output)
    stored = _stored(output)
    whole = load_suite(TINY)
    with chdir(tmp_path):
        report = run_suite(restrict(whole, models="BPR"), output, tmp_path / "work", "only BPR", report_suite=whole)
    assert _stored(output) == stored  # nothing ran
    text = report.read_text()
    assert "| LightGCN" in text and "| BPR" in text and "every stored result of the suite" in text


def test_a_report_written_during_a_search_counts_its_stored_trials(tiny_suite, tmp_path):
    """A search on large data spans days and its trial set is stored only at its end: a report written meanwhile
    (here BPR's trial set and runs taken out of the store, its trials kept) says how many trials are stored."""
    output = tmp_path / "results"
    shutil.copytree(tiny_suite.output, output)
    entries = _stored(output)
    bpr_set = next(e for e in entries if e["kind"] == "trials" and e["model"] == "BPR")
    kept = [e for e in entries if e["key"] != bpr_set["key"] and not (e["kind"] == "run" and e["model"] == "BPR")]
    (output / "tiny.jsonl").write_text("".join(json.dumps(e) + "\n" for e in kept))
    trials = sum(e["kind"] == "trial" and e["set_key"] == bpr_set["key"] for e in kept)
    whole = load_suite(TINY)
    with chdir(tmp_path):
        report = run_suite(
            restrict(whole, models="LightGCN"), output, tmp_path / "work", "only LightGCN", report_suite=whole
        ).read_text()
    assert trials >= 1 and _stored(output) == kept  # nothing ran
    assert f"ml-100k: BPR (tuning, {trials} of {whole.trials} trials stored)" in report
    assert "not tuned yet" not in report


def test_cli_reports_the_whole_suite_except_for_a_final_stage_run_elsewhere(monkeypatch, tmp_path):
    """``--benchmark=... --models=BPR`` hands the whole suite to the report; ``--tuned_from`` (the demo: final runs
    in their own folder) reports only its own runs."""
    import argparse

    import recbole_llm.benchmark as benchmark

    seen = []
    monkeypatch.setattr(benchmark, "run_suite", lambda suite, *a, **k: seen.append((suite, k)) or tmp_path / "r.md")
    args = argparse.Namespace(benchmark=str(TINY), output=str(tmp_path))
    assert benchmark.run_from_cli(args, ["--models=BPR"]) == 0
    assert benchmark.run_from_cli(args, ["--models=BPR", f"--tuned_from={tmp_path / 's.jsonl'}"]) == 0
    (restricted, first), (_, second) = seen
    assert [m.name for m in restricted.models] == ["BPR"]
    assert [m.name for m in first["report_suite"].models] == ["LightGCN", "BPR"]
    assert second["report_suite"] is None


def test_a_model_runs_only_on_the_datasets_it_names(tmp_path, monkeypatch):
    """``datasets:`` on a model entry (LLM profiles exist for some datasets only): the stages tune and train
    it there alone, the progress bar counts only those jobs; a dataset the suite lacks is one clear error."""
    import yaml

    import recbole_llm.benchmark as benchmark

    raw = yaml.safe_load(TINY.read_text())
    raw["datasets"] = ["ml-100k", "amazon-gift-cards"]
    raw["models"][0]["datasets"] = ["ml-100k"]
    path = tmp_path / "some.yaml"
    path.write_text(yaml.safe_dump(raw))
    suite = load_suite(path)
    ran: list[tuple[str, str, int | None]] = []

    def tune(ws, dataset, model):
        ran.append((dataset.name, model.name, None))
        return {"best_params": {}}

    def final(ws, dataset, model, params, seed):
        ran.append((dataset.name, model.name, seed))
        return None, {"status": "ok"}

    monkeypatch.setattr(benchmark, "tune_model", tune)
    monkeypatch.setattr(benchmark, "final_run", final)
    bar = benchmark._progress(suite)
    assert bar.total == 3 * (1 + 2)
    benchmark._run_stages(Workspace(suite, ResultStore(tmp_path / "s.jsonl"), tmp_path, "test"), bar)
    expected = [("amazon-gift-cards", "BPR"), ("ml-100k", "BPR"), ("ml-100k", "LightGCN")]
    assert sorted({(d, m) for d, m, _ in ran}) == expected and len(ran) == 3 * (1 + 2)
    raw["models"][0]["datasets"] = ["ml-1m"]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SuiteError, match=r"model 'LightGCN' names datasets \['ml-1m'\] not in the suite"):
        load_suite(path)


def test_min_epochs_keeps_training_past_an_early_peak():
    """Scores that peak at epoch 0: patience 1 stops after 3 epochs, min_epochs 5 trains 5."""
    from recbole.trainer import Trainer

    from recbole_llm.config import Config
    from recbole_llm.data import create_dataset, data_preparation
    from recbole_llm.utils import get_model

    class Scripted(Trainer):
        def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
            self.trained.append(epoch_idx)
            return 0.0

        def _valid_epoch(self, valid_data, show_progress=False):
            return 1.0 / (1 + len(self.trained)), {"ndcg@10": 0.0}

    def epochs_trained(trainer_class, min_epochs):
        config = Config(
            "BPR",
            "ml-100k",
            config_dict={
                "epochs": 20,
                "stopping_step": 1,
                "min_epochs": min_epochs,
                "state": "ERROR",
                "use_gpu": False,
            },
        )
        train_data, valid_data, _ = data_preparation(config, create_dataset(config))
        trainer = trainer_class(config, get_model("BPR")(config, train_data._dataset))
        trainer.trained = []
        trainer.fit(train_data, valid_data, saved=False)
        return trainer.trained

    assert epochs_trained(Scripted, 5) == [0, 1, 2]
    assert epochs_trained(type("MinScripted", (MinEpochsMixin, Scripted), {}), 5) == [0, 1, 2, 3, 4]


def test_command_line_flags_split_into_run_settings_and_tuning_options():
    from recbole_llm.benchmark import split_overrides

    runs, tuning = split_overrides(["--device=cuda", "--learning_rate=0.01", "--cpus_per_trial=2", "--tag=abc"])
    assert runs == {"use_gpu": True, "learning_rate": 0.01, "tag": "abc"}
    assert tuning == {"gpus_per_trial": 1.0, "cpus_per_trial": 2}
    with pytest.raises(SuiteError, match="--device must be cuda or cpu"):
        split_overrides(["--device=tpu"])


def test_missing_suite_exits_2_with_one_line(tmp_path, capsys):
    from recbole_llm.benchmark import main

    assert main([str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_new_inert_defaults_leave_stored_keys_alone():
    """oie_permute_ids at its default computes what runs computed before it existed: it stays out of the key."""
    from recbole_llm.benchmark.store import INERT_DEFAULTS, resolved_config

    plain = resolved_config("SASRec", "ml-100k", None, {"train_neg_sample_args": None})
    assert not set(INERT_DEFAULTS) & set(plain)
    permuted = resolved_config("SASRec", "ml-100k", None, {"train_neg_sample_args": None, "oie_permute_ids": True})
    assert permuted["oie_permute_ids"] is True and "oie_permute_seed" not in permuted
    seeded = resolved_config(
        "SASRec", "ml-100k", None, {"train_neg_sample_args": None, "oie_permute_ids": True, "oie_permute_seed": 3}
    )
    assert seeded["oie_permute_seed"] == 3


def test_speed_only_settings_leave_keys_alone(tmp_path):
    """profile_batch_size changes how fast profiles are written, not them: a run's key does not follow it."""
    from recbole_llm.benchmark.store import SPEED_ONLY_KEYS, resolved_config

    quiet = {"profile_dir": str(tmp_path)}
    small, large = (resolved_config("P4R", "ml-100k", None, {**quiet, "profile_batch_size": n}) for n in (1, 64))
    assert small == large and small["profile_batch_size"] == SPEED_ONLY_KEYS["profile_batch_size"]


def test_equivalent_code_versions_point_at_stored_results(tmp_path, monkeypatch):
    """A model file listed as equivalent keys its runs under the stored version; any other edit gets new keys."""
    from recbole_llm.benchmark import store

    # read as a rerun reads them: a line a running benchmark is still writing is left out
    results = (PROJECT_ROOT / "benchmarks/results").glob("*.jsonl")
    stored = {entry.get("code") for f in results for entry in ResultStore(f).entries()}
    assert store.EQUIVALENT_CODE_VERSIONS
    for new, old in store.EQUIVALENT_CODE_VERSIONS.items():
        assert new != old and old in stored and new not in stored
    edited = tmp_path / "model.py"
    edited.write_text("class Model: pass\n")
    digest = store.hashlib.sha256(edited.read_bytes()).hexdigest()[:12]
    monkeypatch.setattr(store, "model_class", lambda name: type("Model", (), {}))
    monkeypatch.setattr(store.inspect, "getsourcefile", lambda cls: str(edited))
    monkeypatch.setitem(store.EQUIVALENT_CODE_VERSIONS, digest, "0123456789ab")
    try:
        store.model_code_version.cache_clear()
        assert store.model_code_version("Model") == "0123456789ab"
        store.model_code_version.cache_clear()
        edited.write_text("class Model: x = 1\n")
        assert store.model_code_version("Model") == store.hashlib.sha256(edited.read_bytes()).hexdigest()[:12]
    finally:
        store.model_code_version.cache_clear()  # no fake version left for the tests after this one


def _suite_with(tmp_path: Path, **lightgcn: object) -> Path:
    import yaml

    raw = yaml.safe_load(TINY.read_text())
    raw["models"][0].update(lightgcn)
    raw["models"][0]["search_space"] = str(TINY.parent / raw["models"][0]["search_space"])
    raw["models"][1]["search_space"] = str(TINY.parent / raw["models"][1]["search_space"])
    path = tmp_path / "variants.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "base, message", [("Nope", "variant_of 'Nope', not another model"), ("LightGCN", "not another")]
)
def test_variant_of_must_name_another_model(tmp_path, base, message):
    with pytest.raises(SuiteError, match=message):
        load_suite(_suite_with(tmp_path, variant_of=base))


def _fake_run(model: str, seed: int, test: float, early: float, consecutive: float | None = 0.126) -> dict:
    history = [[epoch, early * (1 + epoch / 10)] for epoch in range(8)]  # epoch 4 = after 5 epochs: 1.4 * early
    return {
        "model": model,
        "dataset": "ml-100k",
        "seed": seed,
        "status": "ok",
        "ndcg@10": test,
        "recall@10": test,
        "valid_ndcg@10": test,
        "best_epoch": 7,
        "epochs": 8,
        "epoch_time_s": 1.0,
        "peak_memory_mb": 100.0,
        "valid_history": history,
        "params": {},
        "test_consecutive_share": consecutive,
    }


def test_report_tests_each_variant_against_its_base_early_and_after_early_stopping(tmp_path):
    from recbole_llm.benchmark.report import _panel_title, curve_groups, write_suite_report

    suite = load_suite(_suite_with(tmp_path, variant_of="BPR"))
    runs = [_fake_run("BPR", s, 0.30, 0.10) for s in (2020, 2021, 2022)]
    runs += [_fake_run("LightGCN", s, t, 0.20) for s, t in zip((2020, 2021, 2022), (0.30, 0.31, 0.29))]
    report = write_suite_report(suite, tmp_path / "out", runs, [], [], "test").read_text()
    assert "Test targets whose item id is the previous item's id + 1: 12.6%" in report
    row = next(line for line in report.splitlines() if line.startswith("| LightGCN | BPR |"))
    # an early lead (+100% after 5 epochs) that is gone at the early-stopped checkpoint
    assert "0.2800 / 0.1400 (+100.0%)" in row and "0.3000 / 0.3000 (+0.0%, p = 1)" in row
    assert row.endswith("| no significant difference |")
    assert curve_groups(suite, ["LightGCN", "BPR"]) == [("BPR", ["BPR", "LightGCN"])]
    assert _panel_title("ml-100k", "BPR", suite) == "ml-100k: BPR and its variants"
    assert _panel_title("ml-100k", "", suite) == "ml-100k"
    assert (tmp_path / "out" / f"{suite.name}_curves.png").read_bytes()[:4] == b"\x89PNG"
    plain = write_suite_report(
        load_suite(TINY), tmp_path / "plain", [_fake_run("BPR", 2020, 0.3, 0.1, None)], [], [], "t"
    )
    assert "previous item's id + 1" not in plain.read_text() and "Variants against" not in plain.read_text()


def test_stored_checkpoint_paths_hold_no_machine_root(tmp_path, monkeypatch):
    """The committed store must not name this machine's folders: checkpoints under the working folder are
    kept relative to it, others by file name only."""
    from recbole_llm.benchmark.stages import portable_path, portable_record

    monkeypatch.chdir(tmp_path)
    inside = tmp_path / "saved" / "x" / "LightGCN.pth"
    assert portable_path(str(inside)) == "saved/x/LightGCN.pth"
    assert portable_path("/elsewhere/run/BPR.pth") == "BPR.pth"
    assert portable_path(None) is None
    record = {"saved_model_file": str(inside), "oie_history_file": str(inside.with_suffix(".oie.json")), "x": "/a"}
    assert portable_record(record) == {
        "saved_model_file": "saved/x/LightGCN.pth",
        "oie_history_file": "saved/x/LightGCN.oie.json",  # OIE's history beside the checkpoint, too
        "x": "/a",  # not a path field
    }


def test_a_dataset_may_raise_the_epoch_cap_and_runs_are_flagged_against_their_own(tmp_path):
    """A dataset that converges slowly gets its own ``epochs`` (measured convergence differs per dataset): its
    runs are flagged against that cap, the others against the protocol's, and the report line names both."""
    import yaml

    from recbole_llm.benchmark.report import flag_runs

    raw = yaml.safe_load(TINY.read_text())
    raw["datasets"] = ["ml-100k", {"name": "lastfm", "config": {"epochs": 1000}}]
    path = tmp_path / "caps.yaml"
    path.write_text(yaml.safe_dump(raw))
    suite = load_suite(path)
    cap, model, best = suite.epoch_cap, suite.models[0].name, suite.min_epochs  # a best epoch never flagged early
    assert suite.epoch_cap_on("lastfm", model) == 1000 and suite.epoch_cap_on("ml-100k", model) == cap
    runs = pd.DataFrame(
        [
            {"dataset": "ml-100k", "model": model, "epochs": cap, "best_epoch": best},
            {"dataset": "lastfm", "model": model, "epochs": cap, "best_epoch": best},
            {"dataset": "lastfm", "model": model, "epochs": 1000, "best_epoch": 999},
        ]
    )
    assert list(flag_runs(runs, suite)) == ["hit epoch cap", "", "hit epoch cap"]
    assert suite.caps_text() == f"{cap} (lastfm: 1000)"


def test_a_dataset_cap_at_or_below_min_epochs_is_one_clear_error(tmp_path):
    """A per-dataset cap is checked like the protocol's: early stopping needs epochs past ``min_epochs``."""
    import yaml

    raw = yaml.safe_load(TINY.read_text())
    raw["datasets"] = [{"name": "ml-100k", "config": {"epochs": raw["protocol"]["min_epochs"]}}]
    path = tmp_path / "cap.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SuiteError, match=r"epoch cap of 'LightGCN' on 'ml-100k' \(1\) must be above"):
        load_suite(path)


def test_a_report_written_part_way_says_what_is_still_to_run(tmp_path):
    """Suites run across days and their reports are committed part-way: the header and each unfinished dataset
    name what is missing, so a partial table is never read as the final one."""
    from recbole_llm.benchmark.report import write_suite_report

    suite = load_suite(TINY)
    trial_sets = [{"dataset": "ml-100k", "model": "BPR", "best_params": {}, "budget": 2}]
    partial = write_suite_report(
        suite, tmp_path / "partial", [_fake_run("BPR", 2020, 0.3, 0.1)], trial_sets, [], "t"
    ).read_text()
    assert "Status: partial" in partial
    assert "ml-100k: LightGCN (not tuned yet), BPR (tuned, 1 of 2 seeds)" in partial
    assert "**Partial**: not finished yet: LightGCN (not tuned yet), BPR (tuned, 1 of 2 seeds)." in partial
    trial_sets.append({"dataset": "ml-100k", "model": "LightGCN", "best_params": {}, "budget": 2})
    runs = [_fake_run(model, seed, 0.3, 0.1) for model in ("BPR", "LightGCN") for seed in suite.seeds]
    complete = write_suite_report(suite, tmp_path / "complete", runs, trial_sets, [], "t").read_text()
    assert "Status: complete" in complete and "Partial" not in complete


def test_a_part_way_verdict_also_gives_the_change_on_the_seeds_both_models_ran():
    """Part-way, the strongest baseline may have fewer seeds than the model: the paired test sees only the shared
    seeds, so the verdict line must give the change on them too, not only the change between unequal means."""
    from recbole_llm.benchmark.report import verdicts

    suite = load_suite(TINY)
    runs = [_fake_run("LightGCN", s, t, 0.1) for s, t in zip((2020, 2021, 2022), (0.40, 0.42, 0.50))]
    runs += [_fake_run("BPR", s, t, 0.1) for s, t in zip((2020, 2021), (0.30, 0.33))]
    (line,) = verdicts(pd.DataFrame(runs), suite, "ndcg@10", "BPR")
    assert "+39.7% over all seeds, +30.2% on the 2 shared seeds (paired t-test p = " in line
    (complete,) = verdicts(pd.DataFrame(runs[:2] + runs[3:]), suite, "ndcg@10", "BPR")
    assert "on test ndcg@10: +30.2% (paired t-test p = " in complete and "shared" not in complete


def test_a_metric_only_some_datasets_have_gets_no_empty_column():
    """CategoryDiversity exists where items have categories: the other datasets' tables must not show it as NaN."""
    from recbole_llm.compare import metric_columns

    runs = pd.DataFrame(
        [
            {"dataset": "ml-100k", "ndcg@10": 0.3, "categorydiversity@10": 0.6, "valid_ndcg@10": 0.2},
            {"dataset": "lastfm", "ndcg@10": 0.6, "valid_ndcg@10": 0.5},
        ]
    )
    assert metric_columns(runs) == ["ndcg@10", "categorydiversity@10"]
    assert metric_columns(runs[runs["dataset"] == "lastfm"]) == ["ndcg@10"]


def test_popularity_counts_get_their_own_bar_axis(tmp_path):
    """AveragePopularity (hundreds) beside accuracy (0-1) on one axis would flatten the accuracy bars."""
    from recbole_llm.benchmark.report import bar_png, split_by_scale

    runs = pd.DataFrame(
        [
            {"dataset": "ml-100k", "model": m, "seed": s, "ndcg@10": 0.07, "averagepopularity@10": 250.0 + s}
            for m in ("BPR", "LightGCN")
            for s in (1, 2)
        ]
    )
    assert split_by_scale(runs, ["ndcg@10", "averagepopularity@10"]) == (["ndcg@10"], ["averagepopularity@10"])
    bar_png(runs, tmp_path / "bars.png", "t")
    assert (tmp_path / "bars.png").read_bytes()[:4] == b"\x89PNG"


def test_tuning_table_counts_trials_ended_at_an_early_peak(tmp_path):
    """A trial that early stopping ends as soon as ``min_epochs`` allows peaked in its first epochs (seen on
    lastfm: LightGCN's first-epoch score above every later one up to epoch 19, then climbing again); ASHA's stops
    and converged trials are not counted."""
    from recbole_llm.benchmark.report import write_suite_report

    suite = load_suite(TINY)  # min_epochs 1, epoch cap 2
    trial_sets = [{"key": "s1", "dataset": "ml-100k", "model": "BPR", "best_params": {}, "budget": 3}]
    trials = [
        {"set_key": "s1", "status": "completed", "epochs": suite.min_epochs},  # early peak
        {"set_key": "s1", "status": "stopped early", "epochs": suite.min_epochs},  # ASHA
        {"set_key": "s1", "status": "completed", "epochs": suite.epoch_cap},  # trained on
    ]
    runs = [_fake_run("BPR", 2020, 0.3, 0.1)]
    report = write_suite_report(suite, tmp_path, runs, trial_sets, [], "t", trials).read_text()
    assert "| BPR | 3 / 0 | 1 |" in report
    trial_sets.append({"key": "s2", "dataset": "ml-100k", "model": "LightGCN", "best_params": {}, "budget": 3})
    report = write_suite_report(suite, tmp_path, runs, trial_sets, [], "t", trials).read_text()
    assert "| LightGCN | 3 / 0 | n/a (trials not stored) |" in report  # a set stored without its trials
    without = write_suite_report(suite, tmp_path, runs, trial_sets, [], "t").read_text()
    assert "| BPR | 3 / 0 |  |" in without


def test_early_peak_count_uses_the_stored_best_epoch():
    """With ``best_epoch`` stored, a trial that early stopping ended after ``min_epochs`` still counts when its
    best came before ``min_epochs`` (the first oie-cpu trial: best at epoch 12, stopped at 23, min_epochs 20)."""
    from recbole_llm.benchmark.report import early_peak_counts

    suite = load_suite(TINY)
    late = suite.min_epochs + 5
    trials = [
        {"set_key": "s", "status": "completed", "epochs": late, "best_epoch": suite.min_epochs - 1},  # counts
        {"set_key": "s", "status": "completed", "epochs": late, "best_epoch": suite.min_epochs},  # learned on
        {"set_key": "s", "status": "stopped early", "epochs": late, "best_epoch": 0},  # ASHA, not early stopping
        {"set_key": "s", "status": "completed", "epochs": late},  # old entry, not at min_epochs
    ]
    assert early_peak_counts(trials, suite) == {"s": 1}


def test_oie_arms_share_one_pretrained_model(tmp_path, mini_raw):
    """The arms (and tuning trials) of a suite with OIE's settings pre-train once: the cache is the suite's,
    not a trial's or an arm's checkpoint folder, and ``whole permuted`` permutes rows at transfer only."""
    from oie_helpers import TINY, tiny_config, write_lastfm_slice

    data = write_lastfm_slice(mini_raw, tmp_path / "data", n_users=100)
    fixed = {k: v for k, v in tiny_config(data).items() if k not in ("eval_args", "epochs", "seed")}
    pretraining = {"oie_num_sequences": 1000, "oie_pretrain_epochs": 1}
    whole, permuted = {"oie_init": "whole"}, {"oie_init": "whole", "oie_permute_ids": True}
    suite_file = tmp_path / "oie-share.yaml"
    suite_file.write_text(
        json.dumps(
            {
                "name": "oie-share",
                "datasets": [TINY],
                "models": [
                    {"name": "SASRec whole", "model": "SASRec", "search_space": None, "config": whole},
                    {"name": "SASRec permuted", "model": "SASRec", "search_space": None, "config": permuted},
                ],
                "protocol": {
                    "eval_args": tiny_config(data)["eval_args"],
                    "metrics": ["NDCG"],
                    "topk": [10],
                    "valid_metric": "NDCG@10",
                    "stopping_step": 1,
                    "min_epochs": 1,
                    "epochs": 2,
                    "config": {**fixed, **pretraining},
                },
                "tuning": {"trials": 1},
                "final": {"seeds": 1},
            }
        )
    )
    suite, work = load_suite(suite_file), tmp_path / "work"
    ws = Workspace(suite, ResultStore(tmp_path / "store.jsonl"), work, "test")
    cache_dirs = {ws.run_config(suite.datasets[0], model)["oie_cache_dir"] for model in suite.models}
    assert cache_dirs == {str(work / "oie")}
    tuning_config = Path(ws.fixed_config_file(suite.datasets[0], suite.models[1])).read_text()  # trials read it
    assert f"oie_cache_dir: {work / 'oie'}" in tuning_config
    with chdir(tmp_path):
        run_suite(suite, tmp_path / "results", work, "test")
    assert len(list((work / "oie" / TINY).glob("SASRec-*.pth"))) == 1
    assert not list((work / "saved").rglob("*.pth.tmp*")) and not list((work / "saved").rglob("oie"))
    runs = {e["model"]: e for e in ResultStore(tmp_path / "results" / "oie-share.jsonl").entries("run")}
    assert set(runs) == {m.name for m in suite.models}


def test_key_is_the_same_before_and_after_a_named_dataset_is_converted(tmp_path, mini_raw):
    """A converted dataset's own yaml enters the configuration: a fresh checkout, whose data folder is empty,
    must compute the keys the committed results were stored under (after their conversion)."""
    import yaml

    from recbole_llm.benchmark.store import resolved_config

    settings = {"data_path": str(tmp_path / "fresh"), "raw_data_path": str(mini_raw)}
    fresh = resolved_config("BPR", "lastfm", None, settings)
    assert (tmp_path / "fresh" / "lastfm" / "lastfm.yaml").is_file()
    assert resolved_config("BPR", "lastfm", None, settings) == fresh
    converter_yaml = yaml.safe_load((tmp_path / "fresh" / "lastfm" / "lastfm.yaml").read_text())
    assert fresh["item_text_fields"] == converter_yaml["item_text_fields"]
