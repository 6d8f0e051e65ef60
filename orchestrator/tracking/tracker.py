"""MLflow tracking: experiment per study, parent run per study, child run per trial.

Every MLflow call runs in order on one background thread, so a trial never waits for a
tracking write (a synchronous SQLite write costs ~20 ms). Epoch metrics are buffered and
written with `log_batch` at most every `flush_seconds` and at the trial's end.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from orchestrator.records import PARENT_RUN_TAG, ROLE_TAG, STUDY_ROLE, TRIAL_NUMBER_TAG, TRIAL_ROLE
from orchestrator.study.storage import redact

if TYPE_CHECKING:  # MLflow loads with the first Tracker: a supervisor starts its workers before that
    from mlflow.tracking import MlflowClient

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
MAX_PARAMS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6000
RUN_STATUS = {
    "COMPLETE": "FINISHED",
    "PRUNED": "FINISHED",
    "PAUSED": "FINISHED",
    "FAIL": "FAILED",
    "INTERRUPTED": "KILLED",
}


def default_tracking_uri(cwd: Path | None = None) -> str:
    """`sqlite:///mlflow.db` in the working directory, as an absolute path."""
    return f"sqlite:///{((cwd or Path.cwd()) / 'mlflow.db').resolve()}"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _param_value(value: Any) -> str:
    return str(value)[:MAX_PARAM_LENGTH]


class TrialRun:
    """A trial's child run: buffered epoch metrics, flushed by time and at the end. Its writes go to a `sink`
    (a Tracker, which writes them to MLflow in the background, or a supervised worker's relay to its
    supervisor) as plain operations on the run's handle."""

    def __init__(self, sink: RunSink, handle: str, flush_seconds: float) -> None:
        self.sink = sink
        self.handle = handle
        self.flush_seconds = flush_seconds
        self.pending: list[tuple[str, float, int, int]] = []  # (key, value, timestamp ms, step)
        self.last_flush = time.monotonic()

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        now = _now_ms()
        self.pending.extend((k, float(v), now, epoch) for k, v in metrics.items())
        if time.monotonic() - self.last_flush >= self.flush_seconds:
            self.flush()

    def flush(self, tags: Mapping[str, str] | None = None, metrics: Mapping[str, float] | None = None) -> None:
        batch, self.pending = self.pending, []
        now = _now_ms()
        batch += [(k, float(v), now, 0) for k, v in (metrics or {}).items()]
        self.last_flush = time.monotonic()
        if batch or tags:
            self.sink.send(self.handle, "log_batch", metrics=batch, tags={k: str(v) for k, v in (tags or {}).items()})

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Tag the run (in the background, in order with its other writes)."""
        self.sink.send(self.handle, "log_batch", metrics=[], tags={k: str(v) for k, v in tags.items()})

    def log_text(self, text: str, artifact_file: str) -> None:
        self.sink.send(self.handle, "log_text", text=text, artifact_file=artifact_file)

    def log_file(self, path: Path, artifact_file: str) -> None:
        """Upload a local file as `artifact_file` (in the background), then delete the local file."""
        self.sink.send(self.handle, "log_file", path=str(path), artifact_file=artifact_file)

    def end(self, state: str, metrics: Mapping[str, float], tags: Mapping[str, str]) -> None:
        """Write what is left and close the run with the MLflow status for `state`."""
        self.flush(tags={"state": state, **tags}, metrics=metrics)
        # the trial's own end, not when the write runs
        self.sink.send(self.handle, "terminate", status=RUN_STATUS[state], end_time=_now_ms())


class RunSink(Protocol):
    def send(self, handle: str, op: str, **args: Any) -> None: ...


class StudyTracker(Protocol):
    """Where a worker writes its trials' runs and the study's summary: MLflow itself (`Tracker`) or the
    supervisor, which writes them to MLflow (`RelayTracker`)."""

    def start_trial(self, number: int, config: Mapping[str, Any], tags: Mapping[str, str]) -> TrialRun: ...

    def update_study(self, metrics: Mapping[str, float], tags: Mapping[str, str]) -> None: ...

    def close(self) -> None: ...


def start_trial_run(
    sink: RunSink, number: int, config: Mapping[str, Any], tags: Mapping[str, str], flush_seconds: float
) -> TrialRun:
    """Open trial `number`'s child run through `sink`, with every parameter of the configuration."""
    handle = uuid.uuid4().hex
    # parameters as the strings MLflow stores: what a relay line carries is then plain JSON whatever the value type
    sink.send(
        handle,
        "create",
        number=number,
        config={k: _param_value(v) for k, v in config.items()},
        tags=dict(tags),
        start_time=_now_ms(),
    )
    return TrialRun(sink, handle, flush_seconds)


