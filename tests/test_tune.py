"""Ray Tune search (recbole_llm.tune): real BPR searches on ml-100k through the entry point."""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from recbole_llm import compat
from recbole_llm import tune as recbole_tune
from recbole_llm.cli import main
from recbole_llm.tune import runner as tune_runner

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SEARCH_DIR = PROJECT_ROOT / "properties" / "search"
# Fixed settings of the test searches: small, quiet, CPU.
FAST_FLAGS = ["--state=ERROR", "--show_progress=False", "--train_batch_size=4096", "--verbose=0", "--cpus_per_trial=1"]


@pytest.fixture(scope="module")
def local_ray():
    """One small local Ray for the module's searches (the searches reuse it and leave it running).

    Starts from a process without Ray, whatever an earlier test module left (a failed ``ray://``
    connection leaves Ray 2.6.3 in client mode, where a local start fails).
    """
    import ray

    compat.shutdown_ray()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    compat.shutdown_ray()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bpr_search(local_ray, tmp_path_factory):
    """A 2-trial x 2-epoch random search for BPR on ml-100k, run through the entry point."""
    folder = tmp_path_factory.mktemp("bpr_search")
    space = _write(
        folder / "space.yaml", "learning_rate: {loguniform: [1.0e-3, 1.0e-2]}\nembedding_size: {choice: [16, 32]}\n"
    )
    output = folder / "out"
    code = main(
        [
            f"--tune={space}",
            "--model=BPR",
            "--dataset=ml-100k",
            f"--output={output}",
            "--num_samples=2",
            "--epochs=2",
            "--grace_period=1",
            *FAST_FLAGS,
        ]
    )
    return code, output


def test_bpr_search_writes_table_and_best_yaml(bpr_search):
    code, output = bpr_search
    assert code == 0
    trials = pd.read_csv(output / "trials.csv")
    assert len(trials) == 2
    assert set(trials["status"]) <= {"completed", "stopped early"} and "completed" in set(trials["status"])
    assert trials["error"].isna().all()
    # the searched values are inside the space and the metric is a real one (random BPR: MRR@10 ~ 0.01)
    assert trials["param.learning_rate"].between(1e-3, 1e-2).all()
    assert set(trials["param.embedding_size"]) <= {16, 32}
    assert (trials["best_valid_score"] > 0).all()
    assert (trials["best_valid_score"] == trials["valid.mrr@10"]).all()
    # per-epoch reporting: a completed trial reported each of its 2 validations to Ray
    completed = trials[trials["status"] == "completed"].iloc[0]
    progress = pd.read_csv(Path(completed["trial_dir"]) / "progress.csv")
    assert list(progress["epoch"]) == [1, 2]
    # trials are isolated: each wrote its RecBole log inside its own trial folder
    for trial_dir in trials["trial_dir"]:
        assert list(Path(trial_dir).glob("log/BPR/*.log"))
    markdown = (output / "trials.md").read_text()
    assert "| trial |" in markdown and str(trials.loc[0, "trial"]) in markdown
    best = yaml.safe_load((output / "best.yaml").read_text())
    assert best["epochs"] == 2 and best["dataset"] == "ml-100k"
    assert best["learning_rate"] == pytest.approx(trials.loc[0, "param.learning_rate"], rel=1e-12)


def test_best_yaml_reruns_through_entry_point_and_reproduces_valid_metric(bpr_search, capsys):
    code, output = bpr_search
    assert code == 0
    trials = pd.read_csv(output / "trials.csv")
    best = trials[trials["status"] == "completed"].iloc[0]
    capsys.readouterr()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the trial (1 CPU per trial); also spares the shared test machine
    try:
        assert main(["--model=BPR", "--dataset=ml-100k", f"--config_files={output / 'best.yaml'}"]) == 0
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    match = re.search(r"best valid: (.*)", printed)
    assert match, printed
    valid = dict(ast.literal_eval(match.group(1).replace("OrderedDict(", "(")))
    # same seed, same config: the same validation result (RecBole rounds metrics to 4 decimals)
    assert valid["mrr@10"] == pytest.approx(best["valid.mrr@10"], abs=1e-4)
    assert valid["recall@10"] == pytest.approx(best["valid.recall@10"], abs=1e-4)


