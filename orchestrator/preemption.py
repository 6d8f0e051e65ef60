"""A request to stop this worker (Ctrl-C, SIGTERM from SLURM or Kubernetes): the running trial finishes its
epoch when that fits in the grace period, writes a checkpoint and is marked to resume; otherwise it stops at
the end of the current step and resumes from its last checkpoint.

The signal handler only records the request: no exception flies through Lightning, Optuna or MLflow calls,
so the trial's outcome is recorded the same way whenever the signal arrives.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from orchestrator.flow import FlowSignal

DEFAULT_GRACE_SECONDS = 10.0
BOOKKEEPING_SECONDS = 3.0  # kept back from the grace period for telling Optuna and MLflow


class TrialInterrupted(FlowSignal):
    """Training stopped because the worker was asked to stop; `epochs` were completed, and a checkpoint
    of them was written when `checkpointed`."""

    def __init__(self, epochs: int, checkpointed: bool) -> None:
        super().__init__(f"stopped after {epochs} epoch(s)")
        self.epochs = epochs
        self.checkpointed = checkpointed


class StopRequest:
    """Whether (and since when) this process was asked to stop, and the grace period it has."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.at: float | None = None
        self.grace = DEFAULT_GRACE_SECONDS

    @property
    def requested(self) -> bool:
        return self.at is not None

    def request(self, signum: int) -> None:
        if self.at is None:
            self.signum, self.at = signum, time.monotonic()

    def training_deadline(self) -> float:
        """The monotonic time by which training must have stopped (the rest of the grace is bookkeeping)."""
        assert self.at is not None
        return self.at + max(self.grace - BOOKKEEPING_SECONDS, self.grace / 2)

    def reset(self) -> None:
        self.signum, self.at = None, None


STOP = StopRequest()


def install_stop_handlers(grace: float, hard_exit_code: int | None = None) -> None:
    """SIGINT and SIGTERM record a stop request. With `hard_exit_code`, a process still alive `grace` seconds
    after the first signal exits at once with that code (its trial is then recovered like a dead worker's,
    from its last checkpoint)."""
    STOP.grace = grace

    def on_signal(signum: int, frame: Any) -> None:
        first = not STOP.requested
        STOP.request(signum)
        if first and hard_exit_code is not None:
            timer = threading.Timer(grace, os._exit, args=(hard_exit_code,))
            timer.daemon = True
            timer.start()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
