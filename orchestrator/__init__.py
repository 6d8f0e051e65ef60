"""Plugin-based AutoML experiment orchestrator: the public API for plugins and callers.

The names are imported on first use (PEP 562), so that `automl --help` or `automl show` do not load torch."""

from __future__ import annotations

import importlib
from typing import Any

from orchestrator.moved import install as _install_moved_paths

__version__ = "0.1.0"
_install_moved_paths()  # old flat import paths (pickled best models, older plugins) resolve to the packages

_HOMES = {
    "orchestrator.api.components": (
        "Activation",
        "AdversarialLoss",
        "Architecture",
        "Augmentation",
        "BuildContext",
        "DataBundle",
        "Dataset",
        "Loss",
        "MixedTargets",
        "Optimizer",
        "PADDING_TOKEN",
        "Regularizer",
        "RegularizerEffect",
        "Schedule",
    ),
    "orchestrator.api.hookspecs": ("hookimpl",),
    "orchestrator.api.sinks": ("TrialRecord", "TrialSink"),
    "orchestrator.study.launch_settings": ("LauncherKind",),
    "orchestrator.api.params": ("Choice", "Fixed", "Float", "Int", "Text"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_HOME_OF)


def __getattr__(name: str) -> Any:
    if name not in _HOME_OF:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME_OF[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
