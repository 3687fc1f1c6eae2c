"""Shared test set-up: real data from ../shared/datasets, and a private working directory.

RecBole writes ``log/``, ``log_tensorboard/`` and ``saved/`` into the current directory, so every
test runs inside its own temporary folder.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATASETS = Path(os.environ.get("RECBOLE_LLM_RAW_DATA", PROJECT_ROOT.parent / "shared" / "datasets")).resolve()
os.environ["RECBOLE_LLM_RAW_DATA"] = str(SHARED_DATASETS)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Settings that keep RecBole runs in tests small and quiet; tests add their own.
FAST = {"epochs": 1, "show_progress": False, "state": "ERROR", "use_gpu": False, "train_batch_size": 4096}


@pytest.fixture(autouse=True)
def _isolated_workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.fail(f"Real data folder not found at {SHARED_DATASETS}: put ../shared/datasets beside the project "
                    "or set RECBOLE_LLM_RAW_DATA.")
    return SHARED_DATASETS


@pytest.fixture
def fast_config() -> dict:
    return dict(FAST)
