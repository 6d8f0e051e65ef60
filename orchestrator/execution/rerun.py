"""`automl rerun`: retrain one trial's exact configuration from its logged parameters and compare."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from orchestrator.api.registry import Registry
from orchestrator.errors import UserError
from orchestrator.execution.study_session import load_data
from orchestrator.quiet import quiet_libraries
from orchestrator.records import CONFIG_ATTR, REASON_ATTR, RUNTIME_ATTR, lineage
from orchestrator.study.storage import open_storage
from orchestrator.study.studyfile import StudySpec
from orchestrator.training.fit import train
from orchestrator.training.runtime import current_runtime, differences, torch_threads


class RerunError(UserError):
    """The trial cannot be re-run (no such study or trial); the message says why."""


@dataclass
class Rerun:
    number: int
    state: str
    logged: float | None
    value: float | None
    epochs: int
    test_metrics: dict[str, float] = field(default_factory=dict)
    threads: int = 0  # the CPU threads it retrained with
    recorded_threads: int | None = None  # ... and those the trial trained with (None: not recorded)
    unmatched: list[str] = field(default_factory=list)  # what differs from the trial's runtime, besides threads


def rerun_trial(
    spec: StudySpec, registry: Registry, storage_url: str, number: int, threads: int | None = None
) -> Rerun:
    """Train trial `number` again with its configuration and seed (no pruning), with the CPU threads it recorded
    (or `threads`), and return both values and whatever of its runtime could not be re-created."""
    quiet_libraries()
    trial = _find_trial(spec, storage_url, number)
    config = _trial_config(spec, trial)
    import torch

    recorded = trial.user_attrs.get(RUNTIME_ATTR) or {}
    recorded_threads = recorded.get("threads")
    use = threads or recorded_threads or torch.get_num_threads()
    with torch_threads(int(use)):
        unmatched = differences(recorded, current_runtime())
        result = train(
            config,
            registry,
            load_data(spec),
            max_epochs=spec.budget.max_epochs,
            seed=spec.seed + lineage(trial),
            monitor=spec.metric,
            direction=spec.direction,
        )
    return Rerun(
        number,
        trial.state.name,
        trial.value,
        result.final(spec.metric),
        result.epochs,
        result.test_metrics,
        int(use),
        recorded_threads,
        unmatched,
    )


def _find_trial(spec: StudySpec, storage_url: str, number: int) -> FrozenTrial:
    """Trial `number` of the study in `storage_url`; RerunError when there is no such study or trial."""
    source = str(spec.path)
    try:
        study = optuna.load_study(study_name=spec.name, storage=open_storage(storage_url))
    except KeyError:
        raise RerunError(
            f"no study named {spec.name!r} in this storage: run `automl run` first", source=source
        ) from None
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise RerunError(
            f"study {spec.name!r} has no trial {number}; its trials are numbered 0..{len(trials) - 1}", source=source
        )
    return trials[number]


def _trial_config(spec: StudySpec, trial: FrozenTrial) -> dict[str, Any]:
    """The configuration the trial trained with: the one it logged, else its parameters sampled again from the
    study file's search space; RerunError when it has neither or they do not fit."""
    config = trial.user_attrs.get(CONFIG_ATTR)
    if config:
        return config
    source, number = str(spec.path), trial.number
    if not trial.params:
        reason = trial.user_attrs.get(REASON_ATTR)
        raise RerunError(
            f"trial {number} ({trial.state.name}) has no parameters to re-run: it ended before "
            "they were sampled"
            + (f" ({reason})" if reason else "")
            + "; pick a trial with parameters (see `automl show`)",
            source=source,
        )
    try:
        return spec.space.sample(optuna.trial.FixedTrial(trial.params))
    except ValueError as exc:
        raise RerunError(
            f"trial {number}'s parameters do not fit this study file's search space: {exc}", source=source
        ) from None
