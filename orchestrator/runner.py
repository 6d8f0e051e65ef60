"""Run a study: open (or resume) the Optuna study and its MLflow parent run, then ask/train/tell."""

from __future__ import annotations

import json
import math
import signal
import time
import traceback
from dataclasses import dataclass
from typing import Any, Mapping, TextIO

import optuna
import torch
from optuna.trial import TrialState

from orchestrator.components import DataBundle
from orchestrator.plugins import Registry
from orchestrator.progress import Progress
from orchestrator.samplers import PRUNERS, SAMPLERS
from orchestrator.space import CHOSEN_KINDS
from orchestrator.storage import default_storage_url, open_storage, redact
from orchestrator.studyfile import StudySpec
from orchestrator.tracking import PARENT_RUN_ATTR, Tracker, TrialRun, default_tracking_uri
from orchestrator.training import quiet_libraries, train, training_device

FINGERPRINT_ATTR = "fingerprint"
CONFIG_ATTR = "config"
REASON_ATTR = "reason"


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


def open_study(spec: StudySpec, storage_url: str) -> optuna.Study:
    """Create the Optuna study, or load it and refuse if its objective or space changed."""
    storage = open_storage(storage_url)
    sampler = SAMPLERS[spec.sampler[0]].build(spec.sampler[1], seed=spec.seed)
    pruner = PRUNERS[spec.pruner[0]].build(spec.pruner[1])
    fingerprint = json.loads(json.dumps(spec.fingerprint()))
    try:
        storage.get_study_id_from_name(spec.name)
        exists = True
    except KeyError:
        exists = False
    if not exists:
        study = optuna.create_study(study_name=spec.name, storage=storage, sampler=sampler, pruner=pruner,
                                    direction=spec.direction)
        study.set_user_attr(FINGERPRINT_ATTR, fingerprint)
        return study
    study = optuna.load_study(study_name=spec.name, storage=storage, sampler=sampler, pruner=pruner)
    stored = study.user_attrs.get(FINGERPRINT_ATTR, {})
    diff = fingerprint_diff(stored, fingerprint)
    if diff:
        raise StudyChangedError(
            f"study {spec.name!r} in {redact(storage_url)} was created with a different objective or search space; "
            "resuming would mix two studies. Differences (stored -> study file):\n" + "\n".join(diff)
            + "\nGive the study a new name, or restore the original settings.")
    return study


def best_of(study: optuna.Study) -> tuple[int, float] | None:
    """(number, value) of the best complete trial so far, or None."""
    try:
        best = study.best_trial
    except ValueError:
        return None
    return best.number, float(best.value)


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


