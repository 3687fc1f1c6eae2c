"""The experiment runner: report files, the time-ratio column, dead children, the extra-result hook."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from recbole_llm.cli import main
from recbole_llm.compare import ChildOutcome, Job, compare, describe_exit, parse_seeds, run_jobs, runner

FAST_ARGS = [
    "--epochs=1",
    "--show_progress=False",
    "--state=ERROR",
    "--use_gpu=False",
    "--train_batch_size=4096",
    "--metrics=['Recall','NDCG']",
    "--topk=[10]",
    "--valid_metric=NDCG@10",
]


def _synthetic_run(job: Job) -> dict:
    """A finished run without training: what ``train_and_evaluate`` returns, in a millisecond."""
    score = 0.1 + 0.01 * (job.seed - 2020) + (0.05 if job.model == "Strong" else 0.0)
    return {
        "dataset": "synthetic",
        "test_result": {"ndcg@10": score, "recall@10": 2 * score},
        "best_valid_result": {"ndcg@10": score},
        "valid_score_bigger": True,
        "epoch_times": [0.5, 0.5] if job.model == "Strong" else [0.25, 0.25],
        "valid_history": [[0, score / 2], [1, score]],
        "peak_memory_mb": 10.0,
        "saved_model_file": f"{job.model}-{job.seed}.pth",
    }


def _die_unless_synthetic(job: Job) -> dict:
    """Dies the way the job's label says (``exit137``: os._exit(137), ``sigkill``: SIGKILL)."""
    if job.name == "exit137":
        os._exit(137)
    if job.name == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if job.name == "raises":
        raise MemoryError("synthetic out of memory")
    return _synthetic_run(job)


def test_parse_seeds():
    assert parse_seeds(3) == [2020, 2021, 2022]
    assert parse_seeds("3", base_seed=7) == [7, 8, 9]
    assert parse_seeds("1,5,9") == [1, 5, 9]
    with pytest.raises(ValueError):
        parse_seeds(0)


def test_describe_exit_names_signals():
    assert describe_exit(-9) == "killed by signal 9 (SIGKILL)"
    assert describe_exit(137) == "exited with code 137"


