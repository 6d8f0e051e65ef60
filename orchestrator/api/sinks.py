"""What a trial leaves behind, as every sink receives it: `TrialRecord`, and the `TrialSink` protocol a plugin
implements to receive one record per trial (hook `trial_sinks`), beside the built-in sinks (Optuna, checkpoints,
MLflow, the lifecycle hooks, progress; orchestrator/trial/sinks.py). Every way a trial ends makes one record:
COMPLETE, PRUNED, FAIL, PAUSED (at an asha rung: its checkpoint kept for a promotion) and INTERRUPTED (stopped by a
signal: recorded in Optuna as FAIL, and retried from its checkpoint).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass
class TrialHandles:
    """The live objects behind a record, for the sinks that write to them: the Optuna study and trial, the trial's
    MLflow run (None untracked, or when it failed before one was opened) and its checkpoint file."""

    study: Any
    trial: Any
    run: Any = None
    checkpoint: Path | None = None


@dataclass
class TrialRecord:
    """One trial as it ended. `values` are the objectives' (a paused trial: its rung's value; empty when none was
    measured); `reason` says why it did not complete; `epochs` it trained (replayed ones included);
    `improves_best`: its weights are a candidate for the study's best model (decided before Optuna is told)."""

    study_name: str
    number: int
    state: str
    config: Mapping[str, Any]
    handles: TrialHandles
    values: tuple[float | None, ...] = ()
    reason: str | None = None
    epochs: int = 0
    checkpointed: bool = False  # a checkpoint of `epochs` was written (an interrupted trial resumes there)
    test_metrics: dict[str, float] = field(default_factory=dict)
    measured: dict[str, float] = field(default_factory=dict)  # properties of the network (params, latency_ms)
    traceback: str = ""
    network: Any = None  # the trained network of a complete trial
    improves_best: bool = False
    retry: int | None = None  # an interrupted trial's retry, once the Optuna sink has enqueued it

    @property
    def value(self) -> float | None:
        return self.values[0] if self.values else None

    @property
    def resumes(self) -> str:
        """Where an interrupted trial's retry starts."""
        return f"resumes at epoch {self.epochs}" if self.checkpointed else "restarts at epoch 0"


class TrialSink(Protocol):
    """Receives every trial's record, in this worker, once the trial has ended (in the order the sinks were
    given: the built-in ones first, so Optuna already knows the trial)."""

    def record(self, trial: TrialRecord) -> None: ...