class StudyRunner:
    """Runs the trials of one study in this process and records them in Optuna and MLflow."""

    def __init__(self, spec: StudySpec, registry: Registry, options: RunOptions, out: TextIO | None = None) -> None:
        self.spec = spec
        self.registry = registry
        self.options = options
        self.storage_url = resolve_storage(spec, options)
        self.tracking_uri = resolve_tracking(spec, options) if options.tracking else None
        self.progress = Progress(spec.metric, spec.budget.max_epochs, out)
        self.reports: list[TrialReport] = []

    def load_data(self) -> DataBundle:
        """Build the data set (before any storage or run exists) and move it to the training device."""
        dataset = self.spec.dataset.spec
        try:
            data = dataset.build(dict(self.spec.dataset_params), self.spec.seed)  # type: ignore[union-attr]
        except (ValueError, OSError, KeyError) as exc:
            raise DatasetError(f"{self.spec.path}: dataset {dataset.name!r}: {type(exc).__name__}: {exc}") from exc
        return data.to(training_device())

    def run(self) -> list[TrialReport]:
        """Run this invocation's trials; a failing trial never stops the study. Ctrl-C re-raises."""
        quiet_libraries()
        if self.options.threads:
            torch.set_num_threads(self.options.threads)
        data = self.load_data()
        study = open_study(self.spec, self.storage_url)
        tracker = Tracker(self.tracking_uri) if self.tracking_uri else None
        if tracker:
            parent = tracker.open_study(self.spec.name, study.user_attrs.get(PARENT_RUN_ATTR),
                                        {"automl.dataset": self.spec.dataset.spec.name, "automl.task": self.spec.task,
                                         "automl.metric": self.spec.metric, "automl.direction": self.spec.direction},
                                        self.spec.resolved_yaml())
            study.set_user_attr(PARENT_RUN_ATTR, parent)
        trials = self.options.trials or self.spec.budget.trials
        timeout = self.options.timeout or self.spec.budget.timeout
        self.progress.header(self.spec.name, trials, redact(self.storage_url),
                             redact(self.tracking_uri) if self.tracking_uri else None)
        self.registry.hook.before_study(study=study, spec=self.spec)
        deadline = time.monotonic() + timeout if timeout else math.inf
        status = "FAILED"
        try:
            for _ in range(trials):
                if time.monotonic() >= deadline:
                    self.progress.message(f"timeout of {timeout} s reached: no new trials started")
                    break
                self.reports.append(self._run_trial(study, data, tracker))
                if tracker:
                    self._update_summary(study, tracker)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            if tracker:
                self._update_summary(study, tracker)
                tracker.close_study(status)
            self.registry.hook.after_study(study=study, spec=self.spec)
        return self.reports

    def _run_trial(self, study: optuna.Study, data: DataBundle, tracker: Tracker | None) -> TrialReport:
        trial = study.ask()
        self.progress.trial_started(trial.number)
        config: dict[str, Any] = {}
        run: TrialRun | None = None
        state, value, reason, metrics, epochs = "FAIL", None, None, {}, 0
        try:  # from here on, whatever fails ends this trial (and only this trial)
            config = self.spec.space.sample(trial)
            trial.set_user_attr(CONFIG_ATTR, config)
            if tracker:
                run = tracker.start_trial(trial.number, config, _plugin_tags(config, self.registry))
            self.registry.hook.before_trial(trial=trial, config=config)
            listeners = [self.progress.epoch] + ([run.log_epoch] if run else [])
            callbacks = [cb for extra in self.registry.hook.trial_callbacks(config=config) for cb in extra]
            result = train(config, self.registry, data, max_epochs=self.spec.budget.max_epochs,
                           seed=self.spec.seed + trial.number, trial=trial, monitor=self.spec.metric,
                           direction=self.spec.direction, listeners=listeners, callbacks=callbacks)
            epochs, metrics = result.epochs, result.test_metrics
            value = result.final(self.spec.metric)
            if result.diverged_at is not None:
                reason = f"training loss is not finite at epoch {result.diverged_at}"
            elif result.pruned_at is not None:
                state, reason = "PRUNED", f"pruned by the {self.spec.pruner[0]} pruner after epoch {result.pruned_at}"
            elif value is None or not math.isfinite(value):
                reason = f"objective {self.spec.metric} is {value}"
            else:
                state = "COMPLETE"
        except (KeyboardInterrupt, SystemExit) as exc:
            # Lightning turns Ctrl-C into SystemExit and ignores SIGINT afterwards: undo both.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            trial.set_user_attr(REASON_ATTR, "interrupted")
            study.tell(trial, state=TrialState.FAIL)
            run = run or (tracker.start_trial(trial.number, config, {}) if tracker else None)
            if run:
                run.end("INTERRUPTED", {}, {"reason": "interrupted"})
            self.progress.trial_done(trial.number, config, epochs, None, "FAIL", best_of(study), "interrupted")
            raise KeyboardInterrupt from exc
        except Exception as exc:
            reason = f"{type(exc).__name__}: {redact(str(exc))}"
            run = run or (tracker.start_trial(trial.number, config, {}) if tracker else None)
            if run:
                run.log_text(traceback.format_exc(), "traceback.txt")
        if reason:
            trial.set_user_attr(REASON_ATTR, reason)
        if state == "COMPLETE":
            study.tell(trial, value)
        else:
            study.tell(trial, state=TrialState.PRUNED if state == "PRUNED" else TrialState.FAIL)
        if run:
            final = {**metrics, **({"objective": value} if state == "COMPLETE" and value is not None else {})}
            run.end(state, final, {"reason": reason} if reason else {})
        self.registry.hook.after_trial(trial=trial, config=config, state=state, value=value, metrics=metrics)
        self.progress.trial_done(trial.number, config, epochs, value, state, best_of(study), reason)
        return TrialReport(trial.number, state, value, reason)

    def _update_summary(self, study: optuna.Study, tracker: Tracker) -> None:
        trials = study.get_trials(deepcopy=False)
        counts = {state.name: sum(t.state == state for t in trials)
                  for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        metrics: dict[str, float] = {f"trials_{k.lower()}": v for k, v in counts.items()}
        tags: dict[str, str] = {}
        best = best_of(study)
        if best:
            metrics["best_value"] = best[1]
            tags["best_trial"] = str(best[0])
            for key, value in study.best_trial.user_attrs.get(CONFIG_ATTR, {}).items():
                tags[f"best.{key}"] = str(value)
        tracker.update_study(metrics, tags)
