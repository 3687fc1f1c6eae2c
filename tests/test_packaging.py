"""A wheel built from the repository, installed non-editable into a fresh venv, runs from an empty folder.

The venv sees the dependencies of the interpreter running the tests through a ``.pth`` line (no
download); that interpreter's editable recbole_llm is not visible there (``.pth`` files inside a
path added by a ``.pth`` line are not processed), so the installed wheel is what runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT

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


def test_installed_wheel_runs_from_an_empty_folder(tmp_path, wheel):
    venv = _fresh_venv(tmp_path, wheel)
    work = tmp_path / "empty"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": "", "OMP_NUM_THREADS": "1"}
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import recbole_llm; print(recbole_llm.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(venv)), where
    installed = Path(where.strip()).parent / "properties" / "popk.yaml"
    script = str(venv / "bin" / "recbole-llm")
    runs = [
        [script, "--model=LightGCN", f"--config_files={installed}", *_QUICK],
        # Short template profiles (genres only) keep the text encoding of the 1682 items to a few seconds.
        [
            script,
            "--model=P4R",
            f"--text_cache_dir={tmp_path / 'text_cache'}",
            f"--profile_dir={work}",
            "--profile_item_fields=['class']",
            "--profile_extrinsic=False",
            *_QUICK,
        ],
        # Named datasets converted from the mini raw files (RECBOLE_LLM_RAW_DATA, set by conftest).
        [
            script,
            "--model=ReviewGNN",
            "--dataset=amazon-gift-cards",
            f"--text_cache_dir={tmp_path / 'text_cache'}",
            *_QUICK,
        ],
        [
            script,
            "--model=BSARec",
            "--dataset=lastfm-seq",
            "--oie_init=item_emb",
            "--oie_pretrain_epochs=1",
            "--oie_num_sequences=300",
            "--MAX_ITEM_LIST_LENGTH=10",
            *_QUICK,
        ],
    ]
    for command in runs:
        result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "test result" in result.stdout and "ndcg@10" in result.stdout