def test_failing_trial_is_reported_and_search_goes_on(local_ray, tmp_path):
    # embedding_size -1 passes RecBole's Config but makes the model constructor raise inside the trial
    space = _write(tmp_path / "space.yaml", "embedding_size: {grid: [16, -1]}\n")
    code = main(
        [
            f"--tune={space}",
            "--model=BPR",
            "--dataset=ml-100k",
            f"--output={tmp_path / 'out'}",
            "--num_samples=1",
            "--epochs=1",
            "--scheduler=fifo",
            *FAST_FLAGS,
        ]
    )
    assert code == 0
    trials = pd.read_csv(tmp_path / "out" / "trials.csv").set_index("param.embedding_size")
    assert trials.loc[-1, "status"] == "error"
    assert "negative dimension" in trials.loc[-1, "error"]
    assert trials.loc[16, "status"] == "completed" and trials.loc[16, "best_valid_score"] > 0
    assert yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())["embedding_size"] == 16
    assert "error" in (tmp_path / "out" / "trials.md").read_text()


def test_search_uses_the_running_ray_despite_a_failed_client_connection(local_ray):
    """What a failed ``ray.init("ray://...")`` leaves in Ray 2.6.3 (client mode on, no client) is cleared:
    the search runs in the Ray this process started, which stays up."""
    import ray
    from ray._private import client_mode_hook

    client_mode_hook._explicitly_enable_client_mode()
    try:
        assert not ray.is_initialized()  # the absent client answers
        with tune_runner._ray_session(recbole_tune.TuneOptions()):
            assert ray.is_initialized() and not compat.ray_half_initialized()
        assert ray.is_initialized()
    finally:
        compat.clear_stale_ray_client()


def test_search_replaces_a_half_initialized_ray(local_ray):
    """A driver whose key-value store is gone (its cluster was shut down under it) cannot host Tune: it is
    shut down and a fresh Ray started for the search, and shut down after it. (Ends the module's Ray.)"""
    import ray
    from ray.experimental import internal_kv

    internal_kv._internal_kv_reset()
    assert compat.ray_half_initialized()
    with tune_runner._ray_session(recbole_tune.TuneOptions(ray_num_cpus=1)):
        assert ray.is_initialized() and not compat.ray_half_initialized()
    assert not ray.is_initialized()


def test_search_without_an_address_starts_its_own_ray_whatever_ray_address_names(monkeypatch, caplog):
    """Without ``--ray_address`` a search starts a local Ray of ``ray_num_cpus``: a cluster named by the
    ``RAY_ADDRESS`` variable (or by the address file a ``ray start`` leaves) is not joined, where Ray 2.6.3
    would refuse the CPU count (``When connecting to an existing cluster, num_cpus ... must not be provided``)."""
    import ray

    compat.shutdown_ray()
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")  # nothing listens there
    with caplog.at_level("WARNING", logger=tune_runner.__name__):
        with tune_runner._ray_session(recbole_tune.TuneOptions(ray_num_cpus=1)):
            assert ray.cluster_resources()["CPU"] == 1
    assert not ray.is_initialized()
    assert "RAY_ADDRESS=127.0.0.1:9 is set but --ray_address is not" in caplog.text


