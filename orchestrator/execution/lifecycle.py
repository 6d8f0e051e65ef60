"""One owner of a study's start and end, for the supervisor of `automl run` (its local workers or a cluster
launcher's) and for a worker that runs the study on its own (`automl worker`): open it (storage, the guard against
a changed study file, the MLflow parent run), recover trials left RUNNING, print the header, call `before_study`;
at the end sweep the checkpoints, write the summary, close the parent run and call `after_study`.

`Role` says which of those a worker process does: the places that differ ask the role's properties, never which
role it is.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

import optuna

from orchestrator.api.registry import Registry
from orchestrator.execution.coordination import study_lock
from orchestrator.execution.study_session import checkpoint_policy, open_tracked_study
from orchestrator.study.storage import redact
from orchestrator.study.studyfile import StudySpec
from orchestrator.trial.progress import Progress
from orchestrator.trial.recovery import recover_trials


class Role(Enum):
    """What a worker process is to its study. STANDALONE: `automl worker` on its own, it owns the study's start
    and end. SUPERVISED: a child of `automl run`'s supervisor, which owns the study and writes the MLflow runs the
    worker relays to it. LAUNCHED: a cluster launcher's task, `automl run` owns the start and end, the worker
    tracks its own trials."""

    STANDALONE = "standalone"
    SUPERVISED = "supervised"
    LAUNCHED = "launched"

    @classmethod
    def of(cls, supervised: bool, launched: bool) -> Role:
        """The role the command line gives (`--supervised`, `--launched`)."""
        return cls.SUPERVISED if supervised else cls.LAUNCHED if launched else cls.STANDALONE

    @property
    def owns_study(self) -> bool:
        """Calls the study's hooks, sweeps its checkpoints and closes its parent run."""
        return self is Role.STANDALONE

    @property
    def reports_to_supervisor(self) -> bool:
        """Waits for the supervisor's go-ahead, relays its tracking, prints no header of its own."""
        return self is Role.SUPERVISED

    @property
    def has_parent_process(self) -> bool:
        """Started by a process (a supervisor, a batch script, a Ray actor) it must not outlive."""
        return self is not Role.STANDALONE


class StudyLifecycle:
    """Opens, announces and closes one study for whoever runs it (`Supervisor`, a standalone `Worker`)."""

    def __init__(
        self,
        spec: StudySpec,
        registry: Registry,
        progress: Progress,
        storage_url: str,
        tracking_uri: str | None,
    ) -> None:
        self.spec = spec
        self.registry = registry
        self.progress = progress
        self.storage_url = storage_url
        self.tracking_uri = tracking_uri

    def open(self, heartbeat: bool = False, seed_offset: int = 0, open_run: bool = True) -> tuple[Any, str | None]:
        """The study, created or resumed, and its MLflow parent run (None untracked, or when not `open_run`)."""
        return open_tracked_study(
            self.spec,
            self.storage_url,
            self.tracking_uri,
            heartbeat=heartbeat,
            seed_offset=seed_offset,
            open_run=open_run,
        )

    def recover(self, study: optuna.Study, parent: str | None, said: Callable[[int], str]) -> list[int]:
        """Fail and retry the trials left RUNNING by workers that no longer exist; says `said(number)` of each."""
        with study_lock(self.storage_url, self.spec.name):
            recovered = recover_trials(study, self.tracking_uri, parent)
        for number in recovered:
            self.progress.message(said(number))
        return recovered

    def header(self, trials: int, workers: str | None = None, finished: int = 0) -> None:
        """The study's name, budget, storage, tracking (passwords hidden) and workers, above the trials' table."""
        self.progress.header(
            self.spec.name,
            trials,
            redact(self.storage_url),
            redact(self.tracking_uri) if self.tracking_uri else None,
            workers,
            finished,
        )

    def begin(self, study: optuna.Study) -> None:
        """The plugins' `before_study`, once the study exists and before its first trial of this run."""
        self.registry.hook.before_study(study=study, spec=self.spec)

    def end(
        self,
        study: optuna.Study,
        tracker: Any,
        status: str | None,
        sweep: bool = True,
        summarise: Callable[[], None] | None = None,
    ) -> None:
        """The study's end for this run: its checkpoints swept (`sweep`), its summary written (`summarise`),
        its parent run closed with `status` (or only flushed when None: another worker closes it), and the
        plugins' `after_study`, also when the run was interrupted."""
        if sweep:
            from orchestrator.training import checkpoints  # Lightning: imported only at the end

            checkpoints.sweep_study(checkpoint_policy(self.spec, self.storage_url), study)
        if tracker is not None:
            if summarise is not None:
                summarise()
            if status is not None:
                tracker.close_study(status)  # after every write
            else:
                tracker.close()
        self.registry.hook.after_study(study=study, spec=self.spec)
