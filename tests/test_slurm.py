"""`automl run --launcher slurm` against a real single-node SLURM cluster (tests/slurm_cluster.py), with the study
on PostgreSQL: the budget met exactly by a job array, a task requeued by SIGUSR1 (what SLURM sends ahead of the
time limit) resuming its trial from the checkpoint, Ctrl-C cancelling the tasks and leaving nothing RUNNING.
Without SLURM these skip locally and fail under CI."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import optuna
import pytest
from conftest import AUTOML, CLUSTER_STUDY, drop_study, mlflow_runs
from optuna.trial import TrialState
from slurm_cluster import SlurmCluster, require_slurm

FIXTURES = Path(__file__).parent / "fixtures"
SLURM = "slurm: {{tasks: {tasks}, cpus_per_task: 1, shared: [.]}}"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    require_slurm()
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def slurm_study(slurm, postgres, workdir, monkeypatch):
    """A study file for the cluster, on PostgreSQL with a fresh name; SLURM's commands find the test cluster."""
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    name = f"slurm-{uuid.uuid4().hex[:10]}"

    def write(trials: int = 4, tasks: int = 2, epochs: int = 2, extra: str = "") -> Path:
        path = workdir / "study.yaml"
        launcher = SLURM.format(tasks=tasks)
        path.write_text(CLUSTER_STUDY.format(name=name, trials=trials, epochs=epochs, launcher=launcher) + extra)
        return path

    yield name, write
    subprocess.run(["scancel", "--name", f"automl-{name}"], env=slurm.env, capture_output=True)
    drop_study(name, postgres)


def run_automl(workdir: Path, storage: str, *extra: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "AUTOML_STORAGE": storage, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [AUTOML, "run", "study.yaml", "--launcher", "slurm", *extra],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def wait_for(path: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.2)


def test_a_job_array_runs_the_study_to_exactly_its_budget(slurm, slurm_study, postgres, workdir, tracking_server):
    name, write = slurm_study
    write(trials=4, tasks=2, extra=f"tracking_uri: {tracking_server}\n")
    proc = run_automl(workdir, postgres)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert re.search(r"submitted: SLURM job \d+, 2 task\(s\)", out)
    study = optuna.load_study(study_name=name, storage=postgres)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4, "the budget met exactly, every trial done"
    # every row of the table came from the storage, tagged with the SLURM task that ran it
    rows = [line for line in out.splitlines() if re.match(r"\s+\d+\s+mlp", line)]
    assert len(rows) == 4 and all(re.search(r"\[slurm-\d+_[01]\.0@", row) for row in rows), out
    # Both tasks start and claim from one budget; which of them claims how many trials is the scheduler's race
    # (a task SLURM starts a few seconds late may find the four short trials taken), so only the claimants are
    # checked here, and both tasks' start below.
    job = re.search(r"submitted: SLURM job (\d+)", out).group(1)
    workers = {t.user_attrs["worker"]["id"].split(".")[0] for t in study.trials}
    assert workers <= {f"slurm-{job}_0", f"slurm-{job}_1"}, f"every trial ran in a task of the array: {workers}"
    assert "best model (trial" in out
    assert not slurm.jobs(), "no task is left in the queue"
    client, parents, children = mlflow_runs(workdir, name, tracking_server)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(int(c.data.tags["optuna.trial_number"]) for c in children) == [0, 1, 2, 3]
    assert all(c.info.status == "FINISHED" for c in children)
    logs = sorted((workdir / "slurm").glob("automl-*.out"))
    assert len(logs) == 2 and all("ready after" in log.read_text() for log in logs)


def _paused_study(write, workdir: Path, trials: int) -> None:
    (workdir / "plugins").mkdir(exist_ok=True)
    shutil.copy(FIXTURES / "pause.py", workdir / "plugins" / "pause.py")
    write(trials=trials, tasks=1, epochs=4)


def test_a_task_signalled_before_its_time_limit_is_requeued_and_its_trial_resumes(
    slurm, slurm_study, postgres, workdir, monkeypatch
):
    name, write = slurm_study
    _paused_study(write, workdir, trials=2)
    monkeypatch.setenv("AUTOML_TEST_PAUSE_EPOCH", "2")  # the first trial waits at the start of epoch 3
    proc = run_automl(workdir, postgres)
    try:
        wait_for(workdir / "paused.pid")
        job = slurm.jobs()[0].split()[0]
        # what SLURM does `signal_seconds` before the time limit (--signal=B:USR1@S): USR1 to the batch script
        slurm.run("scancel", "--batch", "--signal=USR1", job)
        time.sleep(1)
        (workdir / "release").touch()
        out, _ = proc.communicate(timeout=400)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    study = optuna.load_study(study_name=name, storage=postgres)
    first, retry, other = sorted(study.trials, key=lambda t: t.number)
    assert first.state == TrialState.FAIL and first.user_attrs["reason"] == "interrupted"
    assert first.user_attrs["checkpoint_epoch"] == 3, "the interrupted trial finished epoch 3 and checkpointed"
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["retry_of"] == first.number
    assert retry.user_attrs["resumed"]["epoch"] == 3, "the retry resumed from the checkpoint, not from epoch 0"
    assert len(retry.intermediate_values) == 4
    assert other.state == TrialState.COMPLETE
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    log = next((workdir / "slurm").glob("automl-*.out")).read_text()
    assert "start 1" in log and "start 2" in log, "the same task ran twice: requeued"
    assert "interrupted; its retry resumes at epoch 3" in out


def test_ctrl_c_cancels_the_tasks_and_leaves_no_trial_running(slurm, slurm_study, postgres, workdir, monkeypatch):
    name, write = slurm_study
    _paused_study(write, workdir, trials=3)
    monkeypatch.setenv("AUTOML_TEST_PAUSE_EPOCH", "1")
    proc = run_automl(workdir, postgres)
    wait_for(workdir / "paused.pid")
    proc.send_signal(signal.SIGINT)
    time.sleep(1)
    (workdir / "release").touch()
    out, _ = proc.communicate(timeout=200)
    assert proc.returncode == 128 + signal.SIGINT, out
    assert "cancelling the workers' tasks" in out
    assert not slurm.jobs(), "scancel left no task behind"
    study = optuna.load_study(study_name=name, storage=postgres)
    assert not [t for t in study.trials if t.state == TrialState.RUNNING], "nothing left RUNNING"
    stopped = next(t for t in study.trials if t.user_attrs.get("reason") == "interrupted")
    assert any(
        t.user_attrs.get("retry_of") == stopped.number and t.state == TrialState.WAITING for t in study.trials
    ), "its retry waits for the next run"
    assert "Run the same command again to resume" in out


def test_a_study_the_nodes_cannot_share_is_refused_before_anything_is_created(write_study, workdir, cli):
    path = write_study(CLUSTER_STUDY.format(name="local-files", trials=2, epochs=1, launcher="slurm: {tasks: 2}"))
    result = cli("run", str(path), "--launcher", "slurm")
    assert result.code == 2
    assert "the Optuna storage" in result.err and "is a local file that the slurm nodes cannot share" in result.err
    assert "launcher.slurm.shared" in result.err and "postgresql://" in result.err
    assert "the MLflow store" in result.err
    assert not (workdir / "optuna.journal").exists() and not (workdir / "mlflow.db").exists()
