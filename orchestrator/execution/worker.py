"""A long-lived worker: claims trials of a shared study from the Optuna storage and runs them, many per process.

Started by `automl run`'s supervisor (one per device slot) or by hand with `automl worker` on any machine.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, TextIO

import optuna
import torch

from orchestrator.api.registry import Registry
from orchestrator.env_vars import TIMINGS_ENV
from orchestrator.execution.coordination import DONE, WAIT, claim_trial, study_lock
from orchestrator.execution.handshake import (
    EXIT_GRACE_EXPIRED,
    GO,
    READY,
    RELEASED_ENV,
    SPAWNED_AT_ENV,
    repeated_failure_message,
)
from orchestrator.execution.lifecycle import Role, StudyLifecycle
from orchestrator.execution.study_session import checkpoint_policy, load_data, update_summary
from orchestrator.preemption import STOP, install_stop_handlers
from orchestrator.quiet import quiet_libraries
from orchestrator.records import PARENT_RUN_ATTR, WORKER_ATTR, repeated_failure
from orchestrator.study.studyfile import StudySpec
from orchestrator.tracking.relay import RelayTracker
from orchestrator.tracking.tracker import StudyTracker, Tracker
from orchestrator.training.threads import AdaptiveThreads
from orchestrator.trial.progress import Progress, choices_width
from orchestrator.trial.recovery import recover_trials, start_ticks, worker_identity
from orchestrator.trial.run import TrialRunner

WAIT_SECONDS = 1.0


def seconds_since_start() -> float:
    """Seconds since this worker process was started: its imports, data and study set-up so far."""
    spawned = os.environ.get(SPAWNED_AT_ENV)
    if spawned:
        return time.time() - float(spawned)
    with open("/proc/uptime") as uptime:
        return float(uptime.read().split()[0]) - int(start_ticks(os.getpid()) or 0) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class WorkerOptions:
    """Everything a worker needs besides the study: where to record, how much to run, its limits."""

    storage_url: str
    tracking_uri: str | None
    trials: int
    worker_id: str
    deadline: float | None = None  # wall-clock time after which no trial starts
    threads: int | None = None  # PyTorch's CPU threads (None: PyTorch's default) ...
    adapt_threads: bool = False  # ... or, at most that many, the count measured fastest before each trial
    memory_mb: int | None = None  # recycle the process between trials above this resident size
    role: Role = Role.STANDALONE  # what this worker is to its study: who opens, announces and closes it
    slot: str = ""
    seed_offset: int = 0  # distinct per worker, so that seeded samplers do not propose alike


def resident_mb() -> float:
    """This process's resident memory in MiB."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def die_with_parent() -> None:
    """Ask Linux to send SIGTERM when the supervisor dies, so no orphan keeps training."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Heartbeat:
    """Records a running trial's heartbeat on RDB storage from a background thread."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial, seconds: int) -> None:
        self.storage = study._storage
        self.trial_id = trial._trial_id
        self.stop = threading.Event()
        self.storage.record_heartbeat(self.trial_id)  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self._beat, args=(seconds,), daemon=True, name="optuna-heartbeat")
        self.thread.start()

    def _beat(self, seconds: int) -> None:
        while not self.stop.wait(seconds):
            try:
                self.storage.record_heartbeat(self.trial_id)  # type: ignore[attr-defined]
            except Exception:  # a missed beat is retried at the next interval
                pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def heartbeat_enabled(study: optuna.Study) -> bool:
    """Whether the study's storage records heartbeats (RDB storage opened with an interval)."""
    interval = getattr(study._storage, "get_heartbeat_interval", None)  # Optuna wraps RDBStorage in a cache
    return interval is not None and interval() is not None


