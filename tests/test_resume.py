"""Trials that resume: a worker killed (-9), stopped (SIGTERM) or a run interrupted (Ctrl-C) during epoch k of a
10-epoch trial, and the retry continues from its checkpoint with identical state. Each test runs `automl run` in
subprocesses and reads Optuna and MLflow back with their own clients; the uninterrupted reference is the same
configuration trained in this process with the same seed on one CPU thread.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import torch
from conftest import AUTOML, load_optuna, mlflow_runs
from optuna.trial import TrialState

from orchestrator.api.registry import load_registry
from orchestrator.execution.study_session import load_data
from orchestrator.records import CONFIG_ATTR, RESUME_SKIPPED_ATTR, RESUMED_ATTR, RETRY_OF_ATTR
from orchestrator.study.studyfile import load_study
from orchestrator.training.fit import train

FIXTURES = Path(__file__).parent / "fixtures"
PAUSE_EPOCH = 4
STUDY = """
name: resume
dataset: digits
objective: {{metric: val_accuracy, direction: maximize}}
budget: {{trials: {trials}, max_epochs: 10}}
sampler: random
pruner: none
seed: 0
checkpoints: {{min_seconds: 0}}
search:
  architecture: {{mlp: {{depth: 2, width: 32}}}}
  activation: relu
  loss: cross_entropy
  optimizer: {{adam: {{lr: 0.01}}}}
  regularizers: {{dropout: {{optional: false, p: 0.2}}}}
  batch_size: 64
"""


@pytest.fixture
def resume_study(workdir: Path):
    (workdir / "plugins").mkdir()
    shutil.copy(FIXTURES / "pause.py", workdir / "plugins" / "pause.py")

    def write(trials: int = 1) -> Path:
        path = workdir / "study.yaml"
        path.write_text(STUDY.format(trials=trials))
        return path

    return write


def start(workdir: Path, *args: str) -> subprocess.Popen:
    """`automl run study.yaml --threads 1 ARGS` in its own process group (as a terminal would start it)."""
    env = {**os.environ, "AUTOML_TEST_PAUSE_EPOCH": str(PAUSE_EPOCH)}
    return subprocess.Popen(
        [AUTOML, "run", "study.yaml", "--threads", "1", *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def paused_worker(workdir: Path, proc: subprocess.Popen) -> int:
    """The pid of the worker waiting at the start of epoch PAUSE_EPOCH."""
    pid_file = workdir / "paused.pid"
    deadline = time.monotonic() + 120
    while not pid_file.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert pid_file.exists(), proc.communicate()
    return int(pid_file.read_text())


def interrupt_at_the_pause(workdir: Path, proc: subprocess.Popen) -> tuple[str, str]:
    """Ctrl-C as a terminal sends it (SIGINT to the whole process group) while the first trial is paused, then
    release the trial so that it can finish its epoch; returns the run's output and errors."""
    try:
        paused_worker(workdir, proc)
        os.killpg(proc.pid, signal.SIGINT)
        (workdir / "release").touch()
        return proc.communicate(timeout=60)
    finally:
        proc.kill()


