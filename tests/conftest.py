"""Shared fixtures: a throwaway working directory, study files in it, and the CLI run in-process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from orchestrator.api.registry import DISABLE_AUTOLOAD_ENV, LOAD_ONLY_ENV, Registry, load_registry
from orchestrator.cli import main

# A tiny, fast study: 3 trials of a small MLP on digits, 2 epochs each.
TINY_STUDY = """
name: tiny
dataset: digits
objective: {metric: val_accuracy, direction: maximize}
budget: {trials: 3, max_epochs: 2}
pruner: median  # trials train to the end (not paused at asha rungs): tests of asha set their own
seed: 0
search:
  architecture:
    mlp: {depth: 1, width: [16, 32]}
  activation: [relu, sigmoid]
  loss: cross_entropy
  optimizer:
    adam: {lr: {low: 0.001, high: 0.01, log: true}}
  batch_size: 64
"""


# A CNN on digits with one fixed configuration: two trials of 4 epochs (rerun and thread tests).
RERUN_STUDY = """
name: rerun
dataset: digits
objective: {metric: val_loss, direction: minimize}
budget: {trials: 2, max_epochs: 4}
pruner: none
seed: 0
search:
  architecture: {cnn: {channels: 16, depth: 2, kernel_size: 3}}
  activation: relu
  loss: cross_entropy
  optimizer: {adam: {lr: 0.003}}
  batch_size: 32
"""

AUTOML = str(Path(sys.executable).with_name("automl"))  # the installed console script


def load_optuna(workdir: Path, name: str = "tiny") -> optuna.Study:
    """The study as Optuna's own client reads it from the default journal file."""
    storage = JournalStorage(JournalFileBackend(str(workdir / "optuna.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def mlflow_runs(workdir: Path, name: str = "tiny", uri: str | None = None) -> tuple[MlflowClient, list, list]:
    """The study's MLflow client, parent runs and child (trial) runs, from the default store or `uri`."""
    client = MlflowClient(uri or f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None, "the study has no MLflow experiment"
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("automl.role") == "study"]
    children = [r for r in runs if r.data.tags.get("automl.role") == "trial"]
    return client, parents, children


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, made current for the test (where mlflow.db etc. would land)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def write_study(workdir: Path) -> Callable[..., Path]:
    """Write a study file (dedented YAML) into the working directory and return its path."""

    def write(text: str = TINY_STUDY, name: str = "study.yaml") -> Path:
        path = workdir / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run `automl ARGS...` in this process and capture its exit code and output."""

    def run(*args: str) -> CliResult:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def builtin_registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """The built-ins on their own: loaded from an empty directory with the plugin env vars cleared."""
    saved_cwd, saved_env = (
        Path.cwd(),
        {k: os.environ.pop(k) for k in (DISABLE_AUTOLOAD_ENV, LOAD_ONLY_ENV) if k in os.environ},
    )
    os.chdir(tmp_path_factory.mktemp("empty"))
    try:
        registry = load_registry()
    finally:
        os.chdir(saved_cwd)
        os.environ.update(saved_env)
    assert not registry.errors, registry.errors
    return registry


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM the process group that `proc` leads, then SIGKILL whatever is left of it after `grace` s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        proc.poll()
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


POSTGRES = os.environ.get("AUTOML_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres() -> str:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(POSTGRES)
        with engine.connect():
            pass
        engine.dispose()
        return POSTGRES
    except Exception as exc:  # pragma: no cover - depends on the machine
        reason = f"no PostgreSQL server answers at {POSTGRES}: {str(exc).splitlines()[0]}"
    # Outside the except block, so that the report is this one line, not the chained traceback.
    if os.environ.get("CI"):  # pragma: no cover - depends on the machine
        pytest.fail(
            f"{reason} (CI is set, so this fails instead of skipping; run `bash scripts/postgres.sh`,"
            " as root to let it install and start PostgreSQL)",
            pytrace=False,
        )
    pytest.skip(reason)  # pragma: no cover - depends on the machine


@pytest.fixture
def tracking_server(tmp_path_factory):
    """A real MLflow tracking server on 127.0.0.1 (its own SQLite store and artifact folder)."""
    proc, uri = start_tracking_server(tmp_path_factory.mktemp("mlflow-server"), "127.0.0.1")
    yield uri
    proc.terminate()
    proc.wait(timeout=30)


def start_tracking_server(folder: Path, host: str) -> tuple[subprocess.Popen, str]:
    """`mlflow server` on host (a free port), its store and artifacts in `folder`, once it answers /health."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            host,
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--workers",
            "1",
        ],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://{host}:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            return proc, uri
        except OSError:
            time.sleep(0.5)
    proc.kill()
    pytest.fail("the MLflow tracking server did not start")


# A study for a cluster launcher's tests: PostgreSQL heartbeats, a checkpoint at every epoch, `launcher` filled in.
CLUSTER_STUDY = """
name: {name}
dataset: digits
objective: {{metric: val_accuracy, direction: maximize}}
budget: {{trials: {trials}, max_epochs: {epochs}}}
pruner: median
seed: 0
heartbeat_seconds: 2
checkpoints: {{min_seconds: 0}}
launcher:
  {launcher}
search:
  architecture:
    mlp: {{depth: 1, width: [16, 32]}}
  activation: [relu, sigmoid]
  loss: cross_entropy
  optimizer:
    adam: {{lr: {{low: 0.001, high: 0.01, log: true}}}}
  batch_size: 64
"""


def drop_study(name: str, storage: str) -> None:
    """Delete a test's study from a shared storage (if it was created)."""
    try:
        optuna.delete_study(study_name=name, storage=storage)
    except KeyError:
        pass
