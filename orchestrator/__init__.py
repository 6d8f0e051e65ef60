"""Plugin-based AutoML experiment orchestrator: the public API for plugins and callers."""

from orchestrator.components import (
    Activation,
    AdversarialLoss,
    Architecture,
    BuildContext,
    DataBundle,
    Dataset,
    Loss,
    Optimizer,
    Regularizer,
    RegularizerEffect,
    Schedule,
)
from orchestrator.hookspecs import hookimpl
from orchestrator.params import Choice, Fixed, Float, Int, Text

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "AdversarialLoss",
    "Architecture",
    "BuildContext",
    "Choice",
    "DataBundle",
    "Dataset",
    "Fixed",
    "Float",
    "Int",
    "Loss",
    "Optimizer",
    "Regularizer",
    "RegularizerEffect",
    "Schedule",
    "Text",
    "hookimpl",
]