@pytest.mark.parametrize(
    "space_text, extra, expected",
    [
        ("learning_rate: {logunifrom: [1.0e-4, 1.0e-2]}\n", [], ["learning_rate", "loguniform"]),
        ("learnig_rate: {loguniform: [1.0e-4, 1.0e-2]}\n", [], ["learnig_rate", "learning_rate"]),
        ("learning_rate: {uniform: [0.1, 0.01]}\n", [], ["learning_rate", "low < high"]),
        ("learning_rate: {loguniform: [0.0, 0.01]}\n", [], ["learning_rate", "0 < low"]),
        ("learning_rate: 0.01\n", [], ["learning_rate", "one distribution"]),
        ("embedding_size: {choice: []}\n", [], ["embedding_size", "non-empty"]),
        ("topk: {choice: [10, -1]}\n", [], ["topk", "-1"]),
        ("learning_rate: {choice: [0.01]}\n", ["--learning_rate=0.1"], ["learning_rate", "also fixed"]),
        ("dataset: {choice: [ml-100k]}\n", [], ["dataset", "cannot be searched"]),
        ("embedding_size: {grid: [16, 32]}\n", ["--search_alg=nope"], ["search_alg"]),
        ("embedding_size: {choice: [16]}\n", ["--num_samples=two"], ["num_samples"]),
        ("embedding_size: {choice: [16, 32]}\n", ["--trials_last=0"], ["trials_last", "from 1"]),
        ("embedding_size: {choice: [16, 32]}\n", ["--trials_last=3", "--num_samples=2"], ["draws 2 trials"]),
        ("embedding_size: {choice: [16, 32]}\n", ["--search_alg=optuna", "--trials_last=1"], ["trials_last"]),
    ],
)
def test_invalid_search_fails_before_any_trial_naming_the_key(
    tmp_path, capsys, monkeypatch, space_text, extra, expected
):
    def ray_must_not_start(*args, **kwargs):
        raise AssertionError("Ray started for an invalid search")

    monkeypatch.setattr(tune_runner, "_ray_session", ray_must_not_start)
    space = _write(tmp_path / "space.yaml", space_text)
    start = time.perf_counter()
    code = main([f"--tune={space}", "--model=BPR", "--dataset=ml-100k", f"--output={tmp_path / 'out'}", *extra])
    message = capsys.readouterr().err
    assert code == 2
    for text in expected:
        assert text in message
    assert time.perf_counter() - start < 20
    assert not (tmp_path / "out").exists()


def test_trials_last_moves_trials_to_the_end_of_a_random_search():
    """``--trials_last=3,1``: the same configurations, those two last and in that order (a long trial left to a
    machine with time for it); the trials a ledger holds are still skipped."""
    from recbole_llm.tune.space import sample_configs

    space = recbole_tune.load_search_space({"learning_rate": {"loguniform": [1.0e-4, 1.0e-2]}})
    configs = sample_configs(space, 4, seed=7)

    class Ledger:
        def stored(self):
            return [(configs[1], 0.1)]

    options = recbole_tune.TuneOptions(num_samples=4, trials_last="3,1")
    count, points, _, held = tune_runner._trials_to_run(options, space, 7, Ledger())
    assert options.trials_last == (3, 1) and (count, held) == (3, 1)
    assert points == [configs[3], configs[2], configs[0]]
    assert tune_runner._trials_to_run(recbole_tune.TuneOptions(num_samples=4), space, 7, None)[1] == configs


def test_grid_needs_random_search():
    space = recbole_tune.load_search_space({"n_layers": {"grid": [1, 2]}})
    with pytest.raises(recbole_tune.SearchSpaceError, match="n_layers.*random"):
        tune_runner._search_algorithm(recbole_tune.TuneOptions(search_alg="optuna"), space, seed=1)


class _ScriptedTrainer:
    """The trainer state TuneReportMixin reads (as RecBole's Trainer names it), with scripted validations."""

    def __init__(self, scores):
        self.scores = iter(scores)
        self.best_valid_score, self.cur_step, self.stopping_step = -float("inf"), 0, 1
        self.valid_metric_bigger, self.eval_step, self.epochs = True, 1, 5

    def _valid_epoch(self, valid_data, show_progress=False):
        score = next(self.scores)
        return score, {"mrr@10": score}