class Worker:
    """Claims and runs trials until the study's budget is met, the deadline passes, or it is interrupted."""

    def __init__(self, spec: StudySpec, registry: Registry, options: WorkerOptions, out: TextIO | None = None) -> None:
        self.spec = spec
        self.registry = registry
        self.options = options
        self.progress = Progress(
            spec.metric, spec.budget.max_epochs, out, tag=options.slot, width=choices_width(spec.space)
        )
        self.policy = checkpoint_policy(spec, options.storage_url)
        ceiling = options.threads or torch.get_num_threads()
        adaptive = AdaptiveThreads(ceiling) if options.adapt_threads and ceiling > 1 else None
        self.runner = TrialRunner(spec, registry, self.progress, self.policy, threads=adaptive)
        self.identity = worker_identity(options.worker_id)
        self.failure: str | None = None  # the reason shared by the failures in a row that stopped it

    def run(self) -> str:
        """Run trials; returns `done`, `deadline`, `recycle` (memory limit), `stopped` (SIGINT or SIGTERM: the
        running trial checkpointed and will resume) or `failing` (trials in a row failed alike: `failure`)."""
        options, role = self.options, self.options.role
        if role.has_parent_process:  # a supervisor's, a SLURM batch script's or a Ray actor's child
            die_with_parent()
        install_stop_handlers(self.spec.execution.stop_grace_seconds, EXIT_GRACE_EXPIRED)
        quiet_libraries()
        if options.threads:
            torch.set_num_threads(options.threads)
        if options.tracking_uri and not role.reports_to_supervisor:  # with the other imports: the tracker connects
            importlib.import_module("mlflow.tracking")  # without holding up a trial
        data = load_data(self.spec)
        data_seconds = seconds_since_start()
        if os.environ.get(TIMINGS_ENV) == "1":
            self.progress.message(f"timing: data ready at {time.time():.3f} (unix time)")
        # a supervised worker leaves the MLflow experiment and parent run to its supervisor (set up meanwhile)
        lifecycle = StudyLifecycle(self.spec, self.registry, self.progress, options.storage_url, options.tracking_uri)
        study, parent = lifecycle.open(
            heartbeat=True, seed_offset=options.seed_offset, open_run=not role.reports_to_supervisor
        )
        if not role.reports_to_supervisor:
            lifecycle.header(options.trials)
        if role.owns_study:
            lifecycle.begin(study)
        self.progress.message(
            f"worker {options.slot or options.worker_id} ready after {seconds_since_start():.1f} s "
            f"(imports and data {data_seconds:.1f} s, study set-up "
            f"{seconds_since_start() - data_seconds:.1f} s)"
        )
        if role.reports_to_supervisor and not os.environ.get(RELEASED_ENV):
            print(READY, flush=True)
            if sys.stdin.readline().strip() != GO:
                return "done"  # the supervisor is gone, or stopped before the study began
            os.environ[RELEASED_ENV] = "1"
        if role.reports_to_supervisor and options.tracking_uri:
            parent = study.user_attrs.get(PARENT_RUN_ATTR)  # the supervisor's parent run, set before the go-ahead
        tracker = self._tracker(parent)
        outcome = "stopped"
        try:
            outcome = self._loop(study, data, tracker, parent)
            return outcome
        finally:
            done = outcome == "done"
            if role.owns_study:  # the last worker out closes the parent run
                lifecycle.end(study, tracker, "FINISHED" if done else None, sweep=done)
            elif tracker:
                tracker.close()

    def _tracker(self, parent: str | None) -> Tracker | RelayTracker | None:
        """Where the trials' runs go: supervised, to the supervisor (relayed on stdout: it writes them to MLflow);
        on its own, to MLflow through a Tracker that connects in its background thread (the first trial starts at
        once). None without tracking."""
        if not self.options.tracking_uri or not parent:
            return None
        if self.options.role.reports_to_supervisor:
            return RelayTracker(sys.stdout)
        return Tracker(self.options.tracking_uri).attach(parent)

    def _loop(self, study: optuna.Study, data: Any, tracker: StudyTracker | None, parent: str | None) -> str:
        options = self.options
        beats = heartbeat_enabled(study)  # with heartbeats, claim_trial fails stale trials itself
        waiting_said = False
        while True:
            if STOP.requested:
                return "stopped"
            if options.deadline is not None and time.time() >= options.deadline:
                return "deadline"
            heartbeat = None
            with study_lock(options.storage_url, self.spec.name):
                claim = claim_trial(study, options.trials)
                if claim is WAIT and not beats:
                    for number in recover_trials(study, options.tracking_uri, parent):
                        self.progress.message(
                            f"trial {number}: its worker died; marked FAIL and retried from its last checkpoint"
                        )
                elif not isinstance(claim, str):  # a trial, not DONE or WAIT
                    claim.set_user_attr(WORKER_ATTR, self.identity)
                    heartbeat = Heartbeat(study, claim, self.spec.execution.heartbeat_seconds) if beats else None
            if claim is DONE:
                return "done"
            if claim is WAIT:
                if not waiting_said:
                    self.progress.message("budget taken up by running trials; waiting in case one must be retried")
                    waiting_said = True
                time.sleep(WAIT_SECONDS)
                continue
            waiting_said = False
            assert not isinstance(claim, str)
            try:
                report = self.runner.run_trial(study, claim, data, tracker)
            finally:
                if heartbeat:
                    heartbeat.close()
            if tracker:
                update_summary(study, tracker)
            limit = self.spec.execution.max_consecutive_failures
            if limit and report.state == "FAIL":  # only a failure can complete a run of failures
                self.failure = repeated_failure(study, limit)
                if self.failure is not None:
                    self.progress.message(f"{repeated_failure_message(limit, self.failure)}; stopping")
                    return "failing"
            resident = resident_mb()
            if options.memory_mb and resident > options.memory_mb:
                self.progress.message(
                    f"worker {options.slot or options.worker_id}: resident memory "
                    f"{resident:.0f} MiB > limit {options.memory_mb} MiB; recycling the process"
                )
                return "recycle"


def recycle() -> None:
    """Replace this process with a fresh worker started with the same command line (same pid)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.environ[SPAWNED_AT_ENV] = repr(time.time())
    os.execv(sys.executable, [sys.executable, "-m", "orchestrator", *sys.argv[1:]])
