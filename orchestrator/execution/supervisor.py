"""`automl run`: a supervisor that starts one long-lived worker process per device slot and keeps them going.

The supervisor opens the study and its MLflow parent run once, starts the workers (secrets travel in the
environment, never on the command line), relays their output, replaces a worker that dies (its trial is
marked FAIL, its MLflow run closed, the trial retried once), and stops them all on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import optuna
from optuna.trial import TrialState

from orchestrator.api.registry import Registry
from orchestrator.env_vars import STORAGE_ENV, TRACKING_ENV
from orchestrator.errors import EXIT_USAGE, RunError  # EXIT_USAGE: a worker stopped on a user error
from orchestrator.execution.coordination import count_budget, study_lock
from orchestrator.execution.handshake import (
    DEADLINE_ENV,
    EXIT_REPEATED_FAILURE,
    GO,
    READY,
    RELEASED_ENV,
    SPAWNED_AT_ENV,
    repeated_failure_message,
)
from orchestrator.execution.lifecycle import StudyLifecycle
from orchestrator.execution.study_session import (
    RunOptions,
    load_data,
    update_summary,
)
from orchestrator.flow import Stopped
from orchestrator.quiet import quiet_libraries
from orchestrator.records import (
    CHECKPOINT_EPOCH_ATTR,
    INTERRUPTED,
    PROMOTED_ATTR,
    REASON_ATTR,
    WORKER_ATTR,
    continued_numbers,
    leading_trial,
    paused_trials,
    repeated_failure,
    retry_of,
    trial_counts,
)
from orchestrator.study.storage import redact
from orchestrator.study.studyfile import StudySpec
from orchestrator.tracking.relay import relayed_operation
from orchestrator.tracking.tracker import Tracker
from orchestrator.training.devices import DeviceError, Slot, plan_slots, visible_gpu_count
from orchestrator.trial.progress import Progress, choices_width
from orchestrator.trial.recovery import recover_trials

KILL_AFTER_GRACE_SECONDS = 10.0  # how much longer than its grace period a stopped worker may take
SUMMARY_SECONDS = 60.0
MAX_STARTUP_CRASHES = 3
READY_WAIT_SECONDS = 120.0  # how long the table waits for the workers' start-up lines


class WorkersFailedError(RunError):
    """Workers keep dying before they finish a trial: the study cannot make progress."""


class RepeatedFailureError(WorkersFailedError):
    """Trial after trial failed with the same reason: the study was stopped rather than burn its budget."""


@dataclass
class WorkerProcess:
    slot: Slot
    worker_id: str
    process: subprocess.Popen
    relays: list[threading.Thread] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)  # set up and waiting for the go-ahead


def plan_for(spec: StudySpec, options: RunOptions) -> list[Slot]:
    """The worker slots for a study: command-line options first, then the study file's keys."""
    execution = spec.execution
    try:
        return plan_slots(
            options.devices or execution.devices,
            options.workers or execution.workers,
            options.trials_per_device or execution.trials_per_device,
            options.threads,
            visible_gpu_count(),
        )
    except DeviceError as exc:
        raise exc.about(str(spec.path)) from None


