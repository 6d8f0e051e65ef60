"""`automl run --launcher slurm|ray`: the workers run where the cluster's scheduler puts them.

The supervisor here opens the study and its MLflow parent run, submits the workers (`automl worker --launched`:
they write their trial runs to MLflow themselves), shows the progress table read from the Optuna storage, and
at the end logs the best model and the summary, as a local run does. Ctrl-C cancels the workers (each
checkpoints its trial and marks it to resume), waits for them, and fails and retries any trial still RUNNING.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from orchestrator.env_vars import STORAGE_ENV, TRACKING_ENV
from orchestrator.execution.coordination import count_budget, study_lock
from orchestrator.execution.supervisor import Supervisor, WorkersFailedError
from orchestrator.records import (
    CHECKPOINT_EPOCH_ATTR,
    CONFIG_ATTR,
    FINISHED_STATES,
    INTERRUPTED,
    REASON_ATTR,
    WORKER_ATTR,
)
from orchestrator.trial.progress import Progress
from orchestrator.trial.recovery import fail_and_retry

POLL_SECONDS = 1.0
SCHEDULER_POLL_SECONDS = 5.0  # squeue and friends are asked less often than the storage
CANCEL_MARGIN_SECONDS = 60.0  # beyond the workers' grace period: SLURM's KillWait (30 s by default) and more


class Launcher(Protocol):
    """A cluster scheduler's handle on one study's workers."""

    def submit(self, worker: Sequence[str], env: dict[str, str], workdir: Path) -> str: ...

    def active(self) -> int: ...

    def cancel(self) -> None: ...

    def plan(self) -> str: ...

    def describe(self) -> str: ...

    def log_files(self) -> list[Path]: ...

    def take_lost(self) -> list[str]:
        """Worker ids whose task or actor was lost with its node since the last call (their trials are retried
        at once; without this, heartbeats find them)."""
        ...

    def problems(self) -> list[str]:
        """What the ended workers said went wrong (exit codes and their output's end)."""
        ...

    def close(self) -> None: ...


class TrialFeed:
    """The progress table's rows, read from the storage: each finished trial once, in the order they ended,
    tagged with the worker that ran it."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.shown: set[int] = set()
        self.best: tuple[int, float] | None = None

    def skip_finished(self, study: optuna.Study) -> None:
        """Trials that finished before this run (a resumed study) get no row."""
        for trial in study.get_trials(deepcopy=False, states=FINISHED_STATES):
            self.shown.add(trial.number)
            self._update_best(study, trial)

    def show_new(self, study: optuna.Study) -> None:
        new = [t for t in study.get_trials(deepcopy=False, states=FINISHED_STATES) if t.number not in self.shown]
        for trial in sorted(new, key=lambda t: (t.datetime_complete or t.datetime_start, t.number)):
            self.shown.add(trial.number)
            self._update_best(study, trial)
            value = trial.values[0] if trial.state == TrialState.COMPLETE and trial.values else None
            if trial.state == TrialState.PRUNED and trial.intermediate_values:
                value = trial.intermediate_values[max(trial.intermediate_values)]
            reason = trial.user_attrs.get(REASON_ATTR)
            if reason == INTERRUPTED:
                epoch = trial.user_attrs.get(CHECKPOINT_EPOCH_ATTR, 0)
                reason += f"; its retry {f'resumes at epoch {epoch}' if epoch else 'restarts at epoch 0'}"
            worker = (trial.user_attrs.get(WORKER_ATTR) or {}).get("id")
            self.progress.trial_done(
                trial.number,
                trial.user_attrs.get(CONFIG_ATTR) or trial.params,
                len(trial.intermediate_values),
                value,
                trial.state.name,
                self.best,
                reason,
                tag=worker,
            )

    def _update_best(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state != TrialState.COMPLETE or not trial.values:
            return
        sign = 1.0 if study.directions[0] == StudyDirection.MAXIMIZE else -1.0
        if self.best is None or sign * trial.values[0] > sign * self.best[1]:
            self.best = (trial.number, float(trial.values[0]))


class ClusterSupervisor(Supervisor):
    """A Supervisor whose workers are a cluster launcher's tasks instead of local processes."""

    def __init__(self, *args: Any, launcher: Launcher, **kwargs: Any) -> None:
        super().__init__(*args, slots=[], **kwargs)
        self.launcher = launcher
        self.feed = TrialFeed(self.progress)
        self.submitted = False

    def _start_workers(self) -> None:
        """Nothing yet: the tasks are submitted once the study and its parent run exist (else each would
        race to create them)."""

    def _await_ready(self, limit: float = 0.0) -> None:
        """A cluster's tasks start when the scheduler says: the table does not wait for them."""

    def _workers_description(self) -> str:
        return f"{self.launcher.plan()}, submitted once the study is set up"

    def worker_command(self) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "orchestrator",
            "worker",
            str(self.spec.path.resolve()),
            "--launched",
            "--trials",
            str(self.trials),
        ]
        for folder in self.plugin_dirs:
            command += ["--plugins-dir", str(folder)]
        if not self.tracking_uri:
            command.append("--no-tracking")
        if self.deadline is not None:
            command += ["--timeout", str(max(1, int(self.deadline - time.time())))]
        return command

    def _release_workers(self, study: optuna.Study, parent: str | None) -> None:
        self.feed.skip_finished(study)
        # our own settings travel with the workers (a Ray actor starts from its node's environment, not ours)
        env = {k: v for k, v in os.environ.items() if k.startswith("AUTOML_") and k != TRACKING_ENV}
        env[STORAGE_ENV] = self.storage_url
        if self.tracking_uri:
            env[TRACKING_ENV] = self.tracking_uri
        self.launcher.submit(self.worker_command(), env, Path.cwd())
        self.submitted = self.released = True
        self.progress.message(f"submitted: {self.launcher.describe()}")

    def _watch(self, study: optuna.Study, parent: str | None) -> None:
        """Show each trial as it finishes, refresh the summary, until the scheduler has no task left."""
        asked = 0.0
        while True:
            time.sleep(POLL_SECONDS)
            self.feed.show_new(study)
            self._refresh_summary(study, parent)
            if time.monotonic() - asked >= SCHEDULER_POLL_SECONDS:
                asked = time.monotonic()
                active = self.launcher.active()
                for worker in self.launcher.take_lost():
                    lost = self._fail_running(study, parent, f"worker {worker} was lost with its node", worker)
                    self.progress.message(
                        f"worker {worker} was lost"
                        + "".join(f"; trial {n} marked FAIL and retried from its last checkpoint" for n in lost)
                        + "; a replacement is started"
                    )
                if active == 0:
                    break
        self.feed.show_new(study)
        left = self._orphans(study, parent, "its worker's task ended while the trial ran")
        self.launcher.close()
        timed_out = self.deadline is not None and time.time() >= self.deadline
        count = count_budget(study, self.trials)
        if not count.done and not timed_out:
            logs = ", ".join(str(p) for p in self.launcher.log_files()[:4])
            said = "\n".join(self.launcher.problems()[-3:])
            raise WorkersFailedError(
                f"every worker has ended, but the budget is not met ({count.finished} of "
                f"{self.trials} trials finished"
                f"{'; ' + str(len(left)) + ' orphaned trial(s) retried' if left else ''})"
                + (f"; their output: {logs}" if logs else "")
                + (f"\n{said}" if said else "")
            )

    def _stop_all(self, study: optuna.Study | None, parent: str | None) -> list[str]:
        """Cancel the tasks (each worker checkpoints and marks its trial to resume), wait until the scheduler
        has none left, then fail and retry whatever trial is still RUNNING."""
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        running = self._running_trials(study)
        if not self.submitted:
            return []
        try:
            self.launcher.cancel()
            self.progress.message("cancelling the workers' tasks; each checkpoints its trial")
            until = time.monotonic() + self.spec.execution.stop_grace_seconds + CANCEL_MARGIN_SECONDS
            while time.monotonic() < until and self.launcher.active():
                time.sleep(POLL_SECONDS)
        except Exception as exc:  # the scheduler could not be asked: say so; the trials are recovered below
            self.progress.message(f"warning: could not cancel the workers: {exc}")
        if study is not None:
            self._orphans(study, parent, "its worker's task was cancelled")
        self.launcher.close()
        return self._stop_outcomes(study, running)

    def _orphans(self, study: optuna.Study, parent: str | None, reason: str) -> list[int]:
        """Every task has ended: a trial still RUNNING has no worker. FAIL it and retry it (from its
        checkpoint)."""
        recovered = self._fail_running(study, parent, reason)
        for number in recovered:
            self.progress.message(
                f"trial {number} was left RUNNING when its worker's task ended: marked FAIL and "
                "retried from its last checkpoint"
            )
        return recovered

    def _fail_running(
        self, study: optuna.Study, parent: str | None, reason: str, worker: str | None = None
    ) -> list[int]:
        """FAIL and retry the RUNNING trials (of `worker` only, when given); returns their numbers."""
        recovered = []
        with study_lock(self.storage_url, self.spec.name):
            for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                owner = str((trial.user_attrs.get(WORKER_ATTR) or {}).get("id", "?"))
                if worker is not None and not owner.startswith(f"{worker}@"):
                    continue
                why = reason if worker is not None else f"worker {owner}: {reason}"
                if fail_and_retry(study, trial.number, why, self.tracking_uri, parent):
                    recovered.append(trial.number)
        return recovered


def launcher_for(kind: Any, settings: Any, spec: Any) -> Launcher:
    """The workers' handle of launcher `kind` (study/launch_settings.py's LauncherKind) with `settings`."""
    factory = kind.factory
    if isinstance(factory, str):
        module, _, name = factory.partition(":")
        factory = getattr(importlib.import_module(module), name)
    return factory(settings, spec)
