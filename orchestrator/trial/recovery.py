"""Trials whose worker died: mark them FAIL with the reason, close their MLflow run, and retry them (the retry
resumes from the trial's checkpoint). A lineage whose workers died twice is not retried again; interrupted
trials (Ctrl-C, SIGTERM) always are.

Used by the supervisor when a worker process dies, by a worker that finds a dead local peer's trial,
and as the heartbeat callback on RDB storage (a worker on another machine stopped beating).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from orchestrator.records import (
    CONFIG_ATTR,
    CRASHES_ATTR,
    LINEAGE_ATTR,
    REASON_ATTR,
    RETRY_OF_ATTR,
    RETRY_REASON_ATTR,
    WORKER_ATTR,
    lineage,
    retry_of,
    trial_runs,
)

MAX_CRASH_RETRIES = 1  # a configuration whose worker dies again is not retried a second time


def start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (tells a live pid from a reused one)."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def worker_identity(worker_id: str) -> dict[str, Any]:
    """What a trial records about the process that runs it."""
    pid = os.getpid()
    return {"id": worker_id, "host": socket.gethostname(), "pid": pid, "start": start_ticks(pid)}


def died_here(identity: Mapping[str, Any]) -> bool:
    """True when the recorded worker ran on this machine and that process no longer exists."""
    if identity.get("host") != socket.gethostname() or not isinstance(identity.get("pid"), int):
        return False
    return start_ticks(identity["pid"]) != identity.get("start")


def close_trial_run(
    tracking_uri: str | None,
    parent_run_id: str | None,
    trial: FrozenTrial,
    status: str,
    reason: str,
    retry: int | None = None,
) -> None:
    """Close the MLflow child run of `trial` if it is still RUNNING (its worker cannot), or record one if the
    worker died before its run was written; `retry` is the trial that resumes it (tag `resumed_in_trial`)."""
    if not tracking_uri or not parent_run_id:
        return
    from mlflow.entities import RunTag
    from mlflow.tracking import MlflowClient

    from orchestrator.tracking.tracker import create_trial_run

    client = MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    runs = trial_runs(client, parent.info.experiment_id, parent_run_id, trial.number)
    tags = [
        RunTag("state", "FAIL"),
        RunTag("reason", reason),
        *([RunTag("resumed_in_trial", str(retry))] if retry is not None else []),
    ]
    open_runs = [run.info.run_id for run in runs if run.info.status == "RUNNING"]
    if not runs:
        open_runs = [
            create_trial_run(
                client,
                parent.info.experiment_id,
                parent_run_id,
                trial.number,
                trial.user_attrs.get(CONFIG_ATTR) or trial.params,
                {},
            )
        ]
    for run_id in open_runs:
        client.log_batch(run_id, tags=tags)
        client.set_terminated(run_id, status=status)


def enqueue_retry(study: optuna.Study, trial: FrozenTrial, reason: str, crashed: bool = True) -> bool:
    """Enqueue the same parameters once more as a retry of `trial` (same lineage: same seed, same checkpoint);
    True if enqueued. A `crashed` attempt counts against MAX_CRASH_RETRIES, an interrupted one does not."""
    crashes = int(trial.user_attrs.get(CRASHES_ATTR, 0)) + int(crashed)
    if crashes > MAX_CRASH_RETRIES:
        return False
    study.enqueue_trial(
        trial.params,
        user_attrs={
            RETRY_OF_ATTR: trial.number,
            RETRY_REASON_ATTR: reason,
            LINEAGE_ATTR: lineage(trial),
            CRASHES_ATTR: crashes,
        },
        skip_if_exists=False,
    )
    return True


def retry_trial(study: optuna.Study, trial: FrozenTrial, reason: str, crashed: bool = True) -> int | None:
    """`enqueue_retry`, then the number of the retry it queued (None when it queued none)."""
    if not enqueue_retry(study, trial, reason, crashed):
        return None
    retry = retry_of(study, trial.number)
    return retry.number if retry else None


def fail_and_retry(
    study: optuna.Study,
    number: int,
    reason: str,
    tracking_uri: str | None,
    parent_run_id: str | None,
    run_status: str = "FAILED",
) -> bool:
    """Mark RUNNING trial `number` FAIL with `reason`, close its MLflow run, retry it (see enqueue_retry);
    False if it was no longer running (somebody else got there first). Call under the study lock."""
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if trial is None or trial.state != TrialState.RUNNING:
        return False
    try:
        optuna.trial.Trial(study, trial._trial_id).set_user_attr(REASON_ATTR, reason)
        study.tell(number, state=TrialState.FAIL)
    except (UpdateFinishedTrialError, RuntimeError, ValueError):
        return False
    close_trial_run(tracking_uri, parent_run_id, trial, run_status, reason, retry_trial(study, trial, reason))
    return True


def recover_trials(
    study: optuna.Study, tracking_uri: str | None, parent_run_id: str | None, worker_id: str | None = None
) -> list[int]:
    """Fail and retry the RUNNING trials of worker `worker_id`, or else of any dead worker on this machine."""
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        identity = trial.user_attrs.get(WORKER_ATTR) or {}
        if worker_id is not None:
            if identity.get("id") != worker_id:
                continue
        elif not identity or not died_here(identity):
            continue
        reason = f"worker {identity.get('id', '?')} (pid {identity.get('pid', '?')}) died during the trial"
        if fail_and_retry(study, trial.number, reason, tracking_uri, parent_run_id):
            recovered.append(trial.number)
    return recovered


def stale_trial_callback(tracking_uri: str | None, parent_run_id_of: Any) -> Any:
    """The RDB heartbeat callback: a trial whose worker stopped beating is closed in MLflow and retried once."""

    def on_stale(study: optuna.Study, trial: FrozenTrial) -> None:
        identity = trial.user_attrs.get(WORKER_ATTR) or {}
        reason = (
            f"worker {identity.get('id', '?')} on {identity.get('host', '?')} stopped sending heartbeats (stale trial)"
        )
        close_trial_run(
            tracking_uri, parent_run_id_of(study), trial, "FAILED", reason, retry_trial(study, trial, reason)
        )

    return on_stale
