"""A supervised worker's tracking goes through its supervisor: the worker writes each operation on a trial's
run as one line on its standard output (which the supervisor reads anyway), and the supervisor's Tracker writes
it to MLflow, in order. The worker then never imports MLflow nor spends its training thread's time on tracking
writes. A worker joining a study on its own (`automl worker`) writes to MLflow itself (orchestrator.tracking.tracker).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any, TextIO

from orchestrator.tracking.tracker import TrialRun, start_trial_run

PREFIX = "<automl-track> "  # a relayed operation's line (never shown)


class RelayTracker:
    """The tracker of a supervised worker: trial runs whose writes are lines to the supervisor."""

    def __init__(self, stream: TextIO, flush_seconds: float = 10.0) -> None:
        self.stream = stream
        self.flush_seconds = flush_seconds
        self.lock = threading.Lock()

    def start_trial(self, number: int, config: Mapping[str, Any], tags: Mapping[str, str]) -> TrialRun:
        return start_trial_run(self, number, config, tags, self.flush_seconds)

    def send(self, handle: str, op: str, **args: Any) -> None:
        line = PREFIX + json.dumps([handle, op, args]) + "\n"
        with self.lock:
            try:
                self.stream.write(line)
                self.stream.flush()
            except (OSError, ValueError):  # the supervisor is gone (this worker follows it): tracking never
                pass  # stops a trial

    def update_study(self, metrics: Mapping[str, float], tags: Mapping[str, str]) -> None:
        """Counts and the best trial so far, for the parent run."""
        self.send(
            "",
            "update_study",
            metrics={k: float(v) for k, v in metrics.items()},
            tags={k: str(v) for k, v in tags.items()},
        )

    def close(self) -> None:
        with self.lock:
            self.stream.flush()

    def close_study(self, status: str) -> None:
        self.close()  # the parent run is the supervisor's to close


def relayed_operation(line: str) -> tuple[str, str, dict[str, Any]] | None:
    """(handle, operation, arguments) of a relayed line, or None for any other line."""
    if not line.startswith(PREFIX):
        return None
    handle, op, args = json.loads(line[len(PREFIX) :])
    return handle, op, args
