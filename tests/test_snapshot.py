"""Training snapshots (recbole_llm.trainer.snapshot) of final runs: a killed run goes on as if never cut."""

from __future__ import annotations

import pytest

from recbole_llm.compare.runner import Job, record_from_result
from recbole_llm.quick_start import run_recbole_llm


class _Killed(Exception):
    """Stands for a kill of the run's process right after a validation."""


def _run(tmp_path, monkeypatch, kill_at_epoch=None):
    """BPR on ml-100k for 5 epochs, snapshots after every validation; (result or None, validations seen)."""
    monkeypatch.chdir(tmp_path)
    seen = []

    def callback(epoch_idx, score):
        seen.append((epoch_idx, score))
        if epoch_idx == kill_at_epoch:
            raise _Killed

    config = {"epochs": 5, "stopping_step": 10, "state": "ERROR", "show_progress": False, "train_batch_size": 4096}
    config["checkpoint_dir"] = str(tmp_path / "saved")
    try:
        result = run_recbole_llm(
            "BPR", "ml-100k", config_dict=config, callback_fn=callback,
            snapshot_file=tmp_path / "run.snapshot.pt", snapshot_interval_s=0.0,
        )  # fmt: skip
    except _Killed:
        return None, seen
    return result, seen


@pytest.fixture(scope="module")
def uncut_run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        return _run(tmp_path_factory.mktemp("uncut"), patch)


def test_killed_run_goes_on_from_its_snapshot_with_the_uncut_result(uncut_run, tmp_path, monkeypatch):
    """Killed after its 3rd validation, the rerun replays those 3 to the callback, trains epochs 4-5 only and
    ends with the uncut run's validations, best checkpoint and test metrics, bit for bit; its file then goes."""
    reference, reference_seen = uncut_run
    _, cut_seen = _run(tmp_path, monkeypatch, kill_at_epoch=2)
    assert [e for e, _ in cut_seen] == [0, 1, 2] and (tmp_path / "run.snapshot.pt").exists()
    result, seen = _run(tmp_path, monkeypatch)
    assert seen == reference_seen and [e for e, _ in seen] == [0, 1, 2, 3, 4]
    assert result["test_result"] == reference["test_result"]
    assert result["best_valid_result"] == reference["best_valid_result"]
    assert (result["resumed_at_epoch"], len(result["epoch_times"])) == (3, 5)  # the first 3 epochs' times kept
    assert not (tmp_path / "run.snapshot.pt").exists()
    record = record_from_result(Job("BPR", "ml-100k"), result, wall_s=10.0)
    assert record["resumed_at_epoch"] == 3 and record["wall_s"] == 10.0 + result["resumed_seconds"] > 10.0
    assert record["best_epoch"] == record_from_result(Job("BPR", "ml-100k"), reference, 1.0)["best_epoch"]


def test_a_run_whose_best_checkpoint_is_gone_starts_afresh(uncut_run, tmp_path, monkeypatch, caplog):
    reference, reference_seen = uncut_run
    _run(tmp_path, monkeypatch, kill_at_epoch=1)
    for checkpoint in (tmp_path / "saved").glob("*.pth"):
        checkpoint.unlink()
    result, seen = _run(tmp_path, monkeypatch)
    assert "gone" in caplog.text and "resumed_at_epoch" not in result
    assert seen == reference_seen and result["test_result"] == reference["test_result"]


def _bsarec_run(raw, folder, monkeypatch, kill_at_epoch=None):
    """BSARec with dropout and OIE metrics on a 100-user LastFM slice, 4 epochs; (result or None, validations)."""
    from oie_helpers import TINY, single_thread, tiny_config, write_lastfm_slice

    monkeypatch.chdir(folder)
    write_lastfm_slice(raw, folder, n_users=100)
    config = tiny_config(folder, oie_metrics=True, epochs=4, hidden_dropout_prob=0.2, attn_dropout_prob=0.2)
    config.update(stopping_step=10, checkpoint_dir=str(folder / "saved"))
    seen = []

    def callback(epoch_idx, score):
        seen.append((epoch_idx, score))
        if epoch_idx == kill_at_epoch:
            raise _Killed

    try:
        with single_thread():
            result = run_recbole_llm(
                "BSARec", TINY, config_dict=config, callback_fn=callback,
                snapshot_file=folder / "run.snapshot.pt", snapshot_interval_s=0.0,
            )  # fmt: skip
    except _Killed:
        return None, seen
    return result, seen


def test_a_resumed_sequential_run_keeps_its_oie_history(mini_raw, tmp_path, monkeypatch):
    """The OIE trainer's history (AAE/SA after init and every validation) is part of the snapshot: the resumed
    run's history file is the uncut run's, with one "init" entry, and dropout draws the same masks."""
    import json

    from recbole_llm.oie.trainer import history_path

    (tmp_path / "uncut").mkdir(), (tmp_path / "cut").mkdir()
    reference, reference_seen = _bsarec_run(mini_raw, tmp_path / "uncut", monkeypatch)
    _bsarec_run(mini_raw, tmp_path / "cut", monkeypatch, kill_at_epoch=1)
    result, seen = _bsarec_run(mini_raw, tmp_path / "cut", monkeypatch)
    assert result["resumed_at_epoch"] == 2 and seen == reference_seen
    assert result["test_result"] == reference["test_result"]
    histories = [json.loads(history_path(r["saved_model_file"]).read_text())["history"] for r in (reference, result)]
    assert histories[0] == histories[1] and [h["stage"] for h in histories[1]].count("init") == 1
    assert [h["epoch"] for h in histories[1] if h["stage"] == "valid"] == [1, 2, 3, 4]
