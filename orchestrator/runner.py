"""One study's trials: open (or resume) the Optuna study and its MLflow parent run, run a claimed trial."""

from __future__ import annotations

import json
import math
import signal
import traceback
from dataclasses import dataclass
from typing import Any, Mapping

import optuna
import torch
from optuna.trial import TrialState

from orchestrator.best_model import WEIGHTS_FILE, improves, leading_trial, weights_file
from orchestrator.model_metrics import latency_ms, parameter_count
from orchestrator.components import DataBundle
from orchestrator.coordination import CONFIG_ATTR, FINGERPRINT_ATTR, REASON_ATTR, study_lock
from orchestrator.plugins import Registry
from orchestrator.progress import Progress
from orchestrator.recovery import enqueue_retry, stale_trial_callback
from orchestrator.samplers import PRUNERS, SAMPLERS
from orchestrator.space import CHOSEN_KINDS
from orchestrator.storage import default_storage_url, open_storage, redact
from orchestrator.studyfile import StudySpec
from orchestrator.tracking import PARENT_RUN_ATTR, Tracker, TrialRun, default_tracking_uri
from orchestrator.training import train, training_device

STRATEGY_ATTR = "strategy"  # the sampler and pruner the latest run used
ENQUEUED_ATTR = "enqueued"  # on the study: configurations from the study file already enqueued; on a trial: True
OUT_OF_MEMORY_ATTR = "out_of_memory"
TEST_METRICS_ATTR = "test_metrics"  # the held-out test split's metrics, for review (never the objective)
__all__ = ["CONFIG_ATTR", "REASON_ATTR", "DatasetError", "StudyChangedError", "RunOptions", "TrialRunner",
           "open_study", "open_tracked_study", "load_data", "resolve_storage", "resolve_tracking"]


class DatasetError(Exception):
    """The study's data set could not be built (its message says why)."""


class StudyChangedError(Exception):
    """The study file changed what a stored study optimises; resuming would mix two studies."""


@dataclass(frozen=True)
class RunOptions:
    """Command-line settings that override the study file."""

    trials: int | None = None
    timeout: float | None = None
    storage: str | None = None
    tracking_uri: str | None = None
    tracking: bool = True
    threads: int | None = None
    workers: int | None = None
    devices: str | tuple[int, ...] | None = None
    trials_per_device: int | None = None
    register: str | None = None  # register the best model under this name (alias `best`)


@dataclass(frozen=True)
class TrialReport:
    number: int
    state: str
    value: float | None
    reason: str | None = None


def resolve_storage(spec: StudySpec, options: RunOptions) -> str:
    return options.storage or spec.storage or default_storage_url()


def resolve_tracking(spec: StudySpec, options: RunOptions) -> str:
    return options.tracking_uri or spec.tracking_uri or default_tracking_uri()


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: data}


