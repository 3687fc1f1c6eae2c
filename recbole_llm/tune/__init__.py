"""Ray Tune hyperparameter search for recbole-llm and RecBole models (Ray 2.6.3).

    python run_recbole_llm.py --tune=properties/search/BPR.yaml --model=BPR --dataset=ml-100k \\
        --num_samples=20 --epochs=50 [--search_alg=random|optuna|hyperopt] [--scheduler=asha|fifo] \\
        [--grace_period=5] [--reduction_factor=3] [--cpus_per_trial=1] [--gpus_per_trial=0] \\
        [--max_concurrent=N] [--time_budget_s=S] [--ray_num_cpus=N | --ray_address=auto] [--verbose=1]

``--tune`` takes a yaml path or the name of a space shipped in ``properties/search/`` (``--tune=BPR``).
Without ``--ray_address`` a local Ray is started (``--ray_num_cpus``, default all cores) and shut
down afterwards; ``--ray_address=auto`` (on a node of a running cluster) or ``--ray_address=host:6379``
joins an existing cluster and leaves it running; its nodes need recbole-llm installed and the
data at the same absolute path; a Ray Client address (``ray://host:10001``) works too
(``tests/test_ray_cluster.py`` runs both on a two-node cluster on one machine).

Why not RecBole's ``objective_function`` + ``run_hyper.py``: it reports and returns (ASHA then
rejects the trial), asks for a GPU per trial (never schedules on a CPU machine) and only finds
RecBole's own models. Here each trial is a function trainable that reports the full validation
result after every evaluation and returns nothing, so ASHA can stop poor trials early.

A search space is a yaml file mapping config keys to one distribution each::

    learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
    embedding_size: {choice: [32, 64, 128]}
    reg_weight: {uniform: [0.0, 1.0e-3]}
    n_layers: {grid: [1, 2, 3]}          # every value, num_samples times (random search only)

Constant settings come from the space's optional ``fixed:`` mapping (e.g. ``train_neg_sample_args: ~``
for a CE loss), ``--config_files`` and ``--key=value`` (highest), as in a normal run. The space is
checked completely (distribution names, bounds, keys that the model's config does not have, keys
also fixed on the command line, every choice value through RecBole's Config) before Ray starts.

Each trial builds its own RecBole Config and seeds itself (``seed``, the config's unless searched),
runs in its own Ray trial folder (its ``log/`` and ``saved/`` cannot collide), evaluates only on the
validation split and never saves a model. Outputs in ``--output`` (default
``saved/tune/<Model>-<dataset>-<time>/``): ``trials.csv`` and ``trials.md`` (every trial: parameters,
best validation metric, epochs, status, error) and ``best.yaml``, which reproduces the best trial::

    python run_recbole_llm.py --model=BPR --dataset=ml-100k --config_files=<output>/best.yaml

A random search draws its ``num_samples`` configurations up front from the seed (``seed``, the
config's unless searched), so the same space and seed give the same trials on any machine.
``run_tune(..., ledger=...)`` (the benchmark suites, ``recbole_llm.tune.ledger``) makes a search
resumable anywhere: the ledger gets each trial as it finishes, and a rerun runs only the trials it
lacks (random: the drawn configurations not in it; optuna: the rest of the budget, told the stored
scores; hyperopt: the rest, with a seed moved past the stored ones); Ctrl+C stops it like a kill.

The package, one module per job: ``space`` (read, check, convert a search space), ``options``
(``TuneOptions``), ``trainable`` (one trial, reporting through ``TuneReportMixin``), ``report``
(trials table, ``trials.md``, ``best.yaml``), ``ledger`` (finished trials kept by the caller),
``runner`` (``run_tune``) and ``cli`` (the flags).
"""

from __future__ import annotations

from recbole_llm.tune.cli import run_from_cli, split_tune_flags
from recbole_llm.tune.options import TuneOptions
from recbole_llm.tune.report import TuneSummary
from recbole_llm.tune.runner import run_tune
from recbole_llm.tune.space import (
    SearchSpace,
    SearchSpaceError,
    load_search_space,
    shipped_search_spaces,
    to_ray_space,
    validate_search_space,
)
from recbole_llm.tune.trainable import TuneReportMixin

__all__ = [
    "SearchSpace",
    "SearchSpaceError",
    "TuneOptions",
    "TuneReportMixin",
    "TuneSummary",
    "load_search_space",
    "run_from_cli",
    "run_tune",
    "shipped_search_spaces",
    "split_tune_flags",
    "to_ray_space",
    "validate_search_space",
]
