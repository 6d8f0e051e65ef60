"""Open (or resume) a study: its storage, the guard against a changed study file, the MLflow parent run and
the data. Shared by the supervisor of `automl run` and by every worker."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import optuna

from orchestrator.errors import DatasetError, StudyChangedError
from orchestrator.execution.coordination import study_lock
from orchestrator.records import (
    CONFIG_ATTR,
    DATASET_TAG,
    DIRECTION_TAG,
    ENQUEUED_ATTR,
    FINGERPRINT_ATTR,
    METRIC_TAG,
    PARENT_RUN_ATTR,
    STRATEGY_ATTR,
    TASK_TAG,
    leading_trial,
    pareto_front,
    trial_counts,
)
from orchestrator.search.promotion import is_asha
from orchestrator.search.samplers import PRUNERS, SAMPLERS
from orchestrator.study.storage import default_storage_url, open_storage, redact, storage_file
from orchestrator.study.studyfile import StudySpec
from orchestrator.tracking.review_view import view_tags
from orchestrator.tracking.tracker import StudyTracker, Tracker, default_tracking_uri
from orchestrator.trial.recovery import stale_trial_callback

if TYPE_CHECKING:  # PyTorch and Lightning load where they are used: a supervisor starts its workers first
    from orchestrator.api.components import DataBundle, Dataset
    from orchestrator.training.checkpoints import CheckpointPolicy


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


def resolve_storage(spec: StudySpec, options: RunOptions) -> str:
    return options.storage or spec.storage or default_storage_url()


def resolve_tracking(spec: StudySpec, options: RunOptions) -> str:
    return options.tracking_uri or spec.tracking_uri or default_tracking_uri()


def checkpoint_policy(spec: StudySpec, storage_url: str) -> CheckpointPolicy:
    """The study's checkpoint settings, with the default folder `checkpoints/` beside the journal or SQLite
    file (for a server storage, in the working directory)."""
    from orchestrator.training.checkpoints import CheckpointPolicy

    settings = spec.checkpoints
    beside = storage_file(storage_url)
    folder = settings.dir or ((beside.expanduser().resolve().parent if beside else Path.cwd()) / "checkpoints")
    return CheckpointPolicy(folder, settings.every_epochs, settings.min_seconds, settings.keep)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as `a.b.c: value`; an empty mapping stays a key of its own (a component without
    parameters is still part of the space)."""
    if isinstance(data, dict) and data:
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: data}