def apply_run_op(client: MlflowClient, run_id: str, op: str, args: Mapping[str, Any]) -> None:
    """One write of a trial's run: `log_batch`, `log_text`, `log_file` or `terminate`."""
    from mlflow.entities import Metric, RunTag

    if op == "log_batch":
        client.log_batch(
            run_id, metrics=[Metric(*m) for m in args["metrics"]], tags=[RunTag(k, v) for k, v in args["tags"].items()]
        )
    elif op == "log_text":
        client.log_text(run_id, args["text"], args["artifact_file"])
    elif op == "log_file":
        path = Path(args["path"])
        try:
            with tempfile.TemporaryDirectory() as folder:
                named = Path(folder) / args["artifact_file"]
                path.replace(named)
                client.log_artifact(run_id, str(named))
        finally:
            path.unlink(missing_ok=True)
    elif op == "terminate":
        client.set_terminated(run_id, status=args["status"], end_time=args["end_time"])
    else:
        raise ValueError(f"unknown run operation {op!r}")


class Tracker:
    """Writes a study's runs to MLflow in the background, in order; `close()` waits for all writes."""

    def __init__(self, tracking_uri: str | None = None, flush_seconds: float = 10.0) -> None:
        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.flush_seconds = flush_seconds
        self._client: MlflowClient | None = None
        self._client_lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-writer")
        self.errors: list[str] = []
        self.runs: dict[str, str] = {}  # a trial run's handle -> its MLflow run id (known once created)
        self.parent_run_id: str | None = None
        self.experiment_id: str | None = None

    @property
    def client(self) -> MlflowClient:
        """The MLflow client, made on first use (connecting to the store costs up to a second: a worker makes it
        in the background thread, while its first trial trains)."""
        with self._client_lock:
            if self._client is None:
                from mlflow.tracking import MlflowClient

                self._client = MlflowClient(tracking_uri=self.tracking_uri)
            return self._client

    def submit(self, call: Callable[[MlflowClient], Any]) -> Future:
        def guarded() -> Any:
            try:
                return call(self.client)
            except Exception as exc:  # tracking must never stop the study
                message = f"MLflow write failed: {type(exc).__name__}: {redact(str(exc))}"
                if not self.errors:
                    print(f"warning: {message}", file=sys.stderr)
                self.errors.append(message)
                raise

        return self.executor.submit(guarded)

    # -- study ---------------------------------------------------------------------------------

    def open_study(
        self,
        study_name: str,
        parent_run_id: str | None,
        tags: Mapping[str, str],
        study_yaml: str,
        experiment_tags: Mapping[str, str] | None = None,
    ) -> str:
        """Get or create the experiment (with `experiment_tags`; an existing one gets those it
        lacks, so a view the user edited in the UI stays theirs) and the parent run
        (reopened when resuming); return its id."""
        experiment = self.client.get_experiment_by_name(study_name)
        if experiment is None:
            artifact_location = None
            if self.tracking_uri.startswith("sqlite:///"):
                db = Path(self.tracking_uri.removeprefix("sqlite:///"))
                artifact_location = (db.parent / "mlartifacts").resolve().as_uri()
            self.experiment_id = self.client.create_experiment(
                study_name, artifact_location=artifact_location, tags=dict(experiment_tags or {})
            )
        else:
            if experiment.lifecycle_stage == "deleted":
                self.client.restore_experiment(experiment.experiment_id)
            self.experiment_id = experiment.experiment_id
            for key, value in (experiment_tags or {}).items():
                if key not in experiment.tags:
                    self.client.set_experiment_tag(self.experiment_id, key, value)
        status = self._run_status(parent_run_id) if parent_run_id is not None else None
        if (
            parent_run_id is not None and status == "RUNNING"
        ):  # a live run (the supervisor or another worker) already set it up
            self.parent_run_id = parent_run_id
            return parent_run_id
        if parent_run_id is not None and status is not None:  # resuming a finished or killed study
            self.client.update_run(parent_run_id, status="RUNNING")
            run_id = parent_run_id
        else:
            run = self.client.create_run(self.experiment_id, run_name=study_name, tags={ROLE_TAG: STUDY_ROLE, **tags})
            run_id = run.info.run_id
        self.parent_run_id = run_id
        self.client.log_text(run_id, study_yaml, "study.yaml")
        return run_id

    def attach(self, parent_run_id: str) -> Tracker:
        """Write trials under an existing parent run (a worker: the supervisor opened the study). Its experiment
        is looked up in the background, before any trial's run is created there."""
        self.parent_run_id = parent_run_id

        def look_up(c: MlflowClient) -> None:
            self.experiment_id = c.get_run(parent_run_id).info.experiment_id

        self.submit(look_up)
        return self

    def _run_status(self, run_id: str) -> str | None:
        """The run's MLflow status, or None when it does not exist (e.g. a new tracking store)."""
        try:
            return self.client.get_run(run_id).info.status
        except Exception:
            return None

    def update_study(self, metrics: Mapping[str, float], tags: Mapping[str, str]) -> None:
        parent = self.parent_run_id
        from mlflow.entities import Metric, RunTag

        batch = [Metric(k, float(v), _now_ms(), 0) for k, v in metrics.items()]
        tag_list = [RunTag(k, str(v)) for k, v in tags.items()]
        self.submit(lambda c: c.log_batch(parent, metrics=batch, tags=tag_list))  # type: ignore[arg-type]

    def close_study(self, status: str) -> None:
        """Close the parent run with `status` (FINISHED, FAILED or KILLED) and wait for every write."""
        parent = self.parent_run_id
        if parent is not None:
            self.submit(lambda c: c.set_terminated(parent, status=status))
        self.close()

    def close(self) -> None:
        """Wait for every write submitted so far; the parent run stays as it is."""
        self.executor.shutdown(wait=True)

    # -- trials --------------------------------------------------------------------------------

    def start_trial(self, number: int, config: Mapping[str, Any], tags: Mapping[str, str]) -> TrialRun:
        """Open a child run with every parameter of the configuration (written in the background)."""
        return start_trial_run(self, number, config, tags, self.flush_seconds)

    def send(self, handle: str, op: str, **args: Any) -> None:
        """Queue one write of the run `handle` (`create` opens it under the parent run; `update_study` writes the
        parent run's counts and best trial, whatever the handle)."""
        if op == "update_study":
            self.update_study(args["metrics"], args["tags"])
            return
        parent = self.parent_run_id

        def write(c: MlflowClient) -> None:
            if op == "create":  # the experiment as known when the write runs (after `attach` looked it up)
                self.runs[handle] = create_trial_run(
                    c, self.experiment_id, parent, args["number"], args["config"], args["tags"], args["start_time"]
                )
            else:
                apply_run_op(c, self.runs[handle], op, args)

        self.submit(write)

    def wait(self) -> None:
        """Block until every write queued so far is done."""
        self.submit(lambda c: None).result()


def create_trial_run(
    client: MlflowClient,
    experiment_id: str | None,
    parent_run_id: str | None,
    number: int,
    config: Mapping[str, Any],
    tags: Mapping[str, str],
    start_time: int | None = None,
) -> str:
    """Create trial `number`'s child run under the parent run, with every parameter; returns its id."""
    from mlflow.entities import Param

    run = client.create_run(
        experiment_id,  # type: ignore[arg-type]  # known once the study is open
        run_name=f"trial-{number}",
        start_time=start_time,
        tags={PARENT_RUN_TAG: parent_run_id, ROLE_TAG: TRIAL_ROLE, TRIAL_NUMBER_TAG: str(number), **tags},
    )
    params = [Param(k, _param_value(v)) for k, v in config.items()]
    for start in range(0, len(params), MAX_PARAMS_PER_BATCH):
        client.log_batch(run.info.run_id, params=params[start : start + MAX_PARAMS_PER_BATCH])
    return run.info.run_id