def fingerprint_diff(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Readable lines `key: stored -> now` for every difference between two fingerprints."""
    old, new = _flatten(json.loads(json.dumps(stored))), _flatten(json.loads(json.dumps(current)))
    return [f"  {key}: {old.get(key, '(absent)')!r} -> {new.get(key, '(absent)')!r}"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def open_study(spec: StudySpec, storage_url: str, heartbeat: bool = False,
               tracking_uri: str | None = None, seed_offset: int = 0) -> optuna.Study:
    """Create the Optuna study, or load it and refuse if its objective or space changed.

    Workers sharing a study pass distinct `seed_offset`s: samplers seeded alike would propose alike. A
    resumed study's sampler is also offset by its trial count, so that it does not replay its proposals.

    With `heartbeat`, a server-backed storage records heartbeats: a trial whose worker stopped beating is
    failed by the next worker that asks, its MLflow run (on `tracking_uri`) is closed, and it is retried once.
    """
    on_stale = stale_trial_callback(tracking_uri, lambda study: study.user_attrs.get(PARENT_RUN_ATTR))
    storage = open_storage(storage_url, spec.execution.heartbeat_seconds if heartbeat else None, on_stale)
    try:
        existing = len(storage.get_all_trials(storage.get_study_id_from_name(spec.name), deepcopy=False))
        exists = True
    except KeyError:
        existing, exists = 0, False
    sampler = SAMPLERS[spec.sampler[0]].build(spec.sampler[1], seed=spec.seed + seed_offset + existing,
                                              space=spec.space)
    pruner = PRUNERS[spec.pruner[0]].build(spec.pruner[1])
    fingerprint = json.loads(json.dumps(spec.fingerprint()))
    if not exists:
        try:
            study = optuna.create_study(study_name=spec.name, storage=storage, sampler=sampler, pruner=pruner,
                                        directions=spec.directions)
            study.set_user_attr(FINGERPRINT_ATTR, fingerprint)
            return _record_strategy(study, spec)
        except optuna.exceptions.DuplicatedStudyError:  # another worker created it a moment ago
            pass
    study = optuna.load_study(study_name=spec.name, storage=storage, sampler=sampler, pruner=pruner)
    stored = study.user_attrs.get(FINGERPRINT_ATTR, {})
    diff = fingerprint_diff(stored, fingerprint)
    if diff:
        raise StudyChangedError(
            f"study {spec.name!r} in {redact(storage_url)} was created with a different objective or search space; "
            "resuming would mix two studies. Differences (stored -> study file):\n" + "\n".join(diff)
            + "\nGive the study a new name, or restore the original settings.")
    return _record_strategy(study, spec)


def _record_strategy(study: optuna.Study, spec: StudySpec) -> optuna.Study:
    """Keep the sampler and pruner in use, by name and class, in the study's user attributes (Optuna does not
    store them)."""
    strategy = {"sampler": spec.sampler[0], "pruner": spec.pruner[0],
                "classes": [type(study.sampler).__name__, type(study.pruner).__name__]}
    if study.user_attrs.get(STRATEGY_ATTR) != strategy:
        study.set_user_attr(STRATEGY_ATTR, strategy)
    return study


def enqueue_known(study: optuna.Study, spec: StudySpec) -> int:
    """Enqueue the study file's `enqueue` configurations not enqueued before (call under the study lock);
    returns how many were added. They run first, and count towards the budget."""
    done = study.user_attrs.get(ENQUEUED_ATTR, [])
    fresh = [dict(entry) for entry in spec.enqueue if dict(entry) not in done]
    for entry in fresh:
        study.enqueue_trial(entry, user_attrs={ENQUEUED_ATTR: True})
    if fresh:
        study.set_user_attr(ENQUEUED_ATTR, done + fresh)
    return len(fresh)


def open_tracked_study(spec: StudySpec, storage_url: str, tracking_uri: str | None, heartbeat: bool = False,
                       seed_offset: int = 0) -> tuple[optuna.Study, str | None]:
    """Open the study and (with tracking) its MLflow experiment and parent run, under the study lock, so
    that concurrent workers create each exactly once. Returns the study and the parent run id."""
    with study_lock(storage_url, spec.name):
        study = open_study(spec, storage_url, heartbeat, tracking_uri, seed_offset)
        enqueue_known(study, spec)
        if not tracking_uri:
            return study, None
        tracker = Tracker(tracking_uri)
        parent = tracker.open_study(spec.name, study.user_attrs.get(PARENT_RUN_ATTR),
                                    {"automl.dataset": spec.dataset.spec.name, "automl.task": spec.task,
                                     "automl.metric": spec.metric, "automl.direction": spec.direction},
                                    spec.resolved_yaml())
        tracker.close()
        if study.user_attrs.get(PARENT_RUN_ATTR) != parent:
            study.set_user_attr(PARENT_RUN_ATTR, parent)
        return study, parent


def load_data(spec: StudySpec) -> DataBundle:
    """Build the study's data set and move it to the training device."""
    dataset = spec.dataset.spec
    try:
        data = dataset.build(dict(spec.dataset_params), spec.seed)  # type: ignore[union-attr]
    except (ValueError, OSError, KeyError) as exc:
        raise DatasetError(f"{spec.path}: dataset {dataset.name!r}: {type(exc).__name__}: {exc}") from exc
    return data.to(training_device())


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
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def _earlier_out_of_memory(study: optuna.Study, trial: optuna.Trial) -> int | None:
    """The number of an earlier trial with exactly these parameters that ran out of memory, if any."""
    params = trial.params
    for earlier in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)):
        if earlier.user_attrs.get(OUT_OF_MEMORY_ATTR) and earlier.params == params:
            return earlier.number
    return None