def fingerprint_diff(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Readable lines `key: stored -> now` for every difference between two fingerprints."""
    old, new = _flatten(json.loads(json.dumps(stored))), _flatten(json.loads(json.dumps(current)))
    return [
        f"  {key}: {_shown(old, key)} -> {_shown(new, key)}"
        for key in sorted(set(old) | set(new))
        if old.get(key, _ABSENT) != new.get(key, _ABSENT)
    ]


_ABSENT = object()


def _shown(flat: Mapping[str, Any], key: str) -> str:
    if key not in flat:
        return "(absent)"
    return "(present)" if flat[key] == {} else repr(flat[key])


def open_study(
    spec: StudySpec, storage_url: str, heartbeat: bool = False, tracking_uri: str | None = None, seed_offset: int = 0
) -> optuna.Study:
    """Create the Optuna study, or load it and refuse if its objective or space changed.

    Workers sharing a study pass distinct `seed_offset`s: samplers seeded alike would propose alike. A
    resumed study's sampler is also offset by its trial count, so that it does not replay its proposals.

    With `heartbeat`, a server-backed storage records heartbeats: a trial whose worker stopped beating is
    failed by the next worker that asks, its MLflow run (on `tracking_uri`) is closed, and it is retried.
    """
    on_stale = stale_trial_callback(tracking_uri, lambda study: study.user_attrs.get(PARENT_RUN_ATTR))
    storage = open_storage(storage_url, spec.execution.heartbeat_seconds if heartbeat else None, on_stale)
    try:
        existing = len(storage.get_all_trials(storage.get_study_id_from_name(spec.name), deepcopy=False))
        exists = True
    except KeyError:
        existing, exists = 0, False
    sampler_strategy, pruner_strategy = spec.strategies
    sampler = (sampler_strategy or SAMPLERS[spec.sampler[0]]).build(
        spec.sampler[1], seed=spec.seed + seed_offset + existing, space=spec.space
    )
    pruner = (pruner_strategy or PRUNERS[spec.pruner[0]]).build(spec.pruner[1])
    if is_asha(pruner):
        pruner.max_epochs = spec.budget.max_epochs  # its rungs end at the study's epoch budget
    fingerprint = json.loads(json.dumps(spec.fingerprint()))
    if not exists:
        try:
            study = optuna.create_study(
                study_name=spec.name,
                storage=storage,
                sampler=sampler,
                pruner=pruner,
                directions=cast(Any, spec.directions),
            )
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
            "resuming would mix two studies. Differences (stored -> study file):\n"
            + "\n".join(diff)
            + "\nGive the study a new name, or restore the original settings."
        )
    return _record_strategy(study, spec)


def _record_strategy(study: optuna.Study, spec: StudySpec) -> optuna.Study:
    """Keep the sampler and pruner in use, by name and class, in the study's user attributes (Optuna does not
    store them)."""
    strategy = {
        "sampler": spec.sampler[0],
        "pruner": spec.pruner[0],
        "classes": [type(study.sampler).__name__, type(study.pruner).__name__],
    }
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


def open_tracked_study(
    spec: StudySpec,
    storage_url: str,
    tracking_uri: str | None,
    heartbeat: bool = False,
    seed_offset: int = 0,
    open_run: bool = True,
) -> tuple[optuna.Study, str | None]:
    """Open the study and (with tracking) its MLflow experiment and parent run, under the study lock, so
    that concurrent workers create each exactly once. Returns the study and the parent run id. Without
    `open_run` (a supervised worker: its supervisor opens the run), MLflow is not touched and the id is None."""
    with study_lock(storage_url, spec.name):
        study = open_study(spec, storage_url, heartbeat, tracking_uri, seed_offset)
        enqueue_known(study, spec)
        if not tracking_uri or not open_run:
            return study, None
        tracker = Tracker(tracking_uri)
        parent = tracker.open_study(
            spec.name,
            study.user_attrs.get(PARENT_RUN_ATTR),
            {
                DATASET_TAG: spec.dataset.spec.name,
                TASK_TAG: spec.task,
                METRIC_TAG: spec.metric,
                DIRECTION_TAG: spec.direction,
            },
            spec.resolved_yaml(),
            view_tags(spec),
        )
        tracker.close()
        if study.user_attrs.get(PARENT_RUN_ATTR) != parent:
            study.set_user_attr(PARENT_RUN_ATTR, parent)
        return study, parent


def load_data(spec: StudySpec) -> DataBundle:
    """Build the study's data set and move it to the training device."""
    from orchestrator.training.devices import training_device

    dataset = cast("Dataset", spec.dataset.spec)
    try:
        data = dataset.build(dict(spec.dataset_params), spec.seed)
    except (ValueError, OSError, KeyError) as exc:
        raise DatasetError(f"{spec.path}: dataset {dataset.name!r}: {type(exc).__name__}: {exc}") from exc
    if data.streaming and data.task == "generative":
        raise DatasetError(
            f"{spec.path}: dataset {dataset.name!r} is streamed; the generative task needs its data "
            "as tensors (DataBundle with x_train ...)"
        )
    return data.to(training_device())


def update_summary(study: optuna.Study, tracker: StudyTracker) -> None:
    """Trial counts and the best trial so far on the parent run."""
    counts = trial_counts(study)
    metrics: dict[str, float] = {f"trials_{k.lower()}": counts[k] for k in ("COMPLETE", "PRUNED", "FAIL")}
    tags: dict[str, str] = {}
    best = leading_trial(study)
    if best:
        metrics["best_value"] = best.values[0]
        tags["best_trial"] = str(best.number)
        for key, value in best.user_attrs.get(CONFIG_ATTR, {}).items():
            tags[f"best.{key}"] = str(value)
    if len(study.directions) > 1:
        metrics["pareto_front_size"] = len(pareto_front(study))
    tracker.update_study(metrics, tags)
