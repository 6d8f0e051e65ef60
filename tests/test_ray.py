"""`automl run --launcher ray` on a real Ray head node on this machine (`ray start --head`, token authentication
on, as Ray starts clusters by default), with the study on PostgreSQL: the budget met exactly by two actors, and
an actor lost with its worker (both killed, as when a node goes) replaced, its trial retried from the
checkpoint. Ray is the optional extra `ray` (scripts/test.sh installs it); without it these skip locally and
fail under CI. The head node is stopped with `ray stop` at the end."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import optuna
import pytest
from conftest import AUTOML, CLUSTER_STUDY, drop_study, free_port, mlflow_runs
from optuna.trial import TrialState

FIXTURES = Path(__file__).parent / "fixtures"
RAY = shutil.which("ray") or str(Path(AUTOML).with_name("ray"))


@pytest.fixture(scope="module")
def ray_head():
    if importlib.util.find_spec("ray") is None or not os.access(RAY, os.X_OK):
        reason = "Ray is not installed (pip install -e '.[ray]'; scripts/test.sh does)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
        pytest.skip(reason)
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    # Ray's token authentication needs a token in ~/.ray/auth_token: a fresh machine has none (made once, kept)
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=120)
    subprocess.run(
        [
            RAY,
            "start",
            "--head",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    yield f"127.0.0.1:{port}"
    subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.fixture
def ray_study(ray_head, postgres, workdir, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # a client of a token-authenticated cluster (the token: ~/.ray)
    name = f"ray-{uuid.uuid4().hex[:10]}"

    def write(trials: int = 4, epochs: int = 2) -> Path:
        path = workdir / "study.yaml"
        launcher = f'ray: {{address: "{ray_head}", workers: 2, num_cpus: 1, shared: [.]}}'
        path.write_text(CLUSTER_STUDY.format(name=name, trials=trials, epochs=epochs, launcher=launcher))
        return path

    yield name, write
    drop_study(name, postgres)


def run_automl(workdir: Path, storage: str) -> subprocess.Popen:
    env = {**os.environ, "AUTOML_STORAGE": storage, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [AUTOML, "run", "study.yaml", "--launcher", "ray"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_ray_actors_run_the_study_to_exactly_its_budget(ray_study, postgres, workdir):
    name, write = ray_study
    write(trials=4)
    proc = run_automl(workdir, postgres)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "submitted: 2 Ray actor(s)" in out
    study = optuna.load_study(study_name=name, storage=postgres)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    workers = {t.user_attrs["worker"]["id"].split("@")[0] for t in study.trials}
    assert workers == {"ray-1", "ray-2"}, workers
    _, parents, children = mlflow_runs(workdir, name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(int(c.data.tags["optuna.trial_number"]) for c in children) == [0, 1, 2, 3]
    assert "best model (trial" in out


def test_a_lost_actor_is_replaced_and_its_trial_resumes_from_its_checkpoint(ray_study, postgres, workdir, monkeypatch):
    name, write = ray_study
    (workdir / "plugins").mkdir()
    shutil.copy(FIXTURES / "pause.py", workdir / "plugins" / "pause.py")
    path = write(trials=3, epochs=4)
    # heartbeats that cannot go stale during the test: only the launcher's own notice of the lost actor recovers
    path.write_text(path.read_text().replace("heartbeat_seconds: 2", "heartbeat_seconds: 600"))
    monkeypatch.setenv("AUTOML_TEST_PAUSE_EPOCH", "2")
    proc = run_automl(workdir, postgres)
    try:
        deadline = time.monotonic() + 180
        while not (workdir / "paused.pid").exists():
            assert time.monotonic() < deadline and proc.poll() is None, "no trial reached epoch 3"
            time.sleep(0.2)
        worker = int((workdir / "paused.pid").read_text())
        actor = int(Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1])
        os.kill(actor, signal.SIGKILL)  # the node goes: its actor and its worker at once
        os.kill(worker, signal.SIGKILL)
        out, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    study = optuna.load_study(study_name=name, storage=postgres)
    lost = next(t for t in study.trials if t.state == TrialState.FAIL)
    assert "was lost with its node" in lost.user_attrs["reason"]
    retry = next(t for t in study.trials if t.user_attrs.get("retry_of") == lost.number)
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["resumed"]["epoch"] == 2, (
        "the retry resumed from the checkpoint of the lost trial's second epoch"
    )
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 3, "the budget met exactly"
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert "a replacement is started" in out