class TrialRunner:
    """Runs claimed trials of one study in this process and records them in Optuna and MLflow."""

    def __init__(self, spec: StudySpec, registry: Registry, progress: Progress) -> None:
        self.spec = spec
        self.registry = registry
        self.progress = progress

    def run_trial(self, study: optuna.Study, trial: optuna.Trial, data: DataBundle,
                  tracker: Tracker | None) -> TrialReport:
        """Sample, train and tell one trial; whatever fails ends this trial only. Ctrl-C re-raises
        KeyboardInterrupt after marking the trial FAIL (retried on the next run) and its run KILLED."""
        self.progress.trial_started(trial.number)
        config: dict[str, Any] = {}
        run: TrialRun | None = None
        state, value, reason, metrics, epochs = "FAIL", None, None, {}, 0
        values: list[float | None] = []
        measured: dict[str, float] = {}
        result = None
        try:  # from here on, whatever fails ends this trial (and only this trial)
            config = self.spec.space.sample(trial)
            trial.set_user_attr(CONFIG_ATTR, config)
            if tracker:
                run = tracker.start_trial(trial.number, config, _plugin_tags(config, self.registry))
            earlier = _earlier_out_of_memory(study, trial)
            if earlier is not None:
                raise MemoryError(f"the same configuration ran out of memory in trial {earlier}; not trained again")
            self.registry.hook.before_trial(trial=trial, config=config)
            listeners = [self.progress.epoch] + ([run.log_epoch] if run else [])
            callbacks = [cb for extra in self.registry.hook.trial_callbacks(config=config) for cb in extra]
            # Optuna prunes (and takes intermediate values) only for a single objective
            result = train(config, self.registry, data, max_epochs=self.spec.budget.max_epochs,
                           seed=self.spec.seed + trial.number, trial=None if self.spec.multi_objective else trial,
                           monitor=self.spec.metric, direction=self.spec.direction, listeners=listeners,
                           callbacks=callbacks)
            epochs, metrics = result.epochs, result.test_metrics
            trial.set_user_attr(TEST_METRICS_ATTR, metrics)
            measured = self._model_metrics(result, data)
            values = [measured[m] if m in measured else result.final(m) for m, _ in self.spec.objectives
                      or [(self.spec.metric, self.spec.direction)]]
            value = values[0]
            for name, bound in self.spec.constraints.items():  # feasible when <= 0
                trial.set_constraint(f"max_{name}", measured[name] - bound)
            if result.diverged_at is not None:
                reason = f"training loss is not finite at epoch {result.diverged_at}"
            elif result.pruned_at is not None:
                state, reason = "PRUNED", f"pruned by the {self.spec.pruner[0]} pruner after epoch {result.pruned_at}"
            elif any(v is None or not math.isfinite(v) for v in values):
                bad = [(m, v) for (m, _), v in zip(self.spec.objectives or [(self.spec.metric, "")], values)
                       if v is None or not math.isfinite(v)]
                reason = f"objective {bad[0][0]} is {bad[0][1]}"
            else:
                state = "COMPLETE"
        except (KeyboardInterrupt, SystemExit) as exc:
            # Lightning turns Ctrl-C into SystemExit and ignores SIGINT afterwards: undo both.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self._interrupted(study, trial, config, run, tracker, epochs)
            raise KeyboardInterrupt from exc
        except Exception as exc:
            reason = f"{type(exc).__name__}: {redact(str(exc))}"
            run = run or (tracker.start_trial(trial.number, config, {}) if tracker else None)
            if _is_out_of_memory(exc):
                # reported to the sampler as PRUNED (a bad region), and never trained again
                state, reason = "PRUNED", f"out of memory: {reason}"
                trial.set_user_attr(OUT_OF_MEMORY_ATTR, True)
                _release_memory()
            elif run:
                run.log_text(traceback.format_exc(), "traceback.txt")
        if reason:
            trial.set_user_attr(REASON_ATTR, reason)
        if run and state == "COMPLETE" and result is not None and data.task != "generative" \
                and improves(study, value):
            run.log_file(weights_file(result.model.network), WEIGHTS_FILE)  # a candidate for the best model
        if state == "COMPLETE":
            study.tell(trial, values if self.spec.multi_objective else value)
        else:
            study.tell(trial, state=TrialState.PRUNED if state == "PRUNED" else TrialState.FAIL)
        if run:
            final = {**metrics, **measured,
                     **({"objective": value} if state == "COMPLETE" and value is not None else {})}
            if state == "COMPLETE" and self.spec.multi_objective:
                final.update({f"objective_{i}": v for i, v in enumerate(values)})
            run.end(state, final, {"reason": reason} if reason else {})
        self.registry.hook.after_trial(trial=trial, config=config, state=state, value=value, metrics=metrics)
        self.progress.trial_done(trial.number, config, epochs, value, state, best_of(study), reason)
        return TrialReport(trial.number, state, value, reason)

    def _model_metrics(self, result: Any, data: DataBundle) -> dict[str, float]:
        """The network's parameter count, and its latency when an objective or a constraint needs it."""
        network = result.model.network
        measured = {"params": float(parameter_count(network))}
        wanted = {m for m, _ in self.spec.objectives} | set(self.spec.constraints)
        if "latency_ms" in wanted and data.task != "generative":
            measured["latency_ms"] = latency_ms(network, data.x_val)
        return measured

    def _interrupted(self, study: optuna.Study, trial: optuna.Trial, config: dict[str, Any],
                     run: TrialRun | None, tracker: Tracker | None, epochs: int) -> None:
        """An interrupted trial is FAIL with reason `interrupted`, its run KILLED, and it is retried later."""
        trial.set_user_attr(REASON_ATTR, "interrupted")
        study.tell(trial, state=TrialState.FAIL)
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        enqueue_retry(study, frozen, "interrupted")
        run = run or (tracker.start_trial(trial.number, config, {}) if tracker else None)
        if run:
            run.end("INTERRUPTED", {}, {"reason": "interrupted"})
        self.progress.trial_done(trial.number, config, epochs, None, "FAIL", best_of(study), "interrupted")


def _release_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def update_summary(study: optuna.Study, tracker: Tracker) -> None:
    """Trial counts and the best trial so far on the parent run."""
    trials = study.get_trials(deepcopy=False)
    counts = {state.name: sum(t.state == state for t in trials)
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    metrics: dict[str, float] = {f"trials_{k.lower()}": v for k, v in counts.items()}
    tags: dict[str, str] = {}
    best = leading_trial(study)
    if best:
        metrics["best_value"] = best.values[0]
        tags["best_trial"] = str(best.number)
        for key, value in best.user_attrs.get(CONFIG_ATTR, {}).items():
            tags[f"best.{key}"] = str(value)
    if len(study.directions) > 1:
        metrics["pareto_front_size"] = len(study.best_trials)
    tracker.update_study(metrics, tags)
