"""A stored study is never resumed with a different search space or objective, a run whose trials keep failing
alike stops instead of burning its budget, and re-running or re-opening a study does what a user expects."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest
from conftest import load_optuna, mlflow_runs
from optuna.trial import TrialState

from orchestrator.execution.study_session import StudyChangedError, open_study
from orchestrator.study.studyfile import load_study

FIXTURES = Path(__file__).parent / "fixtures"

BASE = """
name: guarded
dataset: digits
objective: {metric: val_accuracy, direction: maximize}
budget: {trials: 1, max_epochs: 1}
search:
  architecture:
    mlp: {depth: 1, width: [16, 32]}
  activation: [relu, tanh]
  loss: cross_entropy
  optimizer:
    adam: {lr: {low: 0.001, high: 0.01, log: true}}
  regularizers:
    dropout: {optional: true}
  batch_size: 64
"""

# Each change of the search space or objective, and the line of the refusal that names it.
CHANGES = {
    "add a component without parameters": (
        "activation: [relu, tanh]",
        "activation: [relu, tanh, gelu]",
        "search.activation.gelu: (absent) -> (present)",
    ),
    "remove a component without parameters": (
        "activation: [relu, tanh]",
        "activation: [relu]",
        "search.activation.tanh: (present) -> (absent)",
    ),
    "add a component with parameters": (
        "activation: [relu, tanh]",
        "activation: [relu, tanh, leaky_relu]",
        "search.activation.leaky_relu.",
    ),
    "remove a component with parameters": (
        "    mlp: {depth: 1, width: [16, 32]}\n    cnn: {}",
        "    mlp: {depth: 1, width: [16, 32]}",
        "search.architecture.cnn.channels.",
    ),
    "a choice list": (
        "width: [16, 32]",
        "width: [16, 32, 64]",
        "search.architecture.mlp.width.choices: [16, 32] -> [16, 32, 64]",
    ),
    "a range bound": ("high: 0.01", "high: 0.05", "search.optimizer.adam.lr.high: 0.01 -> 0.05"),
    "the log flag": ("high: 0.01, log: true", "high: 0.01, log: false", "search.optimizer.adam.lr.log: True -> False"),
    "a fixed value": ("depth: 1", "depth: 2", "search.architecture.mlp.depth.value: 1 -> 2"),
    "batch_size": ("batch_size: 64", "batch_size: 32", "search.batch_size.value: 64 -> 32"),
    "a regularizer's optional": (
        "dropout: {optional: true}",
        "dropout: {optional: false}",
        "search.regularizers.dropout.optional: True -> False",
    ),
    "add a regularizer": (
        "dropout: {optional: true}",
        "dropout: {optional: true}\n    batchnorm: {}",
        "search.regularizers.batchnorm.optional: (absent) -> True",
    ),
    "the objective's metric": (
        "metric: val_accuracy, direction: maximize",
        "metric: val_loss, direction: minimize",
        "objective.metric: 'val_accuracy' -> 'val_loss'",
    ),
    "the objective's direction": (
        "direction: maximize",
        "direction: minimize",
        "objective.direction: 'maximize' -> 'minimize'",
    ),
}


@pytest.mark.parametrize("old, new, line", list(CHANGES.values()), ids=list(CHANGES))
def test_every_change_of_the_search_space_or_objective_is_refused_with_its_line(
    builtin_registry, tmp_path, old, new, line
):
    path = tmp_path / "study.yaml"
    storage = f"journal:{tmp_path / 'optuna.journal'}"
    stored = BASE if old in BASE else BASE.replace(new, old)  # the study as first run
    path.write_text(stored)
    open_study(load_study(path, builtin_registry), storage)
    changed = stored.replace(old, new)
    assert changed != stored
    path.write_text(changed)
    with pytest.raises(StudyChangedError) as refused:
        open_study(load_study(path, builtin_registry), storage)
    assert line in str(refused.value), str(refused.value)
    # reopening with the original file is still accepted
    path.write_text(stored)
    open_study(load_study(path, builtin_registry), storage)


def test_settings_that_do_not_change_the_search_can_change(builtin_registry, tmp_path):
    path = tmp_path / "study.yaml"
    storage = f"journal:{tmp_path / 'optuna.journal'}"
    path.write_text(BASE)
    open_study(load_study(path, builtin_registry), storage)
    path.write_text(
        BASE.replace("trials: 1, max_epochs: 1", "trials: 5, max_epochs: 3")
        + "checkpoints: {every_epochs: 2, keep: true}\nstop_grace_seconds: 30\n"
    )
    open_study(load_study(path, builtin_registry), storage)


FAILING = """
name: failing
dataset: digits
budget: {trials: 20, max_epochs: 1}
max_consecutive_failures: 3
search:
  architecture: {faulty: {fault: raise}}
  activation: relu
  loss: cross_entropy
  optimizer: adam
  batch_size: 64
"""


def test_trials_failing_alike_in_a_row_stop_the_run_with_exit_1_and_the_reason(write_study, workdir, cli):
    (workdir / "plugins").mkdir()
    shutil.copy(FIXTURES / "faulty.py", workdir / "plugins" / "faulty.py")
    result = cli("run", write_study(FAILING), "--no-tracking")
    assert result.code == 1, result.err
    assert (
        "error: 3 trials in a row failed with the same reason: RuntimeError: simulated failure in forward" in result.err
    )
    study = load_optuna(workdir, "failing")
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 3


def test_rerun_of_a_trial_that_failed_before_sampling_says_why_with_exit_2(write_study, workdir, cli):
    path = write_study()
    study = optuna.create_study(
        study_name="tiny",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(workdir / "optuna.journal"))
        ),
        direction="maximize",
    )
    trial = study.ask()
    trial.set_user_attr("reason", "DatasetError: no data")
    study.tell(trial, state=TrialState.FAIL)
    result = cli("rerun", path, "0")
    assert result.code == 2
    assert (
        "trial 0 (FAIL) has no parameters to re-run: it ended before they were sampled (DatasetError: no data)"
        in result.err
    )
    assert "Traceback" not in result.err


def test_a_finished_study_run_again_logs_its_best_model_once(write_study, workdir, cli):
    path = write_study()
    first = cli("run", path, "--trials", "1")
    assert first.code == 0 and "best model (trial 0) logged as" in first.out
    again = cli("run", path, "--trials", "1")
    assert again.code == 0 and "best model" not in again.out
    client, parents, _ = mlflow_runs(workdir)
    models = client.search_logged_models(experiment_ids=[parents[0].info.experiment_id])
    assert sorted(m.name for m in models) == ["best_model", "best_network"]  # the pyfunc and the nn.Module, once
