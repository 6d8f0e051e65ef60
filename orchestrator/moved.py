"""Old import paths of the modules that moved into packages by job (issue 25), kept working.

Best models logged before the move are pickles that name `orchestrator.serving` and `orchestrator.model`, and a
plugin written against the flat layout may import `orchestrator.components` or `orchestrator.params`: each old
name resolves to the module's new home, the same module object (`import orchestrator.serving` is
`orchestrator.tracking.serving`). The old modules `tracking`, `training`, `trial` and `cli` are packages now, under
the same names. New code imports the new paths.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType

MOVED = {
    "orchestrator.batches": "orchestrator.training.batches",
    "orchestrator.best_model": "orchestrator.tracking.best_model",
    "orchestrator.bohb": "orchestrator.search.bohb",
    "orchestrator.checkpoints": "orchestrator.training.checkpoints",
    "orchestrator.components": "orchestrator.api.components",
    "orchestrator.coordination": "orchestrator.execution.coordination",
    "orchestrator.devices": "orchestrator.training.devices",
    "orchestrator.epoch_loss": "orchestrator.training.epoch_loss",
    "orchestrator.gan": "orchestrator.training.gan",
    "orchestrator.handshake": "orchestrator.execution.handshake",
    "orchestrator.hookspecs": "orchestrator.api.hookspecs",
    "orchestrator.launchers": "orchestrator.execution.launchers",
    "orchestrator.launchers.cluster_run": "orchestrator.execution.launchers.cluster_run",
    "orchestrator.launchers.ray": "orchestrator.execution.launchers.ray",
    "orchestrator.launchers.settings": "orchestrator.study.launch_settings",
    "orchestrator.launchers.sharing": "orchestrator.execution.launchers.sharing",
    "orchestrator.launchers.slurm": "orchestrator.execution.launchers.slurm",
    "orchestrator.lock_server": "orchestrator.execution.lock_server",
    "orchestrator.model": "orchestrator.training.assembly",
    "orchestrator.model_metrics": "orchestrator.training.network_metrics",
    "orchestrator.params": "orchestrator.api.params",
    "orchestrator.plugins": "orchestrator.api.registry",
    "orchestrator.progress": "orchestrator.trial.progress",
    "orchestrator.promotion": "orchestrator.search.promotion",
    "orchestrator.pruning": "orchestrator.search.stopping",
    "orchestrator.recovery": "orchestrator.trial.recovery",
    "orchestrator.rerun": "orchestrator.execution.rerun",
    "orchestrator.review_view": "orchestrator.tracking.review_view",
    "orchestrator.rung_callback": "orchestrator.search.rungs",
    "orchestrator.runtime": "orchestrator.training.runtime",
    "orchestrator.samplers": "orchestrator.search.samplers",
    "orchestrator.serve": "orchestrator.cli.serve",
    "orchestrator.serving": "orchestrator.tracking.serving",
    "orchestrator.session": "orchestrator.execution.study_session",
    "orchestrator.space": "orchestrator.search.space",
    "orchestrator.storage": "orchestrator.study.storage",
    "orchestrator.streaming": "orchestrator.training.streaming",
    "orchestrator.study_report": "orchestrator.cli.show",
    "orchestrator.studyfile": "orchestrator.study.studyfile",
    "orchestrator.summary": "orchestrator.tracking.summary",
    "orchestrator.supervisor": "orchestrator.execution.supervisor",
    "orchestrator.tasks": "orchestrator.training.tasks",
    "orchestrator.thread_policy": "orchestrator.training.threads",
    "orchestrator.tracking_relay": "orchestrator.tracking.relay",
    "orchestrator.worker": "orchestrator.execution.worker",
}


class _Alias(importlib.abc.Loader):
    """Loads an old name as the module at its new home: the import system keeps whatever `exec_module` leaves in
    sys.modules under the name."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        sys.modules[module.__name__] = importlib.import_module(self.target)


class MovedModules(importlib.abc.MetaPathFinder):
    """Finds each old module name in MOVED."""

    def find_spec(self, fullname: str, path: object = None, target: ModuleType | None = None) -> ModuleSpec | None:
        new = MOVED.get(fullname)
        return importlib.util.spec_from_loader(fullname, _Alias(new)) if new else None


def install() -> None:
    """Put the finder first on sys.meta_path (once)."""
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModules())
