"""Workers on one machine, as a user runs them: `automl run --workers N`, then faults on purpose.

Each fault test runs a real study in subprocesses and reads Optuna and MLflow back with their own clients.
The `faulty` test plugin (tests/fixtures/faulty.py) raises, returns NaN, runs out of memory, exits, segfaults
or sleeps (to be killed) on purpose.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from conftest import AUTOML, TINY_STUDY, load_optuna, mlflow_runs
from optuna.trial import TrialState

from orchestrator.search.samplers import SAMPLERS

FIXTURES = Path(__file__).parent / "fixtures"
FINAL = (TrialState.COMPLETE, TrialState.PRUNED)

FAULT_STUDY = """
name: faults
dataset: digits
objective: {{metric: val_accuracy, direction: maximize}}
budget: {{trials: {trials}, max_epochs: 2}}
sampler: {{name: random}}
pruner: none
seed: {seed}
search:
  architecture: {{faulty: {{fault: {fault}}}}}
  activation: relu
  loss: cross_entropy
  optimizer: {{adam: {{lr: 0.01, beta1: 0.9, beta2: 0.999}}}}
  batch_size: 64
"""


def fault_study(write_study, workdir: Path, fault: str, trials: int, seed: int = 0) -> Path:
    (workdir / "plugins").mkdir(exist_ok=True)
    shutil.copy(FIXTURES / "faulty.py", workdir / "plugins" / "faulty.py")
    return write_study(FAULT_STUDY.format(fault=fault, trials=trials, seed=seed))


def automl(workdir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([AUTOML, *args], cwd=workdir, capture_output=True, text=True, timeout=timeout)


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if t.state in FINAL]


def assert_nothing_left_open(study: optuna.Study, children: list) -> None:
    assert not [t.number for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert not [c.info.run_name for c in children if c.info.status == "RUNNING"]


def test_two_workers_share_the_default_storage_and_finish_the_budget_exactly(write_study, workdir):
    # trials of ~1 s, so that a worker that starts a few seconds late still gets some
    write_study(TINY_STUDY.replace("trials: 3", "trials: 6").replace("max_epochs: 2", "max_epochs: 6"))
    proc = automl(workdir, "run", "study.yaml", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert "workers  2 (cpu0, cpu1; 1 CPU thread(s) each)" in proc.stdout
    # the table: both workers' start-up lines come before its header, one row per trial after it, none cut short
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("trial  choices"))
    assert sum("ready after" in line for line in lines[:header]) == 2, proc.stdout
    assert not any("ready after" in line for line in lines[header:]), proc.stdout
    assert "automl-worker-ready" not in proc.stdout + proc.stderr
    study = load_optuna(workdir)
    # zero lost, duplicated or stuck trials: exactly the budget, numbered 0..5, all finished
    assert [t.number for t in study.trials] == list(range(6))
    assert all(t.state in FINAL for t in study.trials)
    workers = {t.user_attrs["worker"]["id"] for t in study.trials}
    assert len(workers) == 2, workers  # both workers ran trials
    assert {w.split("#")[0] for w in workers} == {"cpu0", "cpu1"}
    # the seeded samplers of the two workers did not propose alike
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 6
    client, parents, children = mlflow_runs(workdir)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(int(c.data.tags["optuna.trial_number"]) for c in children) == list(range(6))
    assert_nothing_left_open(study, children)
    for child in children:  # one value per epoch trained (a pruned trial stops early)
        trial = study.trials[int(child.data.tags["optuna.trial_number"])]
        assert len(client.get_metric_history(child.info.run_id, "val_accuracy")) == len(trial.intermediate_values)
    assert parents[0].data.metrics["trials_complete"] + parents[0].data.metrics["trials_pruned"] == 6


def test_kill_9_a_worker_mid_trial_costs_only_that_trial_which_is_retried(write_study, workdir):
    fault_study(write_study, workdir, "sleep", trials=3)
    proc = subprocess.Popen(
        [AUTOML, "run", "study.yaml", "--workers", "2"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pid_file = workdir / "sleeping.pid"
        deadline = time.monotonic() + 120
        while not pid_file.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert pid_file.exists(), "no trial reached the sleeping forward pass"
        victim = int(pid_file.read_text())
        assert victim != proc.pid
        assert "orchestrator worker" in Path(f"/proc/{victim}/cmdline").read_text().replace("\0", " ")
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert re.search(
        rf"worker cpu\d \(pid {victim}\) died: killed by SIGKILL; trial \d+ marked FAIL and "
        "retried from its last checkpoint; starting a replacement",
        out,
    ), out
    study = load_optuna(workdir, "faults")
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and len(finished(study)) == 3 and len(study.trials) == 4
    lost = failed[0]
    assert f"(pid {victim}) died during the trial" in lost.user_attrs["reason"]
    retry = next(t for t in study.trials if t.user_attrs.get("retry_of") == lost.number)
    assert retry.state in FINAL and retry.params == lost.params
    _, parents, children = mlflow_runs(workdir, "faults")
    assert parents[0].info.status == "FINISHED"
    assert_nothing_left_open(study, children)
    lost_run = next(c for c in children if c.data.tags["optuna.trial_number"] == str(lost.number))
    assert lost_run.info.status == "FAILED" and "died during the trial" in lost_run.data.tags["reason"]


@pytest.mark.parametrize("fault, death", [("exit", "exit code 3"), ("segfault", "killed by SIGSEGV")])
def test_a_worker_that_dies_hard_is_replaced_and_its_trial_retried(write_study, workdir, fault, death):
    fault_study(write_study, workdir, fault, trials=2)
    proc = automl(workdir, "run", "study.yaml")
    assert proc.returncode == 0, proc.stderr
    assert (
        f"died: {death}; trial 0 marked FAIL and retried from its last checkpoint; starting a replacement"
        in proc.stdout
    )
    study = load_optuna(workdir, "faults")
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert study.trials[1].user_attrs["retry_of"] == 0
    _, _, children = mlflow_runs(workdir, "faults")
    assert_nothing_left_open(study, children)
    assert sorted(c.info.status for c in children) == ["FAILED", "FINISHED", "FINISHED"]


def test_raising_nan_and_out_of_memory_trials_end_with_their_reason_and_the_study_goes_on(write_study, workdir):
    fault_study(write_study, workdir, "[none, raise, nan, oom]", trials=8, seed=2)
    proc = automl(workdir, "run", "study.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "died" not in proc.stdout  # one worker did all of it
    study = load_optuna(workdir, "faults")
    assert len(study.trials) == 8
    by_fault: dict[str, list] = {}
    for t in study.trials:
        by_fault.setdefault(t.params["architecture.faulty.fault"], []).append(t)
    assert set(by_fault) == {"none", "raise", "nan", "oom"}, "seed 2 no longer draws every fault"
    expected = {
        "none": (TrialState.COMPLETE, None),
        "raise": (TrialState.FAIL, "RuntimeError: simulated failure"),
        "nan": (TrialState.FAIL, "training loss is not finite"),
        "oom": (TrialState.PRUNED, "out of memory: "),
    }
    _, _, children = mlflow_runs(workdir, "faults")
    runs = {int(c.data.tags["optuna.trial_number"]): c for c in children}
    for fault, trials in by_fault.items():
        state, reason = expected[fault]
        for t in trials:
            assert t.state == state, (fault, t.number)
            if reason:
                assert t.user_attrs["reason"].startswith(reason) or reason in t.user_attrs["reason"]
                assert runs[t.number].data.tags["reason"] == t.user_attrs["reason"]
    # an out-of-memory configuration is reported as PRUNED (the sampler learns it is bad) and never trained again
    oom = by_fault["oom"]
    assert len(oom) >= 2, "seed 2 no longer repeats the oom configuration"
    assert "ran out of memory in trial" not in oom[0].user_attrs["reason"]
    for again in oom[1:]:
        assert f"the same configuration ran out of memory in trial {oom[0].number}" in again.user_attrs["reason"]
    assert_nothing_left_open(study, children)


def _oom_proposals(seed: int, reported_as: TrialState) -> int:
    """How often the study's default TPE proposes a configuration after its startup trials, when every
    proposal of it ends `reported_as` (the other choice completes)."""
    study = optuna.create_study(direction="maximize", sampler=SAMPLERS["tpe"].build({}, seed=seed))
    proposals = []
    for _ in range(25):
        trial = study.ask()
        choice = trial.suggest_categorical("fault", ["oom", "none"])
        proposals.append(choice)
        if choice == "oom":
            study.tell(trial, state=reported_as)
        else:
            study.tell(trial, 0.9)
    return proposals[5:].count("oom")


def test_tpe_learns_to_avoid_a_configuration_reported_out_of_memory():
    """An OOM is told as PRUNED because TPE learns from PRUNED trials; a FAIL it ignores and keeps proposing."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    as_pruned = sum(_oom_proposals(seed, TrialState.PRUNED) for seed in range(3))
    as_failed = sum(_oom_proposals(seed, TrialState.FAIL) for seed in range(3))
    assert as_pruned * 3 <= as_failed, (as_pruned, as_failed)
    assert as_pruned <= 15  # at most a quarter of the 60 proposals after startup


def test_a_worker_past_its_memory_limit_is_recycled_between_trials(write_study, workdir):
    write_study(TINY_STUDY.replace("trials: 3", "trials: 2") + "worker_memory_mb: 1\n")
    proc = automl(workdir, "run", "study.yaml")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("recycling the process") == 2, proc.stdout
    assert proc.stdout.count("ready after") == 3  # the first start and two fresh processes
    assert "died" not in proc.stdout  # a recycle is not a crash
    study = load_optuna(workdir)
    assert [t.number for t in study.trials] == [0, 1] and all(t.state in FINAL for t in study.trials)
