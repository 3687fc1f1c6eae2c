"""Every configuration mistake through ``cli.main``: exit status 2 and exactly one line on stderr."""

from __future__ import annotations

import pytest

from recbole_llm import cli


def _write(path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--epochs=abc"], ["epochs", "'abc'", "integer"]),
        (["--learning_rate=-1"], ["learning_rate", "-1", "> 0"]),
        (["--train_batch_size=0"], ["train_batch_size", "0", ">= 1"]),
        (["--model=P4R", "--text_fusion=sum"], ["text_fusion", "'sum'", "add, replace, concat"]),
        (["--model=NoSuchModel"], ["NoSuchModel", "Closest names"]),
        (["--model=BPR", "--dataset=no-such-data"], ["no-such-data", "looked for"]),
        (["--config_files=missing.yaml"], ["missing.yaml", "not found"]),
        (["--sed=1"], ["--sed", "--seed"]),
        (["--model=BPR", "--learner=adamx"], ["learner", "'adamx'", "adam"]),
    ],
)
def test_mistake_exits_2_with_one_line(argv, expected, capsys, tmp_path):
    assert cli.main(argv) == 2
    line = _one_error_line(capsys)
    assert line.startswith("error: ")
    for part in expected:
        assert part in line, line


def test_unknown_popk_metric_in_a_config_file(tmp_path, capsys):
    config = _write(tmp_path / "popk.yaml", "train_neg_sample_args:\n  distribution: popk\n  popk_metric: nonsense\n")
    assert cli.main(["--model=LightGCN", f"--config_files={config}"]) == 2
    line = _one_error_line(capsys)
    assert "popk_metric" in line and "nonsense" in line and "count, ratio, variance" in line


def test_malformed_yaml_names_file_and_line(tmp_path, capsys):
    config = _write(tmp_path / "broken.yaml", "epochs: 1\nmetrics: [Recall, NDCG\nvalid_metric: NDCG@10\n")
    assert cli.main([f"--config_files={config}"]) == 2
    line = _one_error_line(capsys)
    assert "broken.yaml" in line and "line 3" in line


def test_debug_shows_the_traceback(capsys):
    from recbole_llm.validation import ConfigError

    with pytest.raises(ConfigError, match="epochs"):
        cli.main(["--epochs=abc", "--debug"])


def test_flags_are_not_abbreviated():
    parser = cli.build_parser()
    args, overrides = parser.parse_known_args(["--seed=2021", "--mod=BPR"])
    assert args.seeds is None and args.model == "BPR"
    assert overrides == ["--seed=2021", "--mod=BPR"]


def test_benchmark_flag_dispatches_lazily(tmp_path, monkeypatch):
    suite = _write(tmp_path / "suite.yaml", "models: [BPR]\n")
    calls = []
    monkeypatch.setattr(cli, "_entry", lambda spec: lambda args, overrides: calls.append((spec, args, overrides)) or 0)
    assert cli.main([f"--benchmark={suite}", "--epochs=1"]) == 0
    ((spec, args, overrides),) = calls
    assert spec == cli.BENCHMARK_ENTRY and args.benchmark == suite and overrides == ["--epochs=1"]


def test_subcommands_are_registered_lazily():
    assert cli.SUBCOMMANDS["inspect"] == "recbole_llm.data.inspect:main"
    assert cli.SUBCOMMANDS["profiles"] == "recbole_llm.profiles.cli:main"


def test_seed_flag_sets_the_seed_of_a_single_run():
    from recbole_llm.validation import validate_run

    args, overrides = cli.build_parser().parse_known_args(["--model=BPR", "--seed=2021"])
    assert validate_run(args.model, args.dataset, None, overrides)["seed"] == 2021
