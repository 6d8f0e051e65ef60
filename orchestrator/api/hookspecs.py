"""Every hook a plugin can implement. Implement them with `@orchestrator.hookimpl`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "automl"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[Any], None]

# ---------------------------------------------------------------------------
# Component hooks: called once when plugins are loaded. Each receives a
# `register` callback that takes one spec object of the matching type; the host
# checks names and duplicates. They return nothing.
# ---------------------------------------------------------------------------


@hookspec
def register_architectures(register: Register) -> None:
    """Register networks: call `register(orchestrator.Architecture(...))` for each."""


@hookspec
def register_activations(register: Register) -> None:
    """Register non-linearities: call `register(orchestrator.Activation(...))` for each."""


@hookspec
def register_losses(register: Register) -> None:
    """Register training losses: call `register(orchestrator.Loss(...))` for each."""


@hookspec
def register_optimizers(register: Register) -> None:
    """Register optimizers: call `register(orchestrator.Optimizer(...))` for each."""


@hookspec
def register_schedules(register: Register) -> None:
    """Register learning-rate schedules: call `register(orchestrator.Schedule(...))` for each."""


@hookspec
def register_regularizers(register: Register) -> None:
    """Register regularizers: call `register(orchestrator.Regularizer(...))` for each."""


@hookspec
def register_augmentations(register: Register) -> None:
    """Register training-batch augmentations: call `register(orchestrator.Augmentation(...))` for each."""


@hookspec
def register_datasets(register: Register) -> None:
    """Register data sets: call `register(orchestrator.Dataset(...))` for each."""


@hookspec
def register_samplers(register: Callable[..., None]) -> None:
    """Register samplers for the study key `sampler:`: call `register(name, cls, defaults={...}, seeded=True,
    single_objective=False)` with an Optuna sampler class (`seeded`: it takes `seed=`, which the study passes),
    the options it gets unless the study file sets them, and whether it refuses several objectives."""


@hookspec
def register_pruners(register: Callable[..., None]) -> None:
    """Register pruners for the study key `pruner:`: call `register(name, cls, defaults={...})` with an Optuna
    pruner class and the options it gets unless the study file sets them (a stopping pruner: trials report
    their objective after each epoch and stop when it says so)."""


@hookspec
def register_launchers(register: Callable[[Any], None]) -> None:
    """Register where a study's workers can run: call `register(orchestrator.LauncherKind(...))` with its name,
    settings and their check, what it needs on the submitting machine, and the factory of its workers' handle
    (see `Launcher` in `orchestrator.execution.launchers.cluster_run`). The study key `launcher:` and
    `--launcher` then accept it."""


# ---------------------------------------------------------------------------
# Lifecycle hooks: study and trial level only. Per-batch events belong to
# Lightning's own Callback API (see `trial_callbacks`).
# ---------------------------------------------------------------------------


@hookspec
def before_study(study: Any, spec: Any) -> None:
    """Called once the Optuna study exists, before its first trial of this run."""


@hookspec
def before_trial(trial: Any, config: dict[str, Any]) -> None:
    """Called after a trial's configuration is sampled, before its model is built."""


@hookspec
def after_trial(trial: Any, config: dict[str, Any], state: str, value: float | None, metrics: dict[str, float]) -> None:
    """Called after a trial ended; `state` is COMPLETE, PRUNED, FAIL or PAUSED (at an asha rung: `value` is the
    rung's, `metrics` empty; a promotion continues it in a new trial)."""


@hookspec
def after_study(study: Any, spec: Any) -> None:
    """Called once after the last trial of this run, also when the run was interrupted."""


@hookspec
def trial_sinks(study_name: str) -> list[Any]:
    """Return objects that receive every trial's record (`orchestrator.TrialSink`: a `record(TrialRecord)`
    method), in each worker, after the built-in sinks (Optuna, checkpoints, MLflow, `after_trial`, progress):
    another tracker, a JSON-lines log. Asked once per worker; every way a trial ends makes one record."""
    return []


@hookspec
def trial_callbacks(config: dict[str, Any]) -> list[Any]:
    """Return extra `pytorch_lightning.Callback` objects for this trial's Trainer (or an empty list)."""
    return []
