"""Ray Tune against a real two-node Ray cluster on this machine, by address and through Ray Client (``ray://``).

``ray.cluster_utils.Cluster`` starts a head node and a second node (each its own raylet and object
store, one CPU each, custom resources ``node_a`` / ``node_b``), the way ``ray start --head`` and
``ray start --address`` do on two machines. Each node can run one 1-CPU trial at a time, so a 4-trial
search has to use both; every trial reports the node it ran on (column ``node`` of ``trials.csv``).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from recbole_llm.compat import shutdown_ray
from recbole_llm.tune import TuneOptions, run_tune

SPACE = {"learning_rate": {"loguniform": [1.0e-3, 1.0e-2]}, "embedding_size": {"choice": [8, 16]}}
FIXED = [
    "--epochs=1", "--state=ERROR", "--show_progress=False", "--train_batch_size=8192", "--eval_batch_size=100000",
]  # fmt: skip
CLIENT_SERVER_START_S = 180  # a Ray Client server starting on a busy machine (Ray's own wait is 30 s)


def _port_free_on_every_interface() -> int:
    """A port nothing listens on, on any interface: Ray's client server listens on 0.0.0.0."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def _client_server_logs(head) -> str:
    """The last lines of the head's Ray Client server logs (proxy and per-client servers), for a failure."""
    logs = sorted(Path(head.get_logs_dir_path()).glob("ray_client_server*.err"))
    tails = ("\n".join(log.read_text(errors="replace").splitlines()[-15:]) for log in logs)
    return "\n".join(f"--- {log.name}\n{tail}" for log, tail in zip(logs, tails, strict=True))


def _wait_for_client_server(head, port: int) -> None:
    """Until the head's Ray Client server accepts connections; fail with its logs if it died or never listened."""
    from ray._private import ray_constants

    server = head.all_processes[ray_constants.PROCESS_TYPE_RAY_CLIENT_SERVER][0].process
    deadline = time.monotonic() + CLIENT_SERVER_START_S
    while time.monotonic() < deadline and server.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    status = f"exited with {server.poll()}" if server.poll() is not None else f"silent for {CLIENT_SERVER_START_S} s"
    pytest.fail(f"Ray Client server on port {port} not listening ({status}):\n{_client_server_logs(head)}")


def _wait_for_runtime_env_agent(head) -> None:
    """Until the head's runtime-env agent answers (the Ray Client server asks it for each client's runtime
    env, ours has env_vars: asked too early, it retries with backoff while the client waits)."""
    import grpc
    from ray.core.generated import runtime_env_agent_pb2, runtime_env_agent_pb2_grpc

    waiting = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.DEADLINE_EXCEEDED)
    deadline = time.monotonic() + CLIENT_SERVER_START_S
    with grpc.insecure_channel(f"127.0.0.1:{head.metrics_agent_port}") as channel:
        stub = runtime_env_agent_pb2_grpc.RuntimeEnvServiceStub(channel)
        while True:
            try:
                stub.GetRuntimeEnvsInfo(runtime_env_agent_pb2.GetRuntimeEnvsInfoRequest(), timeout=5)
                return
            except grpc.RpcError as exc:
                if exc.code() not in waiting or time.monotonic() > deadline:
                    pytest.fail(f"runtime-env agent of the head node not answering: {exc.code()} {exc.details()}")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def cluster():
    """Head node (with a Ray Client server) and one more node, both on this machine; one for the module.

    The node processes start with gRPC's fork handlers off (``GRPC_ENABLE_FORK_SUPPORT=false``): for each
    client the Ray Client server forks the client's own server process (``ray_client_server_23000``);
    with Ray 2.6.3 and this grpcio, a fork while other threads are in gRPC ("skipping fork() handlers"
    in ray_client_server.err) left that process dead at start, and the search failed with "Starting Ray
    client server failed" (4 of 7 connections to a fresh cluster; 0 of 8 with the handlers off).
    The tests start once the Ray Client server listens and the runtime-env agent answers; each search
    shuts its own driver down (``_ray_session``), so the Ray Client search after the search by address
    finds the cluster without a driver. No driver of this process connects before a test: node ids come
    from the cluster's GCS. Teardown runs whatever happened, also when the start failed half-way, and
    leaves no Ray behind: no driver, no client connection or stale client mode, no node process.
    """
    from ray.cluster_utils import Cluster

    ray_cluster = Cluster()
    try:
        client_port = _port_free_on_every_interface()
        head = {"num_cpus": 1, "resources": {"node_a": 1}, "include_dashboard": False}
        with pytest.MonkeyPatch.context() as env:
            env.setenv("GRPC_ENABLE_FORK_SUPPORT", "false")  # for the node processes (they inherit it) only
            ray_cluster.add_node(**head, ray_client_server_port=client_port)
            ray_cluster.add_node(num_cpus=1, resources={"node_b": 1})
        ray_cluster.wait_for_nodes()
        ray_cluster.node_ids = {n["NodeID"] for n in ray_cluster.global_state.node_table() if n["Alive"]}
        assert len(ray_cluster.node_ids) == 2
        _wait_for_client_server(ray_cluster.head_node, client_port)
        _wait_for_runtime_env_agent(ray_cluster.head_node)
        ray_cluster.client_address = f"ray://127.0.0.1:{client_port}"
        yield ray_cluster
    finally:
        try:
            shutdown_ray()
        finally:
            ray_cluster.shutdown()


def _search(address: str, output, trials: int) -> pd.DataFrame:
    options = TuneOptions(num_samples=trials, scheduler="fifo", ray_address=address, output=str(output), verbose=0)
    summary = run_tune("BPR", "ml-100k", SPACE, cmd_args=FIXED, options=options)
    assert summary.best_yaml is not None and summary.best_yaml.exists()
    best = yaml.safe_load(summary.best_yaml.read_text(encoding="utf-8"))
    assert best["dataset"] == "ml-100k" and best["epochs"] == 1 and best["train_batch_size"] == 8192
    assert best["learning_rate"] == pytest.approx(summary.best["param.learning_rate"])
    assert best["embedding_size"] == summary.best["param.embedding_size"]
    return pd.read_csv(summary.csv_path)


def test_four_trials_run_on_both_nodes_of_the_cluster(cluster, tmp_path):
    trials = _search(cluster.address, tmp_path / "out", trials=4)
    assert len(trials) == 4 and set(trials["status"]) == {"completed"}
    assert set(trials["node"]) == cluster.node_ids


def test_ray_client_address_runs_the_search_on_the_cluster(cluster, tmp_path):
    try:
        trials = _search(cluster.client_address, tmp_path / "out", trials=2)  # both nodes: the test above
    except ConnectionError as exc:  # Ray Client's errors name log files on the head: show them
        pytest.fail(f"{exc}\n{_client_server_logs(cluster.head_node)}")
    assert len(trials) == 2 and set(trials["status"]) == {"completed"}
    assert set(trials["node"]) <= cluster.node_ids
