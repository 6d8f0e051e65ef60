"""SLURM across two machines: a second slurmd runs in a network namespace (tests/netns.py), so its worker
reaches PostgreSQL and the MLflow tracking server over the veth address 10.77.0.1, never over loopback. One
job array of two tasks, one CPU per node: a task lands on each node, and the study meets its budget exactly.
Without SLURM, root or iproute2 this skips locally and fails under CI."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import uuid

import optuna
import pytest
from conftest import AUTOML, CLUSTER_STUDY, POSTGRES, drop_study, free_port, mlflow_runs, start_tracking_server
from netns import Namespace, TcpRelay, require_netns
from optuna.trial import TrialState
from slurm_cluster import Node, SlurmCluster, require_slurm


@pytest.fixture(scope="module")
def two_machines(tmp_path_factory, postgres):
    require_slurm()
    require_netns()
    namespace = Namespace("automl-n2")
    namespace.create()
    relay = TcpRelay(namespace.outside, free_port(), "127.0.0.1", 5432)  # the database host's port forward
    server, tracking = start_tracking_server(tmp_path_factory.mktemp("mlflow-server"), namespace.outside)
    cluster = SlurmCluster(
        tmp_path_factory.mktemp("slurm2"),
        controller=namespace.outside,
        nodes=[
            Node(socket.gethostname(), namespace.outside, cpus=1),
            Node("node2", namespace.inside, netns=namespace.name, cpus=1),
        ],
    )
    try:
        cluster.start()
        yield (
            cluster,
            namespace,
            f"postgresql://postgres@{namespace.outside}:{relay.server.getsockname()[1]}/test",
            tracking,
        )
    finally:
        cluster.stop()
        server.terminate()
        relay.close()
        namespace.delete()


def test_a_task_on_another_machine_reaches_the_study_over_the_network(two_machines, workdir, monkeypatch):
    cluster, namespace, storage, tracking = two_machines
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    # the other machine has no route to this one's loopback: only the veth addresses
    reach = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            namespace.name,
            "python3",
            "-c",
            "import socket; socket.create_connection(('127.0.0.1', 5432), timeout=2)",
        ],
        capture_output=True,
    )
    assert reach.returncode != 0, "PostgreSQL's loopback port must not be reachable from the other machine"
    name = f"slurm2-{uuid.uuid4().hex[:10]}"
    (workdir / "study.yaml").write_text(
        CLUSTER_STUDY.format(name=name, trials=4, epochs=2, launcher="slurm: {tasks: 2, shared: [.]}")
        + f"tracking_uri: {tracking}\n"
    )
    try:
        done = subprocess.run(
            [AUTOML, "run", "study.yaml", "--launcher", "slurm"],
            cwd=workdir,
            env={**os.environ, "AUTOML_STORAGE": storage},
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        study = optuna.load_study(study_name=name, storage=POSTGRES)
        assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
        # one task started on each machine and its worker set up the study there (over the network from node2);
        # which of them claims which trials depends on who is ready first
        logs = [log.read_text() for log in sorted((workdir / "slurm").glob("automl-*.out"))]
        started = {node for text in logs for node in re.findall(r"automl: task \S+ on (\S+), start", text)}
        assert started == {socket.gethostname(), "node2"}, f"a task started on each machine: {logs}"
        assert len(logs) == 2 and all("ready after" in text for text in logs), logs
        nodes = {t.user_attrs["worker"]["id"].split("@")[1] for t in study.trials}
        assert nodes <= {socket.gethostname(), "node2"}, nodes
        _, parents, children = mlflow_runs(workdir, name, tracking)
        assert parents[0].info.status == "FINISHED" and len(children) == 4
    finally:
        drop_study(name, POSTGRES)
