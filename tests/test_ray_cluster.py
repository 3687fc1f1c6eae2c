"""Ray Tune against a real two-node Ray cluster on this machine, by address and through Ray Client (``ray://``).

``ray.cluster_utils.Cluster`` starts a head node and a second node (each its own raylet and object
store, one CPU each, custom resources ``node_a`` / ``node_b``), the way ``ray start --head`` and
``ray start --address`` do on two machines. Each node can run one 1-CPU trial at a time, so a 4-trial
search has to use both; every trial reports the node it ran on (column ``node`` of ``trials.csv``).
"""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from recbole_llm.distributed import free_port
from recbole_llm.tune import TuneOptions, run_tune

SPACE = {"learning_rate": {"loguniform": [1.0e-3, 1.0e-2]}, "embedding_size": {"choice": [8, 16]}}
FIXED = [
    "--epochs=1", "--state=ERROR", "--show_progress=False", "--train_batch_size=8192", "--eval_batch_size=100000",
]  # fmt: skip


@pytest.fixture
def cluster():
    """Head node (with a Ray Client server) and one more node, both on this machine; one cluster per test
    (a Ray Client connection to a cluster that an earlier driver in this process used failed to start)."""
    import ray
    from ray.cluster_utils import Cluster

    client_port = free_port()
    head = {"num_cpus": 1, "resources": {"node_a": 1}, "include_dashboard": False}
    head["ray_client_server_port"] = client_port
    ray_cluster = Cluster(initialize_head=True, head_node_args=head)
    ray_cluster.add_node(num_cpus=1, resources={"node_b": 1})
    ray_cluster.wait_for_nodes()
    ray.init(address=ray_cluster.address)
    ray_cluster.node_ids = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    ray.shutdown()
    ray_cluster.client_address = f"ray://127.0.0.1:{client_port}"
    assert len(ray_cluster.node_ids) == 2
    yield ray_cluster
    ray_cluster.shutdown()


def _search(address: str, output) -> pd.DataFrame:
    options = TuneOptions(num_samples=4, scheduler="fifo", ray_address=address, output=str(output), verbose=0)
    summary = run_tune("BPR", "ml-100k", SPACE, cmd_args=FIXED, options=options)
    assert summary.best_yaml is not None and summary.best_yaml.exists()
    best = yaml.safe_load(summary.best_yaml.read_text(encoding="utf-8"))
    assert best["dataset"] == "ml-100k" and best["epochs"] == 1 and best["train_batch_size"] == 8192
    assert best["learning_rate"] == pytest.approx(summary.best["param.learning_rate"])
    assert best["embedding_size"] == summary.best["param.embedding_size"]
    return pd.read_csv(summary.csv_path)


def test_four_trials_run_on_both_nodes_of_the_cluster(cluster, tmp_path):
    trials = _search(cluster.address, tmp_path / "out")
    assert len(trials) == 4 and set(trials["status"]) == {"completed"}
    assert set(trials["node"]) == cluster.node_ids


def test_ray_client_address_runs_the_search_on_the_cluster(cluster, tmp_path):
    trials = _search(cluster.client_address, tmp_path / "out")
    assert len(trials) == 4 and set(trials["status"]) == {"completed"}
    assert set(trials["node"]) <= cluster.node_ids
