"""A wheel built from the repository, installed non-editable into a fresh venv, runs from an empty folder.

The venv sees the dependencies of the interpreter running the tests through a ``.pth`` line (no
download); that interpreter's editable recbole_llm is not visible there (``.pth`` files inside a
path added by a ``.pth`` line are not processed), so the installed wheel is what runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT, save_tiny_encoder

pytestmark = pytest.mark.slow

_QUICK = ["--epochs=1", "--show_progress=False", "--state=ERROR", "--train_batch_size=4096", "--eval_batch_size=40960"]
# Top-level folders that are not part of a build (run outputs, checkouts, environments).
_NOT_SOURCE = {
    ".git",
    ".venv",
    "build",
    "log",
    "log_tensorboard",
    "saved",
    "benchmarks",
    "tests",
    "dataset",
    ".pytest_cache",
    "demo_results",
}


def _ignored(folder: str, names: list[str]) -> set[str]:
    top = Path(folder) == PROJECT_ROOT
    return {n for n in names if (top and n in _NOT_SOURCE) or n == "__pycache__" or n.endswith(".egg-info")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built once from a copy of the source tree (the checkout stays free of build/ folders)."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    source = tmp_path / "src"
    shutil.copytree(PROJECT_ROOT, source, symlinks=True, ignore=_ignored)
    out = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    (wheel,) = out.glob("recbole_llm-*.whl")
    return wheel


def _fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return venv


def test_wheel_ships_every_yaml_and_prompt(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        p.relative_to(PROJECT_ROOT).as_posix()
        for p in (PROJECT_ROOT / "properties").rglob("*")
        if p.suffix in (".yaml", ".txt")
    }
    assert shipped and {f"recbole_llm/{name}" for name in shipped} <= names
    assert not any(name.startswith(("share/", "properties/")) or ".data/" in name for name in names)


# Runs each (name, argv) of its JSON argument through the installed entry point, in one process (one start-up
# of torch and RecBole); prints where recbole_llm was imported from, then "=== name" before each run.
_DRIVER = (
    "import json, sys\n"
    "import recbole_llm\n"
    "from recbole_llm.cli import main\n"
    "print(recbole_llm.__file__, flush=True)\n"
    "for name, argv in json.loads(sys.argv[1]).items():\n"
    "    print(f'=== {name}', flush=True)\n"
    "    if main(argv) != 0:\n"
    "        sys.exit(f'{name} failed')\n"
)


def _model_runs(tmp_path: Path, work: Path) -> dict[str, list[str]]:
    """Flags of one quick run per family of our models, on named datasets converted from the mini raw files
    (RECBOLE_LLM_RAW_DATA, set by conftest).

    ReviewGNN encodes ~1,300 reviews: with a tiny local encoder (a folder path) instead of MiniLM's minute on
    one thread; P4R's item profiles are encoded by the bundled MiniLM (the default, resolved offline).
    """
    save_tiny_encoder(tmp_path / "tiny_encoder")
    return {
        "ReviewGNN": [
            "--model=ReviewGNN",
            "--dataset=amazon-gift-cards",
            f"--text_cache_dir={tmp_path / 'cache'}",
            f"--text_encoder={tmp_path / 'tiny_encoder'}",
        ],
        # Short template profiles (categories only, no reviews): item texts encoded in a second.
        "P4R": [
            "--model=P4R",
            "--dataset=amazon-gift-cards",
            f"--text_cache_dir={tmp_path / 'cache'}",
            f"--profile_dir={work}",
            "--profile_item_fields=['categories']",
            "--profile_extrinsic=False",
        ],
        "BSARec": [
            "--model=BSARec",
            "--dataset=lastfm-seq",
            "--oie_init=item_emb",
            "--oie_pretrain_epochs=1",
            "--oie_num_sequences=300",
            "--MAX_ITEM_LIST_LENGTH=10",
        ],
    }


def test_installed_wheel_runs_from_an_empty_folder(tmp_path, wheel):
    venv = _fresh_venv(tmp_path, wheel)
    work = tmp_path / "empty"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": "", "OMP_NUM_THREADS": "1"}
    runs = _model_runs(tmp_path, work)
    argvs = json.dumps({name: [*flags, *_QUICK] for name, flags in runs.items()})
    command = [str(venv / "bin" / "python"), "-c", _DRIVER, argvs]
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    where, *parts = result.stdout.split("=== ")
    assert where.startswith(str(venv)), where  # the installed wheel, not the checkout
    outputs = dict(part.split("\n", 1) for part in parts)
    assert list(outputs) == list(runs)
    for name, output in outputs.items():
        assert "test result" in output and "ndcg@10" in output, (name, output[-2000:])

    # The console script, with a yaml shipped in the wheel, on RecBole's bundled ml-100k.
    installed = Path(where.strip()).parent / "properties" / "popk.yaml"
    script = [str(venv / "bin" / "recbole-llm"), "--model=LightGCN", f"--config_files={installed}", *_QUICK]
    result = subprocess.run(script, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test result" in result.stdout and "ndcg@10" in result.stdout
    assert "categorydiversity@10" in result.stdout  # a metric the shipped popk.yaml lists
