"""Beyond one machine: PostgreSQL storage with heartbeats, `automl worker` processes each with their own view,
an MLflow tracking server, and a storage password that must never leak.

These use the PostgreSQL server on 127.0.0.1:5432 for real (`scripts/test.sh` installs and starts it through
`scripts/postgres.sh` when it is missing and it can). Where none answers they skip, saying why; under CI (env var
CI set) they fail instead, so that CI never passes with the distributed mode untested.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import optuna
import pytest
from conftest import AUTOML, drop_study, mlflow_runs
from optuna.trial import TrialState

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "s3cr3t-Pa55word"
FINAL = (TrialState.COMPLETE, TrialState.PRUNED)

STUDY = """
name: {name}
dataset: digits
objective: {{metric: val_accuracy, direction: maximize}}
budget: {{trials: {trials}, max_epochs: 2}}
pruner: median  # trials train to the end (not paused at asha rungs)
heartbeat_seconds: 1
seed: 0
search:
  architecture: {{faulty: {{fault: {fault}}}}}
  activation: relu
  loss: cross_entropy
  optimizer: {{adam: {{lr: {{low: 0.001, high: 0.05, log: true}}}}}}
  batch_size: 64
"""


@pytest.fixture
def pg_study(postgres, workdir):
    """A study file with a fresh study name on PostgreSQL, deleted again afterwards."""
    name = f"dist-{uuid.uuid4().hex[:10]}"
    (workdir / "plugins").mkdir()
    shutil.copy(FIXTURES / "faulty.py", workdir / "plugins" / "faulty.py")

    def write(fault: str = "none", trials: int = 4) -> Path:
        path = workdir / "study.yaml"
        path.write_text(STUDY.format(name=name, fault=fault, trials=trials))
        return path

    yield name, write
    drop_study(name, postgres)


def start_worker(workdir: Path, storage: str, tracking: str) -> subprocess.Popen:
    env = {**os.environ, "AUTOML_STORAGE": storage, "AUTOML_TRACKING_URI": tracking}
    return subprocess.Popen(
        [AUTOML, "worker", "study.yaml", "--threads", "1"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(procs: list[subprocess.Popen], timeout: float = 300) -> list[tuple[str, str]]:
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=timeout))
        finally:
            proc.kill()
    return outputs


def test_two_automl_workers_on_postgresql_finish_exactly_the_budget(pg_study, postgres, workdir):
    name, write = pg_study
    write(trials=5)
    tracking = f"sqlite:///{workdir / 'mlflow.db'}"
    workers = [start_worker(workdir, postgres, tracking) for _ in range(2)]
    outputs = finish(workers)
    for proc, (_out, err) in zip(workers, outputs):
        assert proc.returncode == 0, err
    study = optuna.load_study(study_name=name, storage=postgres)
    assert [t.number for t in study.trials] == list(range(5))
    assert all(t.state in FINAL for t in study.trials)
    pids = {t.user_attrs["worker"]["pid"] for t in study.trials}
    assert pids == {w.pid for w in workers}, "each worker ran trials from its own view of the study"
    # the study, its MLflow experiment and parent run were created once, by whichever worker came first
    _, parents, children = mlflow_runs(workdir, name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(int(c.data.tags["optuna.trial_number"]) for c in children) == list(range(5))
    assert all(c.info.status == "FINISHED" for c in children)


def test_a_dead_worker_is_found_by_its_missing_heartbeat_and_its_trial_retried(pg_study, postgres, workdir):
    name, write = pg_study
    write(fault="sleep", trials=3)
    tracking = f"sqlite:///{workdir / 'mlflow.db'}"
    workers = [start_worker(workdir, postgres, tracking) for _ in range(2)]
    try:
        pid_file = workdir / "sleeping.pid"
        deadline = time.monotonic() + 120
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pid_file.exists(), "no trial reached the sleeping forward pass"
        victim = int(pid_file.read_text())
        os.kill(victim, signal.SIGKILL)
        survivors = [w for w in workers if w.pid != victim]
        assert len(survivors) == 1
        out, err = survivors[0].communicate(timeout=300)
    finally:
        for w in workers:
            w.kill()
    assert survivors[0].returncode == 0, err
    study = optuna.load_study(study_name=name, storage=postgres)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and len([t for t in study.trials if t.state in FINAL]) == 3
    assert failed[0].user_attrs["worker"]["pid"] == victim
    retry = next(t for t in study.trials if t.user_attrs.get("retry_of") == failed[0].number)
    assert retry.params == failed[0].params and retry.state in FINAL
    assert "stopped sending heartbeats" in retry.user_attrs["retry_reason"]
    assert not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    _, _, children = mlflow_runs(workdir, name)
    lost = next(c for c in children if c.data.tags["optuna.trial_number"] == str(failed[0].number))
    assert lost.info.status == "FAILED" and "stopped sending heartbeats" in lost.data.tags["reason"]
    assert not [c for c in children if c.info.status == "RUNNING"]


def _children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def test_automl_run_on_postgresql_and_a_tracking_server_never_shows_the_password(
    pg_study, postgres, workdir, tracking_server
):
    name, write = pg_study
    write(trials=4)
    secret_url = postgres.replace("postgres@", f"postgres:{SECRET}@")
    assert SECRET in secret_url
    env = {**os.environ, "AUTOML_STORAGE": secret_url}
    proc = subprocess.Popen(
        [AUTOML, "run", "study.yaml", "--workers", "2", "--tracking-uri", tracking_server],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    command_lines = []
    try:
        while proc.poll() is None and len(command_lines) < 2:
            command_lines = [Path(f"/proc/{c}/cmdline").read_text() for c in _children_of(proc.pid)]
            time.sleep(0.1)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert len(command_lines) == 2 and all("worker" in c for c in command_lines)
    assert not [c for c in command_lines if SECRET in c], "the password is on a worker's command line"
    assert SECRET not in out + err
    assert "postgres:***@127.0.0.1" in out  # the header names the storage, redacted

    study = optuna.load_study(study_name=name, storage=postgres)
    assert len([t for t in study.trials if t.state in FINAL]) == 4 and len(study.trials) == 4
    assert SECRET not in json.dumps([study.user_attrs] + [t.user_attrs for t in study.trials], default=str)

    client, parents, children = mlflow_runs(workdir, name, uri=tracking_server)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and len(children) == 4
    for run in parents + children:
        recorded = json.dumps([run.data.params, run.data.tags, run.data.metrics])
        assert SECRET not in recorded
    study_yaml = client.download_artifacts(parents[0].info.run_id, "study.yaml", str(workdir))
    assert SECRET not in Path(study_yaml).read_text()
