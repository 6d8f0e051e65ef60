"""Sharing one study between worker processes: a study-wide lock, the budget count, and claiming trials.

Workers coordinate only through the Optuna storage (no queue or RPC of our own). Counting the budget
and asking for a trial happen under one lock, so N workers finish exactly the requested number of trials:
a file lock beside a journal or SQLite file, a PostgreSQL advisory lock on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import optuna
from optuna.trial import TrialState

from orchestrator.records import FINISHED_STATES, continued_numbers
from orchestrator.search.promotion import is_asha, promote
from orchestrator.study.storage import grpc_address, storage_file

DONE: Literal["done"] = "done"
WAIT: Literal["wait"] = "wait"


@contextlib.contextmanager
def study_lock(storage_url: str, study_name: str) -> Iterator[None]:
    """Hold a lock shared by every worker of this study on this storage (a no-op where none exists)."""
    path = storage_file(storage_url)
    if path is not None:
        lock_path = path.resolve().with_name(path.name + ".automl-lock")
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif storage_url.startswith("postgresql"):
        with _postgres_lock(storage_url, study_name):
            yield
    elif (address := grpc_address(storage_url)) is not None:
        from orchestrator.execution.lock_server import remote_lock

        with remote_lock(address[0], address[1] + 1, f"automl:{study_name}"):
            yield
    else:
        yield


_ENGINES: dict[str, object] = {}


@contextlib.contextmanager
def _postgres_lock(storage_url: str, study_name: str) -> Iterator[None]:
    import sqlalchemy

    engine = _ENGINES.get(storage_url)
    if engine is None:
        engine = _ENGINES[storage_url] = sqlalchemy.create_engine(storage_url, pool_size=1, pool_pre_ping=True)
    key = int.from_bytes(hashlib.sha1(f"automl:{study_name}".encode()).digest()[:8], "big", signed=True)
    with engine.connect() as connection:  # type: ignore[attr-defined]
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


@dataclass(frozen=True)
class BudgetCount:
    """Where a study stands against its budget of `target` finished trials."""

    target: int
    finished: int
    running: int
    waiting: int

    @property
    def done(self) -> bool:
        return self.finished >= self.target

    @property
    def open_slots(self) -> int:
        """Trials that may still be started beyond those running or waiting."""
        return self.target - self.finished - self.running - self.waiting


def count_budget(study: optuna.Study, target: int) -> BudgetCount:
    """Finished = COMPLETE + PRUNED + FAIL that nothing continues (a retry, a promotion from a rung): one per
    configuration; RUNNING and WAITING are on their way."""
    trials = study.get_trials(deepcopy=False)
    continued = continued_numbers(trials)
    finished = sum(t.state in FINISHED_STATES and t.number not in continued for t in trials)
    return BudgetCount(
        target,
        finished,
        sum(t.state == TrialState.RUNNING for t in trials),
        sum(t.state == TrialState.WAITING for t in trials),
    )


def claim_trial(study: optuna.Study, target: int) -> optuna.Trial | Literal["done", "wait"]:
    """Ask for the next trial if the budget allows (call under `study_lock`).

    A waiting trial (a retry or an enqueued configuration) is always taken first; with the asha pruner, a paused
    trial that has become promotable comes next (its continuation is enqueued and taken), also once the budget of
    configurations is spent, until none is promotable (then the best paused trial of each rung is, so that the
    best configuration completes). `WAIT` means the
    budget is taken up by trials other workers are running: one of them may still fail and be retried.
    """
    optuna.storages.fail_stale_trials(study)
    count = count_budget(study, target)
    # a promotion continues a configuration the budget already counts: it goes on after the last new one
    if (
        not count.waiting
        and is_asha(study.pruner)
        and promote(study, study.pruner, finishing=count.open_slots <= 0) is not None
    ):
        return study.ask()
    if count.waiting or count.open_slots > 0:
        return study.ask()
    return DONE if count.done else WAIT
