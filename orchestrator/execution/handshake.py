"""What a supervisor and its workers say to each other (a module without heavy imports: the supervisor starts
its workers before it imports PyTorch, Lightning or MLflow)."""

GO = "go"  # the supervisor's go-ahead on a supervised worker's standard input
READY = "automl-worker-ready"  # a supervised worker's line (not shown) that it waits for GO: set-up is done
RELEASED_ENV = "AUTOML_RELEASED"  # set once the go-ahead came: a recycled worker does not wait again
SPAWNED_AT_ENV = "AUTOML_SPAWNED_AT"  # wall-clock time the worker process was started (or recycled)
DEADLINE_ENV = "AUTOML_DEADLINE"  # the run's deadline (unix time), passed on to its workers
EXIT_REPEATED_FAILURE = 4  # a supervised worker stopped because trial after trial failed alike
EXIT_GRACE_EXPIRED = 75  # still alive a grace period after a stop signal: its trial is recovered like a dead one's


def repeated_failure_message(limit: int, reason: str | None) -> str:
    """What a run stopped by `max_consecutive_failures` says."""
    return f"{limit} trials in a row failed with the same reason: {reason or '(see above)'}"
