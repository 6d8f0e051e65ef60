"""Run one claimed trial: compute its outcome (sample, resume, train, measure, classify), then record it
(Optuna, MLflow, hooks, progress, its checkpoint). Whatever fails ends this trial only."""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from orchestrator.api.components import DataBundle
from orchestrator.api.registry import Registry
from orchestrator.preemption import TrialInterrupted
from orchestrator.records import (
    CHECKPOINT_EPOCH_ATTR,
    CONFIG_ATTR,
    EPOCHS_ATTR,
    INTERRUPTED,
    OUT_OF_MEMORY_ATTR,
    PAUSED_ATTR,
    PROMOTED_ATTR,
    REASON_ATTR,
    RESUME_SKIPPED_ATTR,
    RESUME_SKIPPED_TAG,
    RESUMED_AT_TAG,
    RESUMED_ATTR,
    RESUMED_FROM_TAG,
    RETRY_OF_ATTR,
    RUNGS_ATTR,
    RUNTIME_ATTR,
    TEST_METRICS_ATTR,
    leading_trial,
    lineage,
)
from orchestrator.search.promotion import is_asha
from orchestrator.search.rungs import RungCallback
from orchestrator.search.space import CHOSEN_KINDS
from orchestrator.study.storage import redact
from orchestrator.study.studyfile import StudySpec
from orchestrator.tracking.best_model import WEIGHTS_FILE, improves, weights_file
from orchestrator.tracking.review_view import OBJECTIVE_METRIC
from orchestrator.tracking.tracker import Tracker, TrialRun
from orchestrator.training import checkpoints
from orchestrator.training.checkpoints import CheckpointError, Checkpointing, CheckpointPolicy, TrialPaused
from orchestrator.training.fit import TrainingResult, train
from orchestrator.training.network_metrics import latency_ms, parameter_count
from orchestrator.training.runtime import current_runtime
from orchestrator.training.threads import AdaptiveThreads
from orchestrator.trial.progress import Progress
from orchestrator.trial.recovery import retry_trial


@dataclass(frozen=True)
class TrialReport:
    number: int
    state: str
    value: float | None
    reason: str | None = None


@dataclass
class Attempt:
    """One attempt at a trial as it goes: its configuration, MLflow run and checkpoint file."""

    trial: optuna.Trial
    lineage: int
    config: dict[str, Any] = field(default_factory=dict)
    run: TrialRun | None = None
    checkpoint: Path | None = None


@dataclass
class Outcome:
    """What an attempt produced. `state` is COMPLETE, PRUNED, FAIL, PAUSED (at an asha rung: recorded as PRUNED,
    its checkpoint kept for a promotion) or INTERRUPTED (stopped by a signal: recorded as FAIL and retried,
    resuming from `epochs` when `checkpointed`)."""

    state: str = "FAIL"
    values: list[float | None] = field(default_factory=list)
    reason: str | None = None
    traceback: str = ""  # of an unexpected exception (logged as the run's traceback.txt)
    result: TrainingResult | None = None
    test_metrics: dict[str, float] = field(default_factory=dict)
    measured: dict[str, float] = field(default_factory=dict)
    epochs: int = 0
    checkpointed: bool = False
    keyboard_interrupt: bool = False  # raised by a KeyboardInterrupt or SystemExit: re-raised once recorded

    @property
    def value(self) -> float | None:
        return self.values[0] if self.values else None


def best_of(study: optuna.Study) -> tuple[int, float] | None:
    """(number, value of the first objective) of the best complete trial so far, or None."""
    best = leading_trial(study)
    return None if best is None else (best.number, float(best.values[0]))


def _plugin_tags(config: Mapping[str, Any], registry: Registry) -> dict[str, str]:
    tags = {}
    for kind in CHOSEN_KINDS:
        entry = registry.get(kind, config[kind])
        tags[f"component.{kind}"] = config[kind]
        tags[f"plugin.{kind}.{config[kind]}"] = entry.plugin
    for key, used in config.items():
        if key.startswith("regularizer.") and key.count(".") == 1 and used:
            name = key.split(".", 1)[1]
            tags[f"plugin.regularizer.{name}"] = registry.get("regularizer", name).plugin
    return tags


