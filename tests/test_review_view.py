"""The study's saved view in the MLflow UI and the addresses `automl ui` prints (orchestrator.tracking.review_view)."""

from __future__ import annotations

import json

from conftest import TINY_STUDY
from mlflow.tracking import MlflowClient

from orchestrator.study.studyfile import load_study
from orchestrator.tracking.review_view import VIEW_TAG, experiment_address, study_views, view_columns, view_tags
from orchestrator.tracking.tracker import Tracker

TWO_OBJECTIVES = TINY_STUDY.replace(
    "objective: {metric: val_accuracy, direction: maximize}",
    "objective:\n  - {metric: val_loss, direction: minimize}\n  - {metric: params, direction: minimize}",
).replace("pruner: median", "pruner: none")


def test_the_view_shows_the_objective_its_metric_and_test_metric_then_choices_before_their_parameters(
    write_study, builtin_registry
):
    spec = load_study(write_study(), builtin_registry)
    assert view_columns(spec) == [
        "metrics.`objective`",
        "metrics.`val_accuracy`",
        "metrics.`test_accuracy`",
        "params.`activation`",
        "params.`architecture.mlp.width`",
        "params.`optimizer.adam.lr`",
        "params.`optimizer.adam.beta1`",
        "params.`optimizer.adam.beta2`",
    ]
    tags = view_tags(spec, now_ms=1234)
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    envelope = json.loads(tags[VIEW_TAG])  # MLflow's saved-view envelope: a name, times, the state as a string
    assert envelope["name"] == "automl: every trial by its objective" and envelope["createdAt"] == 1234
    state = json.loads(envelope["state"])
    assert state == {"orderByKey": "metrics.`objective`", "orderByAsc": False, "selectedColumns": view_columns(spec)}


def test_a_multi_objective_view_sorts_by_the_first_objective_in_its_direction(write_study, builtin_registry):
    spec = load_study(write_study(TWO_OBJECTIVES), builtin_registry)
    assert view_columns(spec)[:4] == [
        "metrics.`objective_0`",
        "metrics.`val_loss`",
        "metrics.`test_loss`",
        "metrics.`params`",
    ]
    state = json.loads(json.loads(view_tags(spec)[VIEW_TAG])["state"])
    assert state["orderByKey"] == "metrics.`objective_0`" and state["orderByAsc"] is True


def test_addresses_open_the_model_training_view_on_the_saved_view_or_sorted_without_it():
    base = "http://127.0.0.1:5000"
    assert experiment_address(base, "7", has_view=True) == (
        f"{base}/#/experiments/7/runs?viewStateShareKey=automl-trials&workflowType=machine_learning"
    )
    assert experiment_address(base, "7", has_view=False, ascending=True) == (
        f"{base}/#/experiments/7/runs?orderByKey=metrics.%60objective%60&orderByAsc=true&workflowType=machine_learning"
    )


def test_reopening_a_study_keeps_a_view_the_user_edited(write_study, builtin_registry, workdir):
    spec = load_study(write_study(), builtin_registry)
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    tracker = Tracker(uri)
    parent = tracker.open_study("tiny", None, {"automl.role": "study"}, "name: tiny\n", view_tags(spec))
    tracker.close()
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name("tiny").experiment_id
    client.set_experiment_tag(experiment_id, VIEW_TAG, '{"edited": "by the user"}')
    tracker = Tracker(uri)
    tracker.open_study("tiny", parent, {}, "name: tiny\n", view_tags(spec))
    tracker.close()
    assert client.get_experiment(experiment_id).tags[VIEW_TAG] == '{"edited": "by the user"}'
    assert study_views(uri, "http://h:1") == [
        (
            "tiny",
            f"http://h:1/#/experiments/{experiment_id}/runs?viewStateShareKey=automl-trials"
            "&workflowType=machine_learning",
        )
    ]


def test_no_views_and_no_database_created_before_anything_is_tracked(workdir):
    assert study_views(f"sqlite:///{workdir / 'mlflow.db'}", "http://h:1") == []
    assert not (workdir / "mlflow.db").exists()