def default_memory_mb(workers: int) -> int:
    """80% of this machine's memory, shared between the workers."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
    return int(0.8 * total / max(1, workers))


def _relay(
    stream: Any,
    sink: TextIO,
    ready: threading.Event | None = None,
    tracked: Callable[[str, str, dict[str, Any]], None] | None = None,
) -> None:
    """Pass a worker's output on, line by line; its READY line only sets `ready`, and its relayed tracking
    writes go to `tracked`."""
    for line in stream:
        if ready is not None and line.strip() == READY:
            ready.set()
            continue
        if tracked is not None and (operation := relayed_operation(line)) is not None:
            tracked(*operation)
            continue
        sink.write(line)
        sink.flush()


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _prepare_the_end(tracked: bool) -> None:
    """The modules the study's end needs (the checkpoint sweep's; when tracked, MLflow's model flavours,
    Matplotlib), imported while the workers start rather than after the trials. The data for logging the best
    model is built at the end, not now: each worker builds it too, and a second build beside them would hold up
    their start (a large image folder read twice at once) and disturb their first trials (the threads they
    measure, orchestrator/training/threads.py)."""
    importlib.import_module("orchestrator.training.checkpoints")
    if not tracked:
        return
    from orchestrator.tracking import best_model, summary

    best_model.prepare_imports()
    summary.prepare_imports()


def study_counts(study: optuna.Study) -> dict[str, int]:
    """The study's trial counts by state; under RETRIED the attempts (FAIL) that have a retry, under PROMOTED and
    PAUSED the successive-halving promotions and the trials still paused at a rung."""
    counts = trial_counts(study)
    trials = study.get_trials(deepcopy=False)
    promoted = [t for t in trials if PROMOTED_ATTR in t.user_attrs]
    counts["RETRIED"] = len(continued_numbers(trials)) - len(promoted)
    counts["PROMOTED"] = len(promoted)
    counts["PAUSED"] = len(paused_trials(trials))
    return counts


class Supervisor:
    """Runs a study on worker processes, one per slot, until its budget is met."""

    def __init__(
        self,
        spec: StudySpec,
        registry: Registry,
        options: RunOptions,
        storage_url: str,
        tracking_uri: str | None,
        plugin_dirs: list[Path],
        *,
        slots: list[Slot],
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.spec = spec
        self.registry = registry
        self.options = options
        self.storage_url = storage_url
        self.tracking_uri = tracking_uri
        self.plugin_dirs = plugin_dirs
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.progress = Progress(spec.metric, spec.budget.max_epochs, self.out, width=choices_width(spec.space))
        self.trials = options.trials or spec.budget.trials
        self.slots = slots
        self.memory_mb = spec.execution.worker_memory_mb or default_memory_mb(len(slots))
        self.workers: list[WorkerProcess] = []
        self.started = 0
        self.startup_crashes = 0
        self.deadline: float | None = None
        self.released = False  # workers may claim trials (the study and its parent run are set up)
        self.tracker: Tracker | None = None  # writes the trial runs the workers relay
        self.summary_at = time.monotonic()  # when the summary on the parent run was last written
        self.summary_finished = 0  # and how many trials had finished then
        self.lifecycle = StudyLifecycle(spec, registry, self.progress, storage_url, tracking_uri)

    # -- the whole run ---------------------------------------------------------------------------------

    def run(self) -> dict[str, int]:
        """Run the study to its budget; returns the study's trial counts by state, under RETRIED the attempts
        (FAIL) that have a retry, under PROMOTED and PAUSED the successive-halving promotions and the trials still
        paused at a rung. Raises Stopped on SIGINT/SIGTERM.

        The workers are started first, so that their imports (~5 s) overlap the checks and set-up here;
        they build their data, open the study, then wait for the go-ahead before claiming trials.
        """
        quiet_libraries()
        timeout = self.options.timeout or self.spec.budget.timeout
        self.deadline = time.time() + timeout if timeout else None
        previous = self._catch_signals()
        study: optuna.Study | None = None
        parent: str | None = None
        status = "FAILED"
        try:
            self._start_workers()
            study, parent = self.lifecycle.open()
            prepared = self._set_up(study, parent)
            self._watch(study, parent)
            status = "FINISHED"
            self._flush_tracking()  # the best trial's weights are among the relayed writes
            if self.tracking_uri and parent:
                self._log_best_model(study, prepared, self.tracking_uri, parent)
        except KeyboardInterrupt as exc:
            status = "KILLED"
            outcomes = self._stop_all(study, parent)
            if isinstance(exc, Stopped):
                exc.outcomes = outcomes
            raise
        except BaseException:
            self._stop_all(study, parent)
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if study is not None:
                tracker = self.tracker if self.tracker is not None and parent else None
                self.lifecycle.end(study, tracker, status, summarise=lambda: self._summarise(study, parent))
        return study_counts(study)

    def _catch_signals(self) -> dict[signal.Signals, Any]:
        """SIGINT and SIGTERM raise Stopped from now on; returns the handlers they had, to put back."""
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, self._on_signal)
        return previous

    def _set_up(self, study: optuna.Study, parent: str | None) -> Future:
        """The study is open: attach the tracker, recover the trials of workers that are gone, show the header
        once the workers are ready, call `before_study` and let the workers claim trials. Returns the import of
        the modules the study's end needs, under way in the background."""
        if self.tracking_uri and parent:  # writes the workers' trial runs, which they relay
            self.tracker = Tracker(self.tracking_uri).attach(parent)
        self.lifecycle.recover(
            study,
            parent,
            lambda n: f"trial {n} was left RUNNING by a worker that no longer exists: marked FAIL and retried",
        )
        # the modules the end needs are imported while the workers finish starting (each worker builds the
        # data before it opens the study, and stops with the error if it cannot)
        prepared = self._background(_prepare_the_end, bool(self.tracking_uri and parent))
        self._await_ready()  # their start-up lines come before the table, not inside it
        self.lifecycle.header(self.trials, self._workers_description(), count_budget(study, self.trials).finished)
        self.lifecycle.begin(study)
        self._release_workers(study, parent)
        return prepared

    def _summarise(self, study: optuna.Study, parent: str | None) -> None:
        """The summary on the parent run at the study's end: plots and tables, then the trial counts."""
        assert parent is not None and self.tracker is not None
        self._log_summary(study, parent)
        update_summary(study, self.tracker)

    def _log_summary(self, study: optuna.Study, parent: str) -> None:
        """The plots and report on the parent run (as the study goes, and at its end)."""
        self.summary_at = time.monotonic()
        self.summary_finished = count_budget(study, self.trials).finished
        try:
            from orchestrator.tracking.summary import log_summary

            log_summary(study, self.tracking_uri, parent)  # type: ignore[arg-type]
        except Exception as exc:  # the study goes on without its summary
            self.progress.message(
                f"warning: the study summary could not be written: {type(exc).__name__}: {redact(str(exc))}"
            )

    def _refresh_summary(self, study: optuna.Study, parent: str | None) -> None:
        """Rewrite the summary on the parent run (when tracked) if SUMMARY_SECONDS have passed since the last one
        and more trials have finished since."""
        if (
            self.tracking_uri
            and parent
            and time.monotonic() - self.summary_at > SUMMARY_SECONDS
            and count_budget(study, self.trials).finished > self.summary_finished
        ):
            self._log_summary(study, parent)

    def _track(self, worker_id: str, handle: str, op: str, args: dict[str, Any]) -> None:
        """A worker's relayed write of one of its trial runs (its handles are its own: prefixed with its id)."""
        if self.tracker is None:
            return
        try:
            self.tracker.send(f"{worker_id}/{handle}", op, **args)
        except RuntimeError:  # the writer is closed: the study has ended (a worker's very last line)
            self.progress.message(f"warning: a tracking write of worker {worker_id} came after the study's end")

    def _flush_tracking(self) -> None:
        """Wait until the relayed writes queued so far are in MLflow."""
        if self.tracker is not None:
            self.tracker.wait()

    @staticmethod
    def _background(call: Any, *args: Any) -> Future:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="supervisor-data")
        future = executor.submit(call, *args)
        executor.shutdown(wait=False)
        return future

    def _log_best_model(self, study: optuna.Study, prepared: Future, tracking_uri: str, parent: str) -> None:
        from orchestrator.tracking.best_model import log_best_model

        try:
            prepared.result()
            uri = log_best_model(
                study,
                self.registry,
                lambda: load_data(self.spec).to("cpu"),
                tracking_uri,
                parent,
                self.options.register,
            )
        except Exception as exc:  # the study's results stand without it
            self.progress.message(
                f"warning: the best model could not be logged: {type(exc).__name__}: {redact(str(exc))}"
            )
            return
        best = leading_trial(study)
        if uri and best is not None:
            registered = f", registered as {self.options.register!r} with alias 'best'" if self.options.register else ""
            self.progress.message(f"best model (trial {best.number}) logged as {uri}{registered}")

    def _on_signal(self, signum: int, frame: Any) -> None:
        raise Stopped(signum)

    # -- workers (a cluster launcher overrides these: orchestrator/execution/launchers/cluster_run.py) ---------------

    def _start_workers(self) -> None:
        """Start the workers; they import and build their data while the study is set up here."""
        for slot in self.slots:
            self._start(slot)

    def _workers_description(self) -> str:
        return (
            f"{len(self.slots)} ({', '.join(s.name for s in self.slots)}; {self.slots[0].threads} CPU thread(s) each)"
        )

    def _release_workers(self, study: optuna.Study, parent: str | None) -> None:
        """The study and its parent run are set up: the workers may claim trials."""
        self.released = True
        for worker in self.workers:
            self._release(worker)

    def _start(self, slot: Slot) -> None:
        self.started += 1
        worker_id = f"{slot.name}#{self.started}@{os.getpid()}"
        command = self._worker_command(slot, worker_id)
        process = subprocess.Popen(
            command,
            env=self._worker_environment(slot),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        worker = WorkerProcess(slot, worker_id, process)
        self._relay_output(worker)
        self.workers.append(worker)
        if self.released:
            self._release(worker)

    def _worker_command(self, slot: Slot, worker_id: str) -> list[str]:
        """The command line of a supervised worker on `slot` (the `self.started`-th one started)."""
        command = [
            sys.executable,
            "-m",
            "orchestrator",
            "worker",
            str(self.spec.path),
            "--supervised",
            "--worker-id",
            worker_id,
            "--slot",
            slot.name,
            "--trials",
            str(self.trials),
            "--threads",
            str(slot.threads),
            "--memory-mb",
            str(self.memory_mb),
            "--seed-offset",
            str(self.started - 1),
        ]
        if not self.options.threads:  # the share is a ceiling: the worker measures what is fastest under it
            command.append("--adapt-threads")
        for folder in self.plugin_dirs:
            command += ["--plugins-dir", str(folder)]
        if not self.tracking_uri:
            command.append("--no-tracking")
        return command

    def _worker_environment(self, slot: Slot) -> dict[str, str]:
        """A worker's environment: ours and its slot's, the storage, tracking and deadline (secrets travel here,
        never on the command line), and when it was spawned."""
        env = {**os.environ, **slot.environment(), STORAGE_ENV: self.storage_url}
        for name in (TRACKING_ENV, DEADLINE_ENV, RELEASED_ENV):
            env.pop(name, None)
        if self.tracking_uri:
            env[TRACKING_ENV] = self.tracking_uri
        if self.deadline is not None:
            env[DEADLINE_ENV] = repr(self.deadline)
        env[SPAWNED_AT_ENV] = repr(time.time())
        return env

    def _relay_output(self, worker: WorkerProcess) -> None:
        """Threads that pass the worker's output on: its standard output (with its READY line and relayed
        tracking writes) and its standard error."""
        process, worker_id = worker.process, worker.worker_id
        tracked = lambda handle, op, args: self._track(worker_id, handle, op, args)  # noqa: E731
        for stream, sink, ready, writes in (
            (process.stdout, self.out, worker.ready, tracked),
            (process.stderr, self.err, None, None),
        ):
            relay = threading.Thread(
                target=_relay, args=(stream, sink, ready, writes), daemon=True, name=f"relay-{worker.slot.name}"
            )
            relay.start()
            worker.relays.append(relay)

    def _await_ready(self, limit: float = READY_WAIT_SECONDS) -> None:
        """Wait (at most `limit` s) until every worker is set up and waits for the go-ahead, or has exited."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and not all(
            w.ready.is_set() or w.process.poll() is not None for w in self.workers
        ):
            time.sleep(0.05)

    def _release(self, worker: WorkerProcess) -> None:
        """Tell a worker it may claim trials (it waits for this line on its standard input)."""
        try:
            worker.process.stdin.write(f"{GO}\n")  # type: ignore[union-attr]
            worker.process.stdin.flush()  # type: ignore[union-attr]
        except OSError:  # it died already: the watch loop replaces it
            pass

    def _finish(self, worker: WorkerProcess) -> None:
        for relay in worker.relays:  # its output to the end: the last lines may be relayed tracking writes
            relay.join(timeout=60)
            if relay.is_alive():
                self.progress.message(f"warning: worker {worker.slot.name}'s output is still open after it exited")
        self.workers.remove(worker)

    def _watch(self, study: optuna.Study, parent: str | None) -> None:
        """Wait for the workers; replace one that dies, until every worker has finished. The summary on the
        parent run is refreshed every SUMMARY_SECONDS while trials keep finishing."""
        while self.workers:
            time.sleep(0.2)
            self._refresh_summary(study, parent)
            for worker in list(self.workers):
                code = worker.process.poll()
                if code is None:
                    continue
                self._finish(worker)
                if code == 0:
                    continue
                if code == EXIT_USAGE:
                    raise WorkersFailedError(f"worker {worker.slot.name} stopped with a study error (above)")
                if code == EXIT_REPEATED_FAILURE:
                    limit = self.spec.execution.max_consecutive_failures
                    raise RepeatedFailureError(repeated_failure_message(limit, repeated_failure(study, limit)))
                self._replace(study, parent, worker, code)

    def _replace(self, study: optuna.Study, parent: str | None, worker: WorkerProcess, code: int) -> None:
        with study_lock(self.storage_url, self.spec.name):
            self._flush_tracking()  # its relayed writes are in MLflow before its runs are judged
            recovered = recover_trials(study, self.tracking_uri, parent, worker.worker_id)
        ran_trials = any(
            (t.user_attrs.get(WORKER_ATTR) or {}).get("id") == worker.worker_id
            for t in study.get_trials(deepcopy=False)
        )
        lost = "".join(
            f"; trial {number} marked FAIL and "
            + (
                "retried from its last checkpoint"
                if retry_of(study, number)
                else "not retried again (its configuration had crashed a worker before)"
            )
            for number in recovered
        )
        if code in (128 + signal.SIGTERM, 128 + signal.SIGINT):
            what = f"stopped by {signal.Signals(code - 128).name} (a trial it was running resumes from its checkpoint)"
        else:
            what = f"died: {_describe_exit(code)}"
        self.progress.message(
            f"worker {worker.slot.name} (pid {worker.process.pid}) {what}{lost}; starting a replacement"
        )
        self.startup_crashes = 0 if ran_trials else self.startup_crashes + 1
        if self.startup_crashes >= MAX_STARTUP_CRASHES:
            raise WorkersFailedError(
                f"{self.startup_crashes} workers in a row died before running a trial (see their errors above)"
            )
        self._start(worker.slot)

    def _stop_all(self, study: optuna.Study | None, parent: str | None) -> list[str]:
        """Ask every worker to stop (each finishes or checkpoints its trial, marks it FAIL `interrupted` and
        its run KILLED; the retry resumes from the checkpoint), kill those still alive after their grace
        period, and return one line per trial that was running, saying what became of it."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        running = self._running_trials(study)
        for worker in self.workers:
            if worker.process.poll() is None:  # before the go-ahead a worker holds no trial: no need to wait
                worker.process.send_signal(signal.SIGINT if self.released else signal.SIGKILL)
        until = time.monotonic() + self.spec.execution.stop_grace_seconds + KILL_AFTER_GRACE_SECONDS
        for worker in list(self.workers):
            try:
                worker.process.wait(timeout=max(0.1, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            self._finish(worker)
            self._flush_tracking()
            if study is not None:
                with study_lock(self.storage_url, self.spec.name):
                    recover_trials(study, self.tracking_uri, parent, worker.worker_id)
        return self._stop_outcomes(study, running)

    def _running_trials(self, study: optuna.Study | None) -> list[int]:
        if study is None:
            return []
        try:
            return [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
        except Exception:  # the storage is unreachable: nothing to report
            return []

    def _stop_outcomes(self, study: optuna.Study | None, numbers: list[int]) -> list[str]:
        """What became of each trial that was running when the stop came, as the storage now says."""
        if study is None or not numbers:
            return []
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        lines = []
        for number in numbers:
            trial = trials[number]
            reason = trial.user_attrs.get(REASON_ATTR, "")
            if trial.state != TrialState.FAIL:
                lines.append(f"trial {number} finished before it could be stopped ({trial.state.name})")
            elif reason == INTERRUPTED:
                epoch = trial.user_attrs.get(CHECKPOINT_EPOCH_ATTR, 0)
                resumes = f"resumes at epoch {epoch} from its checkpoint" if epoch else "starts again at epoch 0"
                lines.append(f"trial {number} interrupted (MLflow run KILLED); its retry {resumes}")
            else:
                retried = "retried from its last checkpoint" if retry_of(study, number) else "not retried"
                lines.append(f"trial {number} marked FAIL ({reason}; MLflow run FAILED), {retried}")
        return lines