def test_compare_two_models_two_seeds_through_the_entry_point(tmp_path, capsys):
    """``--compare`` of the command line (in this process; each run in its own child) on the mini gift cards."""
    output = tmp_path / "out"
    argv = ["--compare=BPR,Pop", "--dataset=amazon-gift-cards", "--seeds=2", "--reference=BPR", f"--output={output}"]
    assert main([*argv, *FAST_ARGS]) == 0, capsys.readouterr().err[-3000:]
    runs = pd.read_csv(output / "comparison.csv")
    assert list(runs["model"]) == ["BPR", "BPR", "Pop", "Pop"] and list(runs["seed"]) == [2020, 2021] * 2
    assert (runs["status"] == "ok").all()
    assert {"ndcg@10", "recall@10", "valid_ndcg@10", "epoch_time_s", "peak_memory_mb"} <= set(runs.columns)
    bpr = runs[runs.model == "BPR"]  # different seeds give different runs
    assert bpr["ndcg@10"].nunique() == 2 or bpr["recall@10"].nunique() == 2
    report = (output / "comparison.md").read_text()
    assert "± " in report and "**" in report and "Command: `python run_recbole_llm.py --compare=BPR,Pop" in report
    table = [line for line in report.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header == ["model", "recall@10", "ndcg@10", "s/epoch", "× BPR s/epoch", "peak MB", "epochs"]
    assert [line.split("|")[1].strip() for line in table[2:]] == ["BPR (ref)", "Pop"]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in table[2:]}
    seconds = runs.groupby("model")["epoch_time_s"].mean()
    assert float(rows["BPR (ref)"][4]) == 1.0
    assert float(rows["Pop"][4]) == pytest.approx(seconds["Pop"] / seconds["BPR"], abs=0.006)
    png = (output / "comparison.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    history = json.loads(runs["valid_history"].iloc[0])
    assert [epoch for epoch, _ in history] == [0]


@pytest.fixture
def in_process_children(monkeypatch):
    """Jobs run in this process: for the tests of the report (the dead-children test runs real children)."""

    def run_here(function, *args, timeout_s=None):
        try:
            return ChildOutcome(ok=True, result=function(*args))
        except Exception as exc:  # noqa: BLE001  (as the real child reports it)
            return ChildOutcome(ok=False, exit_code=1, error=f"{type(exc).__name__}: {exc}")

    monkeypatch.setattr(runner, "run_in_child", run_here)


def test_dead_children_are_reported_and_the_others_finish(tmp_path):
    jobs = [
        Job("Weak", seed=2020),
        Job("Weak", seed=2020, label="exit137"),
        Job("Weak", seed=2020, label="sigkill"),
        Job("Weak", seed=2020, label="raises"),
        Job("Strong", seed=2020),
    ]
    runs = run_jobs(jobs, tmp_path, reference="Weak", command="test", work=_die_unless_synthetic)
    by_label = runs.set_index("model")
    assert by_label.loc["exit137", "status"] == "failed" and by_label.loc["exit137", "exit_code"] == 137
    assert by_label.loc["sigkill", "exit_code"] == -signal.SIGKILL
    assert by_label.loc["raises", "exit_code"] == 1 and "MemoryError" in by_label.loc["raises", "error"]
    assert list(runs[runs["model"].isin(["Weak", "Strong"])]["status"]) == ["ok", "ok"]  # before and after them
    report = (tmp_path / "comparison.md").read_text()
    assert "| exit137 | 2020 | 137 |" in report and "killed by signal 9 (SIGKILL)" in report
    strong_row = next(line for line in report.splitlines() if line.startswith("| Strong"))
    assert strong_row.split("|")[5].strip() == "2.00"  # 0.5 s/epoch against Weak's 0.25


def test_report_is_rewritten_after_every_run(tmp_path, in_process_children):
    seen = []

    def on_record(record):
        seen.append(pd.read_csv(tmp_path / "comparison.csv") if (tmp_path / "comparison.csv").exists() else None)

    run_jobs(
        [Job("Weak", seed=s) for s in (1, 2, 3)], tmp_path, command="test", work=_synthetic_run, on_record=on_record
    )
    assert seen[0] is None and len(seen[1]) == 1 and len(seen[2]) == 2
    assert "still to come" not in (tmp_path / "comparison.md").read_text()


def test_extra_result_hook_lands_in_the_csv(tmp_path, in_process_children):
    def hook(result, config):
        return {"checkpoint": result["saved_model_file"], "seed_seen": config["seed"], "curve": [1, 2]}

    run_jobs(
        [Job("Weak", seed=2020, config_dict={"epochs": 3})],
        tmp_path,
        command="test",
        extra_result=hook,
        work=_synthetic_run,
    )
    row = pd.read_csv(tmp_path / "comparison.csv").iloc[0]
    assert row["checkpoint"] == "Weak-2020.pth" and row["seed_seen"] == 2020 and json.loads(row["curve"]) == [1, 2]
    assert row["best_epoch"] == 1


def test_unknown_reference_is_refused(tmp_path):
    with pytest.raises(ValueError, match="Reference model 'X'"):
        compare(["BPR"], "ml-100k", [2020], reference="X", output_dir=tmp_path)


def test_explicit_metrics_choose_the_table_columns(tmp_path, in_process_children):
    """Metrics without ``@k`` (the stock task's ic, icir) are shown when named; others are left out."""
    run_jobs([Job("Weak", seed=2020)], tmp_path, command="test", work=_synthetic_run, metrics=["recall@10", "nope"])
    header = next(line for line in (tmp_path / "comparison.md").read_text().splitlines() if line.startswith("| model"))
    assert header.startswith("| model | recall@10 | s/epoch") and "ndcg@10" not in header


def test_resume_keeps_finished_runs_and_reruns_changed_or_failed_ones(tmp_path, in_process_children):
    calls: list[str] = []

    def counted(job: Job) -> dict:
        calls.append(f"{job.name}-{job.seed}")
        if job.name == "raises":
            raise MemoryError("synthetic")
        return _synthetic_run(job)

    first = [Job("Weak", seed=1), Job("Strong", seed=1), Job("Weak", seed=1, label="raises")]
    run_jobs(first, tmp_path, command="test", work=counted)
    second = [Job("Weak", seed=1), Job("Strong", seed=1, config_dict={"lr": 0.1}), Job("Weak", seed=2)]
    second.append(Job("Weak", seed=1, label="raises"))
    calls.clear()
    runs = run_jobs(second, tmp_path, command="test", work=counted, resume=True)
    assert calls == ["Strong-1", "Weak-2", "raises-1"]  # the finished Weak-1 is kept; a changed config reruns
    stored = pd.read_csv(tmp_path / "comparison.csv")
    assert len(runs) == len(stored) == 4 and stored["job_key"].nunique() == 4
    calls.clear()
    run_jobs(second[:3], tmp_path, command="test", work=counted, resume=True)
    assert calls == [] and "still to come" not in (tmp_path / "comparison.md").read_text()


def test_resume_reruns_a_run_stored_before_its_model_code_changed(tmp_path, in_process_children, monkeypatch):
    """The key holds the model's code version (its source file's hash), stock models included: a run stored
    before the model's code changed is run again; a name no registry knows still gets a key (its run fails)."""
    import hashlib

    from recbole_llm.benchmark import store
    from recbole_llm.stock import models as stock_models
    from recbole_llm.utils import UnknownModelError

    source = Path(stock_models.__file__).read_bytes()
    assert store.model_code_version("StockMixer") == hashlib.sha256(source).hexdigest()[:12]
    with pytest.raises(UnknownModelError):
        store.model_code_version("NoSuchModel")
    assert Job("NoSuchModel").key() == Job("NoSuchModel").key()
    calls: list[str] = []

    def counted(job: Job) -> dict:
        calls.append(job.name)
        return _synthetic_run(job)

    jobs = [Job("LightGCN", seed=1), Job("BPR", seed=1)]
    run_jobs(jobs, tmp_path, command="test", work=counted)
    real = store.model_code_version
    monkeypatch.setattr(store, "model_code_version", lambda m: "edited" if m == "BPR" else real(m))
    calls.clear()
    run_jobs(jobs, tmp_path, command="test", work=counted, resume=True)
    assert calls == ["BPR"]


ORPHAN_PARENT = """
import sys, time
from recbole_llm.compare.isolation import run_in_child
from tests.test_compare import _sleep_and_report_pid
run_in_child(_sleep_and_report_pid, sys.argv[1])
"""


def _sleep_and_report_pid(path: str) -> None:
    with open(path, "w") as handle:
        handle.write(str(os.getpid()))
    time.sleep(120)


def test_child_stops_when_the_comparison_is_killed(tmp_path):
    """Killing the runner must not leave its training child running on the CPU."""
    pid_file = tmp_path / "child.pid"
    root = Path(__file__).resolve().parent.parent
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN_PARENT, str(pid_file)], cwd=root)
    try:  # two fresh interpreters start on a machine that may be running other tests: a generous deadline
        deadline = time.monotonic() + 180
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pid_file.exists() and pid_file.read_text(), "the child did not start in 180 s"
        child = int(pid_file.read_text())
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 20
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def test_resume_flag_reaches_the_comparison(monkeypatch, tmp_path):
    import recbole_llm.compare as compare_module

    seen = {}
    monkeypatch.setattr(compare_module, "compare", lambda *args, **kwargs: seen.update(kwargs))
    argv = ["--compare=BPR", "--dataset=amazon-gift-cards", "--seeds=1", f"--output={tmp_path}", "--resume"]
    assert main(argv) == 0
    assert seen["resume"] is True and seen["output_dir"] == str(tmp_path)


def test_paired_figures_pair_runs_by_seed_and_leave_out_seeds_without_a_score():
    """Rows come in any order and part-way a seed may lack a score: pairs must match seeds, not positions."""
    from scipy import stats

    from recbole_llm.compare.report import paired_p_value, paired_scores

    runs = pd.DataFrame(
        {
            "model": ["A", "A", "A", "A", "B", "B", "B", "B", "B"],
            "seed": [2020, 2021, 2022, 2023, 2023, 2022, 2020, 2021, 2024],
            "ndcg@10": [0.30, 0.32, 0.35, float("nan"), 0.22, 0.20, 0.25, 0.21, 0.24],
        }
    )
    paired = paired_scores(runs, "A", "B", "ndcg@10").sort_values("seed")
    assert paired["seed"].tolist() == [2020, 2021, 2022]
    assert paired["ndcg@10_ref"].tolist() == [0.25, 0.21, 0.20]
    expected = stats.ttest_rel([0.30, 0.32, 0.35], [0.25, 0.21, 0.20]).pvalue
    assert paired_p_value(runs, "A", "B", "ndcg@10") == pytest.approx(expected)
