"""What a study stores in Optuna and MLflow: every user-attribute key and tag name, and the queries that
several modules ask of them (trial counts, the leading trial, the Pareto front, a trial's MLflow runs,
a trial's lineage, a run of identical failures).

The bottom layer: it imports nothing of the project, so every other module may use it.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

# On the study
FINGERPRINT_ATTR = "fingerprint"  # what must not change when it is resumed (objective, space)
STRATEGY_ATTR = "strategy"  # the sampler and pruner the latest run used
ENQUEUED_ATTR = "enqueued"  # configurations from the study file already enqueued (on a trial: True)
PARENT_RUN_ATTR = "mlflow_parent_run_id"  # the MLflow parent run of the study

# On a trial
CONFIG_ATTR = "config"  # the flat configuration
REASON_ATTR = "reason"  # why it failed or was pruned
WORKER_ATTR = "worker"  # the process running it: id, host, pid, start
RETRY_OF_ATTR = "retry_of"  # on a retry: the number of the trial it repeats
RETRY_REASON_ATTR = "retry_reason"  # on a retry: why the original did not finish
LINEAGE_ATTR = "lineage"  # on a retry: the number of the first attempt (its seed and its checkpoint)
CRASHES_ATTR = "crashes"  # on a retry: how many attempts of this lineage died (not counting interruptions)
RESUMED_ATTR = "resumed"  # {"from_trial", "epoch"} when it continued from a checkpoint
CHECKPOINT_EPOCH_ATTR = "checkpoint_epoch"  # on an interrupted trial: the epoch its retry resumes at (0: none)
RESUME_SKIPPED_ATTR = "resume_skipped"  # why an existing checkpoint could not be used (it started at epoch 0)
OUT_OF_MEMORY_ATTR = "out_of_memory"
EPOCHS_ATTR = "epochs"  # the epoch count a trial ended at (replayed epochs included)
RUNGS_ATTR = "rung_values"  # asha: {epochs of a rung: the objective values there} (rungs reached in this trial)
PAUSED_ATTR = "paused_at_epoch"  # asha: the rung (epochs) a trial paused at, its checkpoint kept for promotion
PROMOTED_ATTR = "promoted_from_epoch"  # asha: on a continuation, the rung its lineage was promoted from
TEST_METRICS_ATTR = "test_metrics"  # the held-out test split's metrics, for review (never the objective)
RUNTIME_ATTR = "runtime"  # the CPU threads, device, processor and library versions it trained with (rerun)

# MLflow tags
ROLE_TAG = "automl.role"  # STUDY_ROLE (the parent run) or TRIAL_ROLE
STUDY_ROLE, TRIAL_ROLE = "study", "trial"
DATASET_TAG = "automl.dataset"  # on the parent run: what the study searches on, and for what
TASK_TAG = "automl.task"
METRIC_TAG = "automl.metric"
DIRECTION_TAG = "automl.direction"
RESUMED_FROM_TAG = "resumed_from_trial"  # on a trial's run: the trial whose checkpoint it continued ...
RESUMED_AT_TAG = "resumed_at_epoch"  # ... and the epoch it continued at
RESUME_SKIPPED_TAG = "resume_skipped"  # on a trial's run: why a checkpoint could not be used
TRIAL_NUMBER_TAG = "optuna.trial_number"
PARENT_RUN_TAG = "mlflow.parentRunId"
BEST_MODEL_TRIAL_TAG = "best_model.trial"
BEST_MODEL_URI_TAG = "best_model.uri"  # on the parent run: the pyfunc model of the best trial
BEST_NETWORK_URI_TAG = "best_network.uri"  # ... and its bare network

# MLflow metrics
OBJECTIVE_METRIC = "objective"  # each trial run's objective value (multi-objective: objective_0, objective_1, ...)

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
INTERRUPTED = "interrupted"  # the reason of a trial stopped by Ctrl-C or SIGTERM (it resumes)


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """The number of trials in each state, by state name (every state, zeros included)."""
    counts = {state.name: 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] += 1
    return counts


def leading_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best complete trial by the (first) objective; for several objectives, among the feasible Pareto
    front. None when no trial is complete."""
    if len(study.directions) == 1:
        try:
            return study.best_trial
        except ValueError:
            return None
    front = study.best_trials
    if not front:
        return None
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    return (max if maximize else min)(front, key=lambda t: t.values[0])


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible Pareto front, ordered by the first objective (empty for a single objective)."""
    if len(study.directions) < 2:
        return []
    return sorted(study.best_trials, key=lambda t: t.values[0])


def lineage(trial: FrozenTrial | optuna.Trial) -> int:
    """The number of the first attempt of this configuration: retries continue its seed and its checkpoint."""
    attrs = trial.user_attrs
    return int(attrs.get(LINEAGE_ATTR, attrs.get(RETRY_OF_ATTR, trial.number)))


def retry_of(study: optuna.Study, number: int) -> FrozenTrial | None:
    """The retry enqueued for trial `number`, if any."""
    return next((t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(RETRY_OF_ATTR) == number), None)


def continued_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of the trials that a later trial continues: a retry, or a promotion from a rung (they do not count
    towards the budget)."""
    return {t.user_attrs[RETRY_OF_ATTR] for t in trials if RETRY_OF_ATTR in t.user_attrs}


def paused_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Trials paused at an asha rung that no continuation has picked up yet."""
    continued = continued_numbers(trials)
    return [
        t for t in trials if t.state == TrialState.PRUNED and PAUSED_ATTR in t.user_attrs and t.number not in continued
    ]


def live_lineages(study: optuna.Study) -> set[int]:
    """The lineages with a trial still waiting, running, or paused at a rung and not yet promoted (their
    checkpoints are still needed)."""
    trials = study.get_trials(deepcopy=False)
    live = [t for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)] + paused_trials(trials)
    return {lineage(t) for t in live}


def trial_runs(client: Any, experiment_id: str, parent_run_id: str, number: int) -> list[Any]:
    """The MLflow child runs of trial `number` under the study's parent run."""
    return client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TRIAL_NUMBER_TAG}` = '{number}' and tags.`{PARENT_RUN_TAG}` = '{parent_run_id}'",
    )


def repeated_failure(study: optuna.Study, limit: int) -> str | None:
    """The reason shared by the last `limit` finished trials when every one of them FAILED with it, else None.
    Interrupted trials do not count (they resume)."""
    finished = [
        t
        for t in study.get_trials(deepcopy=False, states=FINISHED_STATES)
        if t.user_attrs.get(REASON_ATTR) != INTERRUPTED
    ]
    finished.sort(key=lambda t: (t.datetime_complete is None, t.datetime_complete, t.number))
    last = finished[-limit:]
    if limit < 1 or len(last) < limit:
        return None
    reasons = {t.user_attrs.get(REASON_ATTR) for t in last if t.state == TrialState.FAIL}
    if len(reasons) == 1 and all(t.state == TrialState.FAIL for t in last):
        return reasons.pop()
    return None
