"""The built-in sinks a trial's record goes through, in this order: Optuna (attributes, tell, an interrupted
trial's retry), its checkpoint (deleted where its lineage ends), MLflow (the run's traceback, candidate weights,
final metrics and end), the lifecycle hook `after_trial`, and the progress table. Plugins' sinks
(`trial_sinks`) come after MLflow's and the hooks', before progress.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import optuna
from optuna.trial import TrialState

from orchestrator.api.registry import Registry
from orchestrator.api.sinks import TrialRecord, TrialSink
from orchestrator.records import (
    CHECKPOINT_EPOCH_ATTR,
    EPOCHS_ATTR,
    INTERRUPTED,
    OBJECTIVE_METRIC,
    PAUSED_ATTR,
    REASON_ATTR,
    leading_trial,
)
from orchestrator.tracking.best_model import WEIGHTS_FILE, weights_file
from orchestrator.tracking.tracker import StudyTracker
from orchestrator.training import checkpoints
from orchestrator.training.checkpoints import CheckpointPolicy
from orchestrator.trial.progress import Progress
from orchestrator.trial.recovery import retry_trial

ENDED = ("COMPLETE", "PRUNED", "FAIL")  # states where a lineage ends (not paused, not interrupted)


def best_of(study: optuna.Study) -> tuple[int, float] | None:
    """(number, value of the first objective) of the best complete trial so far, or None."""
    best = leading_trial(study)
    return None if best is None else (best.number, float(best.values[0]))


def record_trial(record: TrialRecord, sinks: Sequence[TrialSink]) -> None:
    """Hand one trial's record to every sink, in order."""
    for sink in sinks:
        sink.record(record)


class OptunaSink:
    """The trial's attributes and its state told to the study; an interrupted trial is told FAIL and retried."""

    def __init__(self, multi_objective: bool) -> None:
        self.multi_objective = multi_objective

    def record(self, trial: TrialRecord) -> None:
        study, live = trial.handles.study, trial.handles.trial
        if trial.state == "INTERRUPTED":
            live.set_user_attr(REASON_ATTR, INTERRUPTED)
            live.set_user_attr(EPOCHS_ATTR, trial.epochs)  # what it trained before the interruption
            live.set_user_attr(CHECKPOINT_EPOCH_ATTR, trial.epochs if trial.checkpointed else 0)
            study.tell(live, state=TrialState.FAIL)
            frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
            trial.retry = retry_trial(study, frozen, INTERRUPTED, crashed=False)
            return
        if trial.state == "PAUSED":  # PRUNED for the sampler, with the rung it paused at
            live.set_user_attr(PAUSED_ATTR, trial.epochs)
            live.set_user_attr(REASON_ATTR, trial.reason)
            study.tell(live, state=TrialState.PRUNED)
            return
        live.set_user_attr(EPOCHS_ATTR, trial.epochs)
        if trial.reason:
            live.set_user_attr(REASON_ATTR, trial.reason)
        if trial.state == "COMPLETE":
            study.tell(live, list(trial.values) if self.multi_objective else trial.value)
        else:
            study.tell(live, state=TrialState.PRUNED if trial.state == "PRUNED" else TrialState.FAIL)


class CheckpointSink:
    """Deletes the lineage's checkpoint where the lineage ends (a paused or interrupted trial keeps it)."""

    def __init__(self, policy: CheckpointPolicy) -> None:
        self.policy = policy

    def record(self, trial: TrialRecord) -> None:
        if trial.state in ENDED and trial.handles.checkpoint is not None and not self.policy.keep:
            checkpoints.delete(trial.handles.checkpoint)


class TrackingSink:
    """The trial's MLflow run (opened now if the trial failed before it had one): its traceback, the weights of
    a candidate best model, its final metrics, and its end with the state and reason."""

    def __init__(self, tracker: StudyTracker) -> None:
        self.tracker = tracker

    def record(self, trial: TrialRecord) -> None:
        run = trial.handles.run
        if run is None:
            run = trial.handles.run = self.tracker.start_trial(trial.number, dict(trial.config), {})
        if trial.state == "INTERRUPTED":
            retry = {"resumed_in_trial": str(trial.retry)} if trial.retry is not None else {}
            run.end("INTERRUPTED", {}, {"reason": INTERRUPTED, "resumes": trial.resumes, **retry})
            return
        if trial.state == "PAUSED":
            run.end("PAUSED", {}, {"reason": trial.reason, "paused_at_epoch": str(trial.epochs)})
            return
        if trial.traceback:
            run.log_text(trial.traceback, "traceback.txt")
        if trial.improves_best and trial.network is not None:
            run.log_file(weights_file(trial.network), WEIGHTS_FILE)  # a candidate for the best model
        final = {**trial.test_metrics, **trial.measured}
        if trial.state == "COMPLETE" and trial.value is not None:
            final[OBJECTIVE_METRIC] = trial.value
            if len(trial.values) > 1:
                final.update({f"{OBJECTIVE_METRIC}_{i}": cast(float, v) for i, v in enumerate(trial.values)})
        run.end(trial.state, final, {"reason": trial.reason} if trial.reason else {})


class HookSink:
    """The plugins' `after_trial` hook (not for an interrupted trial: it is not over, its retry goes on)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def record(self, trial: TrialRecord) -> None:
        if trial.state == "INTERRUPTED":
            return
        self.registry.hook.after_trial(
            trial=trial.handles.trial,
            config=trial.config,
            state=trial.state,
            value=trial.value,
            metrics=trial.test_metrics,
        )


class ProgressSink:
    """The trial's row in the progress table."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def record(self, trial: TrialRecord) -> None:
        best = best_of(trial.handles.study)
        if trial.state == "INTERRUPTED":
            reason = f"{INTERRUPTED}; its retry {trial.resumes}"
            self.progress.trial_done(trial.number, trial.config, trial.epochs, None, "FAIL", best, reason)
        else:
            self.progress.trial_done(
                trial.number, trial.config, trial.epochs, trial.value, trial.state, best, trial.reason
            )