def test_report_mixin_reports_every_validation_and_recbole_early_stopping(monkeypatch):
    from recbole.utils import early_stopping

    reports = []
    monkeypatch.setattr("ray.air.session.report", reports.append)
    trainer = type("Reporting", (recbole_tune.TuneReportMixin, _ScriptedTrainer), {})([0.2, 0.1, 0.05])
    for _ in range(3):  # what RecBole's fit does after each validation
        score, _ = trainer._valid_epoch(None, show_progress=False)
        trainer.best_valid_score, trainer.cur_step, _, _ = early_stopping(
            score, trainer.best_valid_score, trainer.cur_step, max_step=trainer.stopping_step, bigger=True
        )
    assert "_valid_epoch" not in vars(trainer)  # a subclass override, nothing rebound on the instance
    assert trainer.tune_reports == 3
    assert [r["epoch"] for r in reports] == [1, 2, 3]
    assert [r["valid_score"] for r in reports] == [r["mrr@10"] for r in reports] == [0.2, 0.1, 0.05]
    assert [r["best_valid_score"] for r in reports] == [0.2, 0.2, 0.2]
    assert [r["best_epoch"] for r in reports] == [0, 0, 0]  # 0-based, the checkpoint RecBole keeps
    # RecBole stops after more than stopping_step=1 validations without improvement: the 3rd ends the trial
    assert [r["finished"] for r in reports] == [False, False, True]


class _Killed(Exception):
    """Stands for a kill of the trial's process right after a validation was reported."""


# A 4-epoch BPR trial on ml-100k, as a search's worker runs it; snapshots after every validation.
_TRIAL_PARAMS = {"learning_rate": 0.005, "embedding_size": 16, tune_runner.TRIAL_INDEX_KEY: 0}
_VOLATILE = ("node_id", "resumed_at_epoch", "resumed_seconds")


def _run_trial(tmp_path, monkeypatch, kill_after_epoch=None, trial_index=0):
    """Run the trial outside Ray (``session.report`` recorded); the reports, or those before a kill."""
    from recbole_llm.tune.trainable import TrialSettings, trainable

    reports = []

    def report(result):
        reports.append(result)
        if result["epoch"] == kill_after_epoch:
            raise _Killed

    monkeypatch.setattr("ray.air.session.report", report)
    monkeypatch.chdir(tmp_path)
    config = {"epochs": 4, "eval_step": 1, "state": "ERROR", "show_progress": False, "train_batch_size": 4096}
    settings = TrialSettings("BPR", "ml-100k", None, config, 1, 0, str(tmp_path / "snapshots"), 0.0)
    threads = torch.get_num_threads()
    try:
        trainable({**_TRIAL_PARAMS, tune_runner.TRIAL_INDEX_KEY: trial_index}, settings)
    except _Killed:
        pass
    finally:
        torch.set_num_threads(threads)
    return reports


def _plain_reports(reports):
    return [{k: v for k, v in r.items() if k not in _VOLATILE} for r in reports]


@pytest.fixture(scope="module")
def uninterrupted_trial(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        return _run_trial(tmp_path_factory.mktemp("uninterrupted"), patch)


def test_killed_trial_goes_on_from_its_snapshot_as_if_never_cut(uninterrupted_trial, tmp_path, monkeypatch):
    """Killed as it reports its 2nd validation (before the snapshot after it), the trial (in the next search:
    another index) replays the report of epoch 1 and trains epochs 2-4 only, with the validations of the
    uninterrupted trial, bit for bit; its file then goes."""
    assert not list((tmp_path / "snapshots").glob("*"))
    cut = _run_trial(tmp_path, monkeypatch, kill_after_epoch=2)
    assert [r["epoch"] for r in cut] == [1, 2] and len(list((tmp_path / "snapshots").glob("*.pt"))) == 1
    resumed = _run_trial(tmp_path, monkeypatch, trial_index=5)
    assert [r["epoch"] for r in resumed] == [1, 2, 3, 4]
    assert [r["resumed_at_epoch"] for r in resumed] == [1] * 4 and all(r["resumed_seconds"] > 0 for r in resumed)
    assert _plain_reports(resumed) == _plain_reports(uninterrupted_trial)
    assert [r["valid_score"] for r in uninterrupted_trial] != [uninterrupted_trial[0]["valid_score"]] * 4  # it learns
    assert not list((tmp_path / "snapshots").glob("*"))  # finished: nothing left to resume


def test_unreadable_snapshot_is_a_warning_and_a_fresh_start(uninterrupted_trial, tmp_path, monkeypatch, caplog):
    from recbole_llm.tune.trainable import TrialSettings, snapshot_path

    config = {"epochs": 4, "eval_step": 1, "state": "ERROR", "show_progress": False, "train_batch_size": 4096}
    settings = TrialSettings("BPR", "ml-100k", None, config, 1, 0, str(tmp_path / "snapshots"), 0.0)
    path = snapshot_path(_TRIAL_PARAMS, settings)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"cut short by a full disk")
    reports = _run_trial(tmp_path, monkeypatch)
    assert "unreadable" in caplog.text
    assert all("resumed_at_epoch" not in r for r in reports)
    assert _plain_reports(reports) == _plain_reports(uninterrupted_trial)


