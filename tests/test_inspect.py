"""The dataset check flags splits whose targets the model cannot have learned."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataset_converters._common import dataset_settings, write_atomic_file, write_dataset_yaml
from recbole_llm.data import inspect

HEADER = ["user_id:token", "item_id:token", "timestamp:float"]


def make_dataset(root: Path, name: str, unseen_test: bool, users: int = 30) -> Path:
    """Each user: 4 shared items, then (by time) a validation and a test target.

    With ``unseen_test`` every test target is an item nobody has in training.
    """
    rows = []
    for u in range(users):
        for k in range(4):
            rows.append([f"u{u}", f"i{(u + k) % 12}", 10 * u + k])
        rows.append([f"u{u}", f"i{(u + 5) % 12}", 10 * u + 5])
        rows.append([f"u{u}", f"new{u}" if unseen_test else f"i{(u + 6) % 12}", 10 * u + 6])
    folder = root / name
    folder.mkdir(parents=True)
    write_atomic_file(folder / f"{name}.inter", HEADER, rows)
    write_dataset_yaml(folder, name, dataset_settings(HEADER), "test fixture")
    return folder / f"{name}.yaml"


def run_inspect(capsys, root: Path, name: str, yaml_file: Path, *extra: str) -> list[str]:
    # Config reads <data_path>/<dataset>/<dataset>.yaml itself: no --config_files needed.
    assert yaml_file.is_file()
    code = inspect.main([f"--dataset={name}", f"--data_path={root}", "--state=ERROR", "--use_gpu=False", *extra])
    assert code == 0
    return capsys.readouterr().out.splitlines()


def test_unseen_test_targets_are_flagged(tmp_path, capsys):
    yaml_file = make_dataset(tmp_path, "coldtest", unseen_test=True)
    lines = run_inspect(capsys, tmp_path, "coldtest", yaml_file)
    assert any(line.startswith("  users 30, items 42, interactions 180") for line in lines)
    assert any("interactions per user: mean 6.00, median 6, min 6, max 6" in line for line in lines)
    assert any(line.startswith("  test: 30 targets; never seen in training 100.0%") for line in lines)
    warnings = [line for line in lines if line.startswith("WARNING")]
    assert len(warnings) == 1 and "of test targets never occur in training" in warnings[0]


def test_healthy_split_has_no_warning_and_threshold_is_a_flag(tmp_path, capsys):
    yaml_file = make_dataset(tmp_path, "warm", unseen_test=False)
    lines = run_inspect(capsys, tmp_path, "warm", yaml_file)
    assert not [line for line in lines if line.startswith("WARNING")]
    assert any(line.startswith("  valid: 30 targets; never seen in training 0.0%") for line in lines)
    strict = run_inspect(capsys, tmp_path, "warm", yaml_file, "--warn_threshold=0.05")
    assert any("of test targets (threshold 5%)" in line for line in strict)  # top target: 3/30 = 10%


def test_dataset_summary_is_short_and_warns(tmp_path):
    from recbole_llm.config import Config
    from recbole_llm.data import create_dataset, data_preparation

    yaml_file = make_dataset(tmp_path, "coldtest", unseen_test=True)
    assert yaml_file.is_file()
    config = Config("BPR", "coldtest", config_dict={"data_path": str(tmp_path), "state": "ERROR", "use_gpu": False})
    dataset = create_dataset(config)
    summary = inspect.dataset_summary(config, dataset, data_preparation(config, dataset))
    first, second = summary.splitlines()
    assert first.startswith("coldtest: 30 users, 42 items, 180 interactions")
    assert "test targets unseen in training 100.0%" in first and second.startswith("WARNING")


def test_missing_dataset_is_one_line_exit_2(tmp_path, capsys):
    assert inspect.main(["--dataset=nothing_here", f"--data_path={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing_here" in err[0]


@pytest.mark.parametrize("bad", ["--warn_threshold=x"])
def test_bad_flag_is_an_argparse_error(bad, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        inspect.main(["--dataset=x", bad])
    assert exit_info.value.code == 2


def test_consecutive_share_counts_targets_numbered_right_after_their_previous_item():
    assert inspect.consecutive_share([3, 4, 7], [4, 9, 8]) == pytest.approx(2 / 3)
    assert inspect.consecutive_share([], []) == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        inspect.consecutive_share([1, 2], [2])


# (user, items in time order); tokens first appear in increasing order, so RecBole's ids are the tokens.
SEQUENCES = [
    ("u1", [1, 2, 3, 4, 5]),  # valid 4 after 3: yes; test 5 after 4: yes
    ("u2", [6, 7, 8, 1, 3]),  # valid 1 after 8: no; test 3 after 1: no
    ("u3", [9, 10, 11, 12, 2]),  # valid 12 after 11: yes; test 2 after 12: no
    ("u4", [13, 14, 6, 7, 8]),  # valid 7 after 6: yes; test 8 after 7: yes
]


def test_consecutive_share_of_a_sequential_split(tmp_path):
    from recbole_llm.config import Config
    from recbole_llm.data import create_dataset, data_preparation
    from recbole_llm.oie.synthetic import check_literal_ids, item_tokens

    rows = [[user, str(item), t] for user, items in SEQUENCES for t, item in enumerate(items)]
    folder = tmp_path / "handmade"
    folder.mkdir()
    write_atomic_file(folder / "handmade.inter", HEADER, rows)
    write_dataset_yaml(folder, "handmade", dataset_settings(HEADER), "test fixture")
    settings = {"data_path": str(tmp_path), "state": "ERROR", "use_gpu": False, "train_neg_sample_args": None}
    settings.update(
        MAX_ITEM_LIST_LENGTH=2, eval_args={"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"}
    )
    config = Config("SASRec", "handmade", config_dict=settings)
    dataset = create_dataset(config)
    check_literal_ids(item_tokens(dataset), "hand-made dataset")
    splits = data_preparation(config, dataset)
    stats = inspect.split_statistics(config, splits)
    assert stats["valid"]["consecutive_share"] == pytest.approx(0.75)
    assert stats["test"]["consecutive_share"] == pytest.approx(0.5)
    assert inspect.consecutive_target_share(config, splits[2]) == pytest.approx(0.5)
    assert "previous item's id + 1 50.0%" in inspect.dataset_summary(config, dataset, splits)
    general = Config("BPR", "handmade", config_dict={"data_path": str(tmp_path), "state": "ERROR", "use_gpu": False})
    general_splits = data_preparation(general, create_dataset(general))
    assert inspect.consecutive_target_share(general, general_splits[2]) is None
    assert "consecutive_share" not in inspect.split_statistics(general, general_splits)["test"]