def _is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def _earlier_out_of_memory(study: optuna.Study, trial: optuna.Trial) -> int | None:
    """The number of an earlier trial with exactly these parameters that ran out of memory, if any."""
    params = trial.params
    for earlier in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)):
        if earlier.user_attrs.get(OUT_OF_MEMORY_ATTR) and earlier.params == params:
            return earlier.number
    return None


def _release_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class TrialRunner:
    """Runs claimed trials of one study in this process and records them in Optuna and MLflow."""

    def __init__(
        self,
        spec: StudySpec,
        registry: Registry,
        progress: Progress,
        checkpoint_policy: CheckpointPolicy | None = None,
        on_checkpoint_error: Callable[[str], None] | None = None,
        threads: AdaptiveThreads | None = None,
    ) -> None:
        self.spec = spec
        self.threads = threads  # None: the worker's thread count is fixed (--threads)
        self.registry = registry
        self.progress = progress
        self.policy = checkpoint_policy if checkpoint_policy is not None and checkpoint_policy.enabled else None
        self.on_checkpoint_error = on_checkpoint_error or checkpoints.warn_once(progress.out)

    def run_trial(
        self, study: optuna.Study, trial: optuna.Trial, data: DataBundle, tracker: Tracker | None
    ) -> TrialReport:
        """Compute the trial's outcome, then record it. A KeyboardInterrupt is re-raised once recorded."""
        self.progress.trial_started(trial.number)
        attempt = Attempt(trial, lineage(trial))
        if self.policy is not None:
            attempt.checkpoint = self.policy.path(self.spec.name, attempt.lineage)
        outcome = self._compute(study, attempt, data, tracker)
        report = self._record(study, attempt, outcome, data, tracker)
        if outcome.keyboard_interrupt:
            raise KeyboardInterrupt
        return report

    # -- computing the outcome ---------------------------------------------------------------------------

    def _runtime(self, number: int) -> dict[str, Any]:
        """The runtime this trial trains with; where the threads are measured, measured now (and said when the
        choice changes), for the whole trial."""
        if self.threads is None:
            return current_runtime()
        choice, changed = self.threads.for_trial()
        if changed:
            self.progress.message(f"trial {number}: {choice.describe()}")
        return {
            **current_runtime(),
            "threads_measured": {str(count): seconds for count, seconds in sorted(choice.seconds_per_step.items())},
        }

    def _compute(self, study: optuna.Study, attempt: Attempt, data: DataBundle, tracker: Tracker | None) -> Outcome:
        trial, spec = attempt.trial, self.spec
        outcome = Outcome()
        try:  # from here on, whatever fails ends this trial (and only this trial)
            attempt.config = spec.space.sample(trial)
            trial.set_user_attr(CONFIG_ATTR, attempt.config)
            trial.set_user_attr(RUNTIME_ATTR, self._runtime(trial.number))  # what `automl rerun` re-creates
            if tracker:
                attempt.run = tracker.start_trial(
                    trial.number, attempt.config, _plugin_tags(attempt.config, self.registry)
                )
            earlier = _earlier_out_of_memory(study, trial)
            if earlier is not None:
                raise MemoryError(f"the same configuration ran out of memory in trial {earlier}; not trained again")
            self.registry.hook.before_trial(trial=trial, config=attempt.config)
            result = self._train(attempt, data)
            outcome.result, outcome.epochs = result, result.epochs
            self._classify(outcome, attempt, result, data)
        except TrialPaused as exc:
            outcome.state, outcome.epochs, outcome.checkpointed = "PAUSED", exc.epochs, True
        except TrialInterrupted as exc:
            outcome.state, outcome.epochs, outcome.checkpointed = "INTERRUPTED", exc.epochs, exc.checkpointed
        except (KeyboardInterrupt, SystemExit):  # raised by a plugin or a hook, not by our signal handling
            outcome.state, outcome.keyboard_interrupt = "INTERRUPTED", True
            saved = checkpoints.saved_epoch(attempt.checkpoint) if attempt.checkpoint is not None else None
            outcome.epochs, outcome.checkpointed = saved or 0, saved is not None
        except Exception as exc:
            outcome.state, outcome.reason = "FAIL", f"{type(exc).__name__}: {redact(str(exc))}"
            if _is_out_of_memory(exc):  # reported to the sampler as PRUNED (a bad region), never trained again
                outcome.state, outcome.reason = "PRUNED", f"out of memory: {outcome.reason}"
                trial.set_user_attr(OUT_OF_MEMORY_ATTR, True)
                _release_memory()
            else:
                outcome.traceback = traceback.format_exc()
        return outcome

    def _train(self, attempt: Attempt, data: DataBundle) -> TrainingResult:
        """Train the attempt, resuming from its lineage's checkpoint when there is a usable one."""
        spec, trial = self.spec, attempt.trial
        listeners = [self.progress.epoch] + ([attempt.run.log_epoch] if attempt.run else [])
        callbacks = [cb for extra in self.registry.hook.trial_callbacks(config=attempt.config) for cb in extra]

        def run(resume: Mapping[str, Any] | None) -> TrainingResult:
            checkpointing = None
            rungs: list[Any] = []
            if self.policy is not None and attempt.checkpoint is not None:
                checkpointing = Checkpointing(
                    self.policy, attempt.checkpoint, resume, {"trial": trial.number}, self.on_checkpoint_error
                )
                if is_asha(trial.study.pruner):
                    rungs.append(
                        RungCallback(
                            trial,
                            trial.study.pruner,
                            attempt.lineage,
                            self._rung_values(data),
                            checkpointing.request_pause,
                        )
                    )
            # Optuna prunes (and takes intermediate values) only for a single objective
            return train(
                attempt.config,
                self.registry,
                data,
                max_epochs=spec.budget.max_epochs,
                seed=spec.seed + attempt.lineage,
                trial=None if spec.multi_objective else trial,
                monitor=spec.metric,
                direction=spec.direction,
                listeners=listeners,
                callbacks=[*rungs, *callbacks],
                checkpointing=checkpointing,
            )

        resume = self._resume_state(attempt)
        if resume is None:
            return run(None)
        try:
            result = run(resume)
        except CheckpointError as exc:  # raised before any epoch was trained or replayed
            self._resume_skipped(attempt, str(exc))
            return run(None)
        except BaseException:  # paused, interrupted or failed after it resumed: it did resume
            self._resumed(attempt, resume)
            raise
        self._resumed(attempt, resume)
        return result

    @staticmethod
    def _resumed(attempt: Attempt, resume: Mapping[str, Any]) -> None:
        epoch = int(resume["epoch"])
        attempt.trial.set_user_attr(RESUMED_ATTR, {"from_trial": resume.get("trial"), "epoch": epoch})
        if attempt.run:
            attempt.run.set_tags({RESUMED_FROM_TAG: str(resume.get("trial")), RESUMED_AT_TAG: str(epoch)})

    def _rung_values(self, data: DataBundle) -> Callable[[Any, Any], list[float] | None]:
        """How a rung reads the objectives' values at an epoch's end (None when one is missing)."""
        objectives = self.spec.objectives or ((self.spec.metric, self.spec.direction),)

        def values(trainer: Any, module: Any) -> list[float] | None:
            measured: list[float] = []
            for name, _ in objectives:
                if name == "params":
                    measured.append(float(parameter_count(module.network)))
                elif name == "latency_ms":
                    measured.append(latency_ms(module.network, data.inputs("val", 1).to(module.device)))
                elif name in trainer.callback_metrics:
                    measured.append(float(trainer.callback_metrics[name]))
                else:
                    return None
            return measured

        return values

    def _resume_state(self, attempt: Attempt) -> Mapping[str, Any] | None:
        """The lineage's checkpoint for this configuration, or None (none there, or unusable: then the reason
        is recorded and training starts at epoch 0)."""
        if attempt.checkpoint is None or RETRY_OF_ATTR not in attempt.trial.user_attrs:
            return None
        try:
            state = checkpoints.load(attempt.checkpoint, attempt.config, self.spec.budget.max_epochs)
        except CheckpointError as exc:
            self._resume_skipped(attempt, str(exc))
            return None
        if state is not None:
            how = "continuing" if PROMOTED_ATTR in attempt.trial.user_attrs else "resuming"
            self.progress.message(
                f"trial {attempt.trial.number}: {how} trial {state.get('trial')} at epoch "
                f"{state['epoch']} from its checkpoint"
            )
        return state

    def _resume_skipped(self, attempt: Attempt, reason: str) -> None:
        attempt.trial.set_user_attr(RESUME_SKIPPED_ATTR, reason)
        if attempt.run:
            attempt.run.set_tags({RESUME_SKIPPED_TAG: reason})
        self.progress.message(f"trial {attempt.trial.number}: starting at epoch 0: {reason}")
        if attempt.checkpoint is not None:
            checkpoints.delete(attempt.checkpoint)

    def _classify(self, outcome: Outcome, attempt: Attempt, result: TrainingResult, data: DataBundle) -> None:
        """Test metrics, model metrics, objective values, constraints, and the state with its reason."""
        spec, trial = self.spec, attempt.trial
        outcome.test_metrics = result.test_metrics
        trial.set_user_attr(TEST_METRICS_ATTR, result.test_metrics)
        outcome.measured = self._model_metrics(result, data)
        objectives = spec.objectives or ((spec.metric, spec.direction),)
        outcome.values = [outcome.measured[m] if m in outcome.measured else result.final(m) for m, _ in objectives]
        for name, bound in spec.constraints.items():  # feasible when <= 0
            trial.set_constraint(f"max_{name}", outcome.measured[name] - bound)
        bad = [(m, v) for (m, _), v in zip(objectives, outcome.values) if v is None or not math.isfinite(v)]
        if result.diverged_at is not None:
            outcome.reason = f"training loss is not finite at epoch {result.diverged_at}"
        elif result.pruned_at is not None:
            outcome.state = "PRUNED"
            outcome.reason = f"pruned by the {spec.pruner[0]} pruner after epoch {result.pruned_at}"
        elif bad:
            outcome.reason = f"objective {bad[0][0]} is {bad[0][1]}"
        else:
            outcome.state = "COMPLETE"

    def _model_metrics(self, result: TrainingResult, data: DataBundle) -> dict[str, float]:
        """The network's parameter count, and its latency when an objective or a constraint needs it."""
        network = result.model.network  # type: ignore[union-attr]
        measured = {"params": float(parameter_count(network))}
        wanted = {m for m, _ in self.spec.objectives} | set(self.spec.constraints)
        if "latency_ms" in wanted and data.task != "generative":
            device = result.model.device  # type: ignore[union-attr]
            measured["latency_ms"] = latency_ms(network, data.inputs("val", 1).to(device))
        return measured

    # -- recording it ------------------------------------------------------------------------------------

    def _record(
        self, study: optuna.Study, attempt: Attempt, outcome: Outcome, data: DataBundle, tracker: Tracker | None
    ) -> TrialReport:
        if outcome.state == "INTERRUPTED":
            return self._record_interrupted(study, attempt, outcome, tracker)
        if outcome.state == "PAUSED":
            return self._record_paused(study, attempt, outcome, tracker)
        trial, spec, reason = attempt.trial, self.spec, outcome.reason
        trial.set_user_attr(EPOCHS_ATTR, outcome.epochs)
        run = self._run_of(attempt, tracker)
        if reason:
            trial.set_user_attr(REASON_ATTR, reason)
        if run and outcome.traceback:
            run.log_text(outcome.traceback, "traceback.txt")
        state, value = outcome.state, outcome.value
        if (
            run
            and state == "COMPLETE"
            and outcome.result is not None
            and data.task != "generative"
            and improves(study, value)
        ):  # type: ignore[arg-type]
            run.log_file(weights_file(outcome.result.model.network), WEIGHTS_FILE)  # a candidate for the best model
        if state == "COMPLETE":
            study.tell(trial, outcome.values if spec.multi_objective else value)
        else:
            study.tell(trial, state=TrialState.PRUNED if state == "PRUNED" else TrialState.FAIL)
        if attempt.checkpoint is not None and not self.policy.keep:  # type: ignore[union-attr]
            checkpoints.delete(attempt.checkpoint)  # the lineage ends here
        if run:
            final = {
                **outcome.test_metrics,
                **outcome.measured,
                **({OBJECTIVE_METRIC: value} if state == "COMPLETE" and value is not None else {}),
            }
            if state == "COMPLETE" and spec.multi_objective:
                final.update({f"{OBJECTIVE_METRIC}_{i}": v for i, v in enumerate(outcome.values)})
            run.end(state, final, {"reason": reason} if reason else {})
        self.registry.hook.after_trial(
            trial=trial, config=attempt.config, state=state, value=value, metrics=outcome.test_metrics
        )
        self.progress.trial_done(trial.number, attempt.config, outcome.epochs, value, state, best_of(study), reason)
        return TrialReport(trial.number, state, value, reason)

    @staticmethod
    def _run_of(attempt: Attempt, tracker: Tracker | None) -> TrialRun | None:
        """The attempt's MLflow run; one is opened now when the attempt failed before opening it."""
        if attempt.run is None and tracker is not None:
            attempt.run = tracker.start_trial(attempt.trial.number, attempt.config, {})
        return attempt.run

    def _record_paused(
        self, study: optuna.Study, attempt: Attempt, outcome: Outcome, tracker: Tracker | None
    ) -> TrialReport:
        """PRUNED with `paused_at_epoch` (the checkpoint stays: a worker may promote it); the run FINISHED with
        state PAUSED. Its value for the sampler is the rung's (Optuna takes the last intermediate value)."""
        trial, epochs = attempt.trial, outcome.epochs
        reason = f"paused at the rung of epoch {epochs} (not in its top 1/{trial.study.pruner.eta} yet)"
        trial.set_user_attr(PAUSED_ATTR, epochs)
        trial.set_user_attr(REASON_ATTR, reason)
        study.tell(trial, state=TrialState.PRUNED)
        value = (trial.user_attrs.get(RUNGS_ATTR) or {}).get(str(epochs), [None])[0]
        run = self._run_of(attempt, tracker)
        if run:
            run.end("PAUSED", {}, {"reason": reason, "paused_at_epoch": str(epochs)})
        self.registry.hook.after_trial(trial=trial, config=attempt.config, state="PAUSED", value=value, metrics={})
        self.progress.trial_done(trial.number, attempt.config, epochs, value, "PAUSED", best_of(study), reason)
        return TrialReport(trial.number, "PAUSED", value, reason)

    def _record_interrupted(
        self, study: optuna.Study, attempt: Attempt, outcome: Outcome, tracker: Tracker | None
    ) -> TrialReport:
        """FAIL with reason `interrupted`, the run KILLED, and a retry enqueued that resumes from the checkpoint."""
        trial = attempt.trial
        trial.set_user_attr(REASON_ATTR, INTERRUPTED)
        trial.set_user_attr(EPOCHS_ATTR, outcome.epochs)  # what it trained before the interruption
        trial.set_user_attr(CHECKPOINT_EPOCH_ATTR, outcome.epochs if outcome.checkpointed else 0)
        study.tell(trial, state=TrialState.FAIL)
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        retry = retry_trial(study, frozen, INTERRUPTED, crashed=False)
        resumes = f"resumes at epoch {outcome.epochs}" if outcome.checkpointed else "restarts at epoch 0"
        run = self._run_of(attempt, tracker)
        if run:
            run.end(
                "INTERRUPTED",
                {},
                {
                    "reason": INTERRUPTED,
                    "resumes": resumes,
                    **({"resumed_in_trial": str(retry)} if retry is not None else {}),
                },
            )
        self.progress.trial_done(
            trial.number,
            attempt.config,
            outcome.epochs,
            None,
            "FAIL",
            best_of(study),
            f"{INTERRUPTED}; its retry {resumes}",
        )
        return TrialReport(trial.number, "FAIL", None, INTERRUPTED)