def test_a_resumed_trial_counts_its_time_before_the_snapshot():
    from recbole_llm.tune.ledger import finished_trial

    last = {"best_valid_score": 0.3, "finished": True, "training_iteration": 9, "epoch": 9, "time_total_s": 40.0}
    _, fresh = finished_trial({"learning_rate": 0.01}, last, ["learning_rate"], "t1")
    _, resumed = finished_trial(
        {"learning_rate": 0.01}, {**last, "resumed_at_epoch": 6, "resumed_seconds": 100.0}, ["learning_rate"], "t1"
    )
    assert fresh["seconds"] == 40.0 and "resumed_at_epoch" not in fresh
    assert (resumed["seconds"], resumed["resumed_at_epoch"], resumed["resumed_seconds"]) == (140.0, 6, 100.0)


SHIPPED = sorted(p.stem for p in SEARCH_DIR.glob("*.yaml"))


def test_search_spaces_shipped_for_our_models_and_the_benchmark_baselines():
    assert {"ReviewGNN", "P4R", "BSARec", "BPR", "LightGCN", "NGCF", "SGL", "SASRec", "BERT4Rec"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_search_space_is_valid_for_its_model(name):
    model = name.split("-")[0]  # `<Model>-<variant>.yaml` is a variant's space (ReviewGNN-LightGCN)
    space, config = recbole_tune.validate_search_space(model, "ml-100k", SEARCH_DIR / f"{name}.yaml")
    assert space and all(key in config.final_config_dict for key in space)
    # every shipped space tunes the step size, within the range Adam works in for these models
    distribution, args = space["learning_rate"]
    assert distribution in ("loguniform", "choice")
    assert 1e-5 <= min(args) and max(args) <= 1e-1


def test_random_search_runs_list_valued_choices(local_ray, tmp_path):
    # Ray 2.6.3 fails on list values given as preset points; the drawn configurations must reach the trials whole
    text = "hidden_size_list: {choice: [[8], [8, 8]]}\nlearning_rate: {choice: [0.01]}\n"
    space = _write(tmp_path / "space.yaml", text)
    code = main(
        [
            f"--tune={space}",
            "--model=NGCF",
            "--dataset=ml-100k",
            f"--output={tmp_path / 'out'}",
            "--num_samples=2",
            "--epochs=1",
            "--scheduler=fifo",
            *FAST_FLAGS,
        ]
    )
    assert code == 0
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert (trials["status"] == "completed").all() and len(trials) == 2
    assert sorted(trials["param.hidden_size_list"].map(str)) == ["[8, 8]", "[8]"]
    assert "recbole_llm_trial_index" not in " ".join(trials.columns)


def test_trials_find_profiles_in_the_default_folder_of_the_driver(tmp_path, monkeypatch):
    """P4R's unset ``profile_dir`` on RecBole's bundled ml-100k means ``dataset/ml-100k`` under the working folder;
    Ray runs each trial in its own folder, so the trials get the driver's folder, where LLM profiles made
    beforehand are (else each trial would start an hour of generation in its own folder)."""
    from recbole_llm.config import Config

    monkeypatch.chdir(tmp_path)
    quiet = {"state": "ERROR", "show_progress": False}
    resolved = tune_runner._absolute_paths(Config("P4R", "ml-100k", config_dict=quiet), {})
    assert resolved["profile_dir"] == str(tmp_path / "dataset" / "ml-100k")
    given = tune_runner._absolute_paths(Config("P4R", "ml-100k", config_dict=quiet), {"profile_dir": "profiles"})
    assert given["profile_dir"] == str(tmp_path / "profiles")
    assert "profile_dir" not in tune_runner._absolute_paths(Config("BPR", "ml-100k", config_dict=quiet), {})
