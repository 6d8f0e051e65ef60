"""Run one claimed trial: compute its outcome (sample, resume, train, measure, classify), then record it
(Optuna, MLflow, hooks, progress, its checkpoint). Whatever fails ends this trial only."""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import optuna
import torch
from optuna.trial import TrialState

from orchestrator.api.components import DataBundle
from orchestrator.api.registry import Registry
from orchestrator.api.sinks import TrialHandles, TrialRecord, TrialSink
from orchestrator.preemption import TrialInterrupted
from orchestrator.records import (
    CONFIG_ATTR,
    INTERRUPTED,
    OUT_OF_MEMORY_ATTR,
    PROMOTED_ATTR,
    RESUME_SKIPPED_ATTR,
    RESUME_SKIPPED_TAG,
    RESUMED_AT_TAG,
    RESUMED_ATTR,
    RESUMED_FROM_TAG,
    RETRY_OF_ATTR,
    RUNGS_ATTR,
    RUNTIME_ATTR,
    TEST_METRICS_ATTR,
    lineage,
)
from orchestrator.search.promotion import SuccessiveHalving, is_asha
from orchestrator.search.rungs import RungCallback
from orchestrator.search.space import CHOSEN_KINDS
from orchestrator.study.storage import redact
from orchestrator.study.studyfile import StudySpec
from orchestrator.tracking.best_model import improves
from orchestrator.tracking.tracker import StudyTracker, TrialRun
from orchestrator.training import checkpoints
from orchestrator.training.checkpoints import CheckpointError, Checkpointing, CheckpointPolicy, TrialPaused
from orchestrator.training.fit import TrainingResult, train
from orchestrator.training.network_metrics import latency_ms, parameter_count
from orchestrator.training.runtime import current_runtime
from orchestrator.training.threads import AdaptiveThreads
from orchestrator.trial.progress import Progress
from orchestrator.trial.sinks import (
    CheckpointSink,
    HookSink,
    OptunaSink,
    ProgressSink,
    TrackingSink,
    record_trial,
)


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
        self.plugin_sinks: list[TrialSink] = [
            sink for sinks in registry.hook.trial_sinks(study_name=spec.name) for sink in sinks
        ]

    def run_trial(
        self, study: optuna.Study, trial: optuna.Trial, data: DataBundle, tracker: StudyTracker | None
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

    def _compute(
        self, study: optuna.Study, attempt: Attempt, data: DataBundle, tracker: StudyTracker | None
    ) -> Outcome:
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
            checkpointing, rungs = self._checkpointing(attempt, data, resume)
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

    def _checkpointing(
        self, attempt: Attempt, data: DataBundle, resume: Mapping[str, Any] | None
    ) -> tuple[Checkpointing | None, list[Any]]:
        """A training run's checkpointing (None without a policy or a checkpoint path), resuming from `resume`, and
        its callbacks: under an ASHA pruner, the rung callback that pauses it at rungs."""
        if self.policy is None or attempt.checkpoint is None:
            return None, []
        trial = attempt.trial
        checkpointing = Checkpointing(
            self.policy, attempt.checkpoint, resume, {"trial": trial.number}, self.on_checkpoint_error
        )
        if not is_asha(trial.study.pruner):
            return checkpointing, []
        rung = RungCallback(
            trial, trial.study.pruner, attempt.lineage, self._rung_values(data), checkpointing.request_pause
        )
        return checkpointing, [rung]

    @staticmethod
    def _resumed(attempt: Attempt, resume: Mapping[str, Any]) -> None:
        epoch = int(resume["epoch"])
        attempt.trial.set_user_attr(RESUMED_ATTR, {"from_trial": resume.get("trial"), "epoch": epoch})
        if attempt.run:
            attempt.run.set_tags({RESUMED_FROM_TAG: str(resume.get("trial")), RESUMED_AT_TAG: str(epoch)})

    def _rung_values(self, data: DataBundle) -> Callable[[Any, Any], list[float] | None]:
        """How a rung reads the objectives' values at an epoch's end (None when one is missing)."""
        wanted = {name for name, _ in self._objectives()}

        def values(trainer: Any, module: Any) -> list[float] | None:
            metrics = trainer.callback_metrics
            _, measured = self.measure(
                module.network, module.device, data, wanted, lambda m: float(metrics[m]) if m in metrics else None
            )
            return None if any(value is None for value in measured) else measured  # type: ignore[return-value]

        return values

    def _objectives(self) -> tuple[tuple[str, str], ...]:
        return tuple(self.spec.objectives) or ((self.spec.metric, self.spec.direction),)

    def measure(
        self, network: Any, device: Any, data: DataBundle, wanted: set[str], metric: Callable[[str], float | None]
    ) -> tuple[dict[str, float], list[float | None]]:
        """The one measurement of a trial's objectives, at a rung and at its end: the network's properties (its
        parameter count; its latency when `wanted` names it and the task has inputs), then each objective's
        value: a property, else `metric`'s value of it."""
        properties = {"params": float(parameter_count(network))}
        if "latency_ms" in wanted and data.task != "generative":
            properties["latency_ms"] = latency_ms(network, data.inputs("val", 1).to(device))
        return properties, [properties[m] if m in properties else metric(m) for m, _ in self._objectives()]

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
        wanted = {m for m, _ in spec.objectives} | set(spec.constraints)
        model: Any = result.model
        outcome.measured, outcome.values = self.measure(model.network, model.device, data, wanted, result.final)
        for name, bound in spec.constraints.items():  # feasible when <= 0
            trial.set_constraint(f"max_{name}", outcome.measured[name] - bound)
        objectives = self._objectives()
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

    # -- recording it ------------------------------------------------------------------------------------

    def _record(
        self, study: optuna.Study, attempt: Attempt, outcome: Outcome, data: DataBundle, tracker: StudyTracker | None
    ) -> TrialReport:
        """One record of the outcome, handed to every sink (trial/sinks.py) in one loop."""
        record = self._record_of(study, attempt, outcome, data, tracker)
        sinks: list[TrialSink] = [OptunaSink(self.spec.multi_objective)]
        if self.policy is not None:
            sinks.append(CheckpointSink(self.policy))
        if tracker is not None:
            sinks.append(TrackingSink(tracker))
        sinks += [HookSink(self.registry), *self.plugin_sinks, ProgressSink(self.progress)]
        record_trial(record, sinks)
        if record.state == "INTERRUPTED":
            return TrialReport(record.number, "FAIL", None, INTERRUPTED)
        return TrialReport(record.number, record.state, record.value, record.reason)

    def _record_of(
        self, study: optuna.Study, attempt: Attempt, outcome: Outcome, data: DataBundle, tracker: StudyTracker | None
    ) -> TrialRecord:
        trial, state = attempt.trial, outcome.state
        record = TrialRecord(
            study_name=self.spec.name,
            number=trial.number,
            state=state,
            config=attempt.config,
            handles=TrialHandles(study, trial, attempt.run, attempt.checkpoint),
            values=tuple(outcome.values),
            reason=outcome.reason,
            epochs=outcome.epochs,
            checkpointed=outcome.checkpointed,
            test_metrics=outcome.test_metrics,
            measured=outcome.measured,
            traceback=outcome.traceback,
        )
        if state == "INTERRUPTED":
            record.values, record.reason = (), INTERRUPTED
        elif state == "PAUSED":  # its value for the sampler is the rung's (Optuna takes the last intermediate)
            record.values = ((trial.user_attrs.get(RUNGS_ATTR) or {}).get(str(outcome.epochs), [None])[0],)
            eta = cast(SuccessiveHalving, trial.study.pruner).eta  # only successive halving pauses a trial
            record.reason = f"paused at the rung of epoch {outcome.epochs} (not in its top 1/{eta} yet)"
        elif state == "COMPLETE" and outcome.result is not None and data.task != "generative":
            record.network = outcome.result.model.network  # type: ignore[union-attr]
            # before Optuna is told: the study's best so far does not yet include this trial
            record.improves_best = tracker is not None and improves(study, outcome.value)  # type: ignore[arg-type]
        return record