def run_again(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """`automl run study.yaml --threads 1 ARGS` to its end (the study resumed)."""
    return subprocess.run(
        [AUTOML, "run", "study.yaml", "--threads", "1", *args], cwd=workdir, capture_output=True, text=True, timeout=240
    )


def reference(workdir: Path, config: dict, seed: int) -> object:
    """The same configuration trained without interruption, with the trial's seed, on one CPU thread."""
    registry = load_registry([workdir / "plugins"])
    spec = load_study(workdir / "study.yaml", registry)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(
            config, registry, load_data(spec), max_epochs=10, seed=seed, monitor="val_accuracy", direction="maximize"
        )
    finally:
        torch.set_num_threads(threads)


def assert_resumed_exactly(workdir: Path, study: optuna.Study, stopped: int, resumed_at: int | None) -> None:
    """Trial `stopped` was stopped; its retry ran to the end (resuming at `resumed_at`, or from 0 when None) with
    the history, intermediate values and final metrics of an uninterrupted run, each epoch recorded once."""
    first = study.trials[stopped]
    retry = next(t for t in study.trials if t.user_attrs.get(RETRY_OF_ATTR) == stopped)
    assert first.state == TrialState.FAIL and retry.state == TrialState.COMPLETE
    if resumed_at is None:
        assert RESUMED_ATTR not in retry.user_attrs
    else:
        assert retry.user_attrs[RESUMED_ATTR] == {"from_trial": stopped, "epoch": resumed_at}
    expected = reference(workdir, retry.user_attrs[CONFIG_ATTR], seed=stopped)  # the study's seed 0 + lineage
    accuracies = [epoch["val_accuracy"] for epoch in expected.history]
    assert retry.intermediate_values == dict(enumerate(accuracies))
    assert retry.value == expected.final("val_accuracy")
    assert retry.user_attrs["test_metrics"] == expected.test_metrics
    client, _, children = mlflow_runs(workdir, "resume")
    run = next(c for c in children if c.data.tags["optuna.trial_number"] == str(retry.number))
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert sorted(m.step for m in history) == list(range(10))  # every epoch exactly once
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == accuracies
    if resumed_at is not None:
        assert run.data.tags["resumed_from_trial"] == str(stopped)
        assert run.data.tags["resumed_at_epoch"] == str(resumed_at)
    assert not (workdir / "checkpoints" / "resume").exists(), "a finished study left checkpoints behind"


def test_kill_9_during_an_epoch_resumes_at_that_epoch_with_identical_state(resume_study, workdir):
    resume_study()
    proc = start(workdir)
    try:
        victim = paused_worker(workdir, proc)
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"(pid {victim}) died: killed by SIGKILL; trial 0 marked FAIL and retried from its last checkpoint" in out
    assert f"trial 1: resuming trial 0 at epoch {PAUSE_EPOCH} from its checkpoint" in out
    assert "Done: 2 trial(s) in the study: 1 complete, 0 pruned, 1 failed (1 of them retried)." in out
    study = load_optuna(workdir, "resume")
    assert "died during the trial" in study.trials[0].user_attrs["reason"]
    _, _, children = mlflow_runs(workdir, "resume")
    killed_run = next(c for c in children if c.data.tags["optuna.trial_number"] == "0")
    assert killed_run.info.status == "FAILED" and killed_run.data.tags["resumed_in_trial"] == "1"
    # only the epoch in progress was lost: the killed attempt had reported epochs 0..k-1
    assert sorted(study.trials[0].intermediate_values) == list(range(PAUSE_EPOCH))
    assert_resumed_exactly(workdir, study, 0, PAUSE_EPOCH)


def test_sigterm_to_a_worker_finishes_the_epoch_checkpoints_and_its_replacement_resumes(resume_study, workdir):
    resume_study()
    proc = start(workdir)
    try:
        victim = paused_worker(workdir, proc)
        os.kill(victim, signal.SIGTERM)
        sent = time.monotonic()
        (workdir / "release").touch()
        while Path(f"/proc/{victim}").exists() and time.monotonic() - sent < 30:
            time.sleep(0.05)
        stopped_after = time.monotonic() - sent
        out, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert stopped_after < 10, f"the worker took {stopped_after:.1f} s to stop (grace period 10 s)"
    assert proc.returncode == 0, err
    assert (
        f"(pid {victim}) stopped by SIGTERM (a trial it was running resumes from its checkpoint); starting a "
        "replacement" in out
    )
    study = load_optuna(workdir, "resume")
    assert study.trials[0].user_attrs["reason"] == "interrupted"
    # the epoch in progress was finished and checkpointed: nothing was lost
    assert_resumed_exactly(workdir, study, 0, PAUSE_EPOCH + 1)


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_of_automl_run_then_a_rerun_resumes_every_interrupted_trial(resume_study, workdir, workers):
    resume_study(trials=workers)
    proc = start(workdir, "--workers", str(workers))
    out, err = interrupt_at_the_pause(workdir, proc)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "died" not in err and "died" not in out
    study = load_optuna(workdir, "resume")
    interrupted = [t for t in study.trials if t.state == TrialState.FAIL]
    assert interrupted and all(t.user_attrs["reason"] == "interrupted" for t in interrupted)
    paused = next(t.number for t in interrupted if t.user_attrs["checkpoint_epoch"] == PAUSE_EPOCH + 1)
    assert (
        f"trial {paused} interrupted (MLflow run KILLED); its retry resumes at epoch {PAUSE_EPOCH + 1} from "
        "its checkpoint" in err
    )
    _, _, children = mlflow_runs(workdir, "resume")
    assert {c.info.status for c in children} <= {"KILLED", "FINISHED"}
    stopped_run = next(c for c in children if c.data.tags["optuna.trial_number"] == str(paused))
    retry = next(t for t in study.trials if t.user_attrs.get(RETRY_OF_ATTR) == paused)
    assert stopped_run.data.tags["resumed_in_trial"] == str(retry.number)
    assert stopped_run.data.tags["resumes"] == f"resumes at epoch {PAUSE_EPOCH + 1}"

    rerun = run_again(workdir, "--workers", str(workers))
    assert rerun.returncode == 0, rerun.stderr
    assert_resumed_exactly(workdir, load_optuna(workdir, "resume"), paused, PAUSE_EPOCH + 1)


def test_show_tells_an_interrupted_trial_whole_and_where_the_best_model_is(resume_study, workdir):
    """`automl show` after Ctrl-C and a rerun: the interrupted trial's epochs (not "1-0") and how it ended, the
    retry, and the best model's URI and run id; `--json` holds all of it (a superset of the text)."""
    resume_study()
    interrupt_at_the_pause(workdir, start(workdir))
    assert run_again(workdir).returncode == 0
    study = load_optuna(workdir, "resume")
    shown = subprocess.run([AUTOML, "show", "study.yaml", "--json"], cwd=workdir, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["best"]["trained_as"] == [
        {"trial": 0, "first_epoch": 1, "last_epoch": PAUSE_EPOCH + 1, "ended": "interrupted"},
        {"trial": 1, "first_epoch": PAUSE_EPOCH + 2, "last_epoch": 10, "ended": "complete"},
    ]
    assert data["retries"] == [{"trial": 1, "retry_of": 0, "reason": "interrupted"}]
    assert data["failed"] == [{"number": 0, "reason": "interrupted"}] and data["successive_halving"] is None
    model = data["model"]
    client, parents, _ = mlflow_runs(workdir, "resume")
    assert model["run_id"] == study.user_attrs["mlflow_parent_run_id"] == parents[0].info.run_id
    assert model["uri"] == parents[0].data.tags["best_model.uri"] and model["uri"].startswith("models:/")
    assert model["trial"] == 1 and model["tracking_uri"] == f"sqlite:///{workdir / 'mlflow.db'}"
    text = subprocess.run([AUTOML, "show", "study.yaml"], cwd=workdir, capture_output=True, text=True).stdout
    for line in (
        f"trained as: trial 0 (epochs 1-{PAUSE_EPOCH + 1}, interrupted) -> trial 1 (epochs "
        f"{PAUSE_EPOCH + 2}-10, complete)",
        "retries: trial 1 of 0 (interrupted)",
        f"best model: {model['uri']} (MLflow run {model['run_id']} in {model['tracking_uri']})",
        "failed trial 0: interrupted",
    ):
        assert line in text, (line, text)
    untracked = subprocess.run(
        [AUTOML, "show", "study.yaml", "--tracking-uri", f"sqlite:///{workdir / 'no.db'}"],
        cwd=workdir,
        capture_output=True,
        text=True,
    ).stdout
    assert "best model: none (no MLflow store at sqlite:///" in untracked and not (workdir / "no.db").exists()


def test_a_truncated_checkpoint_restarts_the_trial_from_epoch_0_with_the_reason(resume_study, workdir):
    resume_study()
    interrupt_at_the_pause(workdir, start(workdir))
    checkpoint = workdir / "checkpoints" / "resume" / "trial-0.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])  # a write cut short

    rerun = run_again(workdir)
    assert rerun.returncode == 0, rerun.stderr
    assert f"trial 1: starting at epoch 0: checkpoint {checkpoint} is unreadable" in rerun.stdout
    study = load_optuna(workdir, "resume")
    assert "is unreadable" in study.trials[1].user_attrs[RESUME_SKIPPED_ATTR]
    _, _, children = mlflow_runs(workdir, "resume")
    assert (
        "is unreadable"
        in next(c for c in children if c.data.tags["optuna.trial_number"] == "1").data.tags["resume_skipped"]
    )
    assert_resumed_exactly(workdir, study, 0, None)  # from scratch, with the same seed: the same result


def test_sigterm_to_a_standalone_automl_worker_exits_143_and_the_next_worker_resumes(resume_study, workdir):
    """What SLURM or Kubernetes does to `automl worker` before a kill: the trial checkpoints, the worker says so
    and exits 143; a worker started later (the requeued job) resumes the trial."""
    resume_study()
    env = {**os.environ, "AUTOML_TEST_PAUSE_EPOCH": str(PAUSE_EPOCH)}
    command = [AUTOML, "worker", "study.yaml", "--threads", "1"]
    proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert paused_worker(workdir, proc) == proc.pid
        proc.send_signal(signal.SIGTERM)
        (workdir / "release").touch()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM; an interrupted trial resumes from its checkpoint when the study runs again" in err
    assert f"interrupted; its retry resumes at epoch {PAUSE_EPOCH + 1}" in out
    study = load_optuna(workdir, "resume")
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]
    assert list((workdir / "checkpoints" / "resume").iterdir()) == [workdir / "checkpoints" / "resume" / "trial-0.pt"]

    again = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr
    assert_resumed_exactly(workdir, load_optuna(workdir, "resume"), 0, PAUSE_EPOCH + 1)


def test_a_keyboard_interrupt_raised_inside_a_trial_is_recorded_and_the_trial_retried(write_study, workdir, cli):
    """A KeyboardInterrupt that does not come from our signal handling (a plugin's hook raised it) still ends
    with the trial FAIL `interrupted`, its retry queued, and `automl worker` exiting 130."""
    (workdir / "plugins").mkdir()
    (workdir / "plugins" / "impatient.py").write_text(
        "from orchestrator import hookimpl\n\n"
        "@hookimpl\n"
        "def before_trial(trial, config):\n"
        "    raise KeyboardInterrupt\n"
    )
    result = cli("worker", write_study(), "--no-tracking")
    assert result.code == 130, result.err
    assert "interrupted: a running trial was marked FAIL" in result.err
    study = load_optuna(workdir)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]
    assert study.trials[0].user_attrs["reason"] == "interrupted"
    assert study.trials[0].user_attrs["checkpoint_epoch"] == 0
    assert study.trials[1].user_attrs[RETRY_OF_ATTR] == 0
