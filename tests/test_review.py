"""Reviewing a finished study: the best model in MLflow, warm starts, re-runs, the summary on the parent run."""

from __future__ import annotations

import subprocess

import mlflow
import mlflow.pytorch
import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import AUTOML, TINY_STUDY, load_optuna, mlflow_runs
from orchestrator.runner import load_data
from orchestrator.studyfile import load_study


def automl(workdir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([AUTOML, *args], cwd=workdir, capture_output=True, text=True, timeout=300)


def test_the_best_model_is_logged_registered_and_predicts_like_its_trial(write_study, workdir, builtin_registry):
    write_study()
    proc = automl(workdir, "run", "study.yaml", "--register", "tiny-net")
    assert proc.returncode == 0, proc.stderr
    study = load_optuna(workdir)
    best = study.best_trial
    assert f"best model (trial {best.number}) logged as models:/" in proc.stdout
    client, parents, _ = mlflow_runs(workdir)
    parent = parents[0]
    assert parent.data.tags["best_model.trial"] == str(best.number)
    uri = parent.data.tags["best_model.uri"]
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    info = mlflow.models.get_model_info(uri)
    assert info.signature is not None and info.saved_input_example_info is not None
    # the same digits split the study trained on, rebuilt by the data set plugin
    data = load_data(load_study(workdir / "study.yaml", builtin_registry)).to("cpu")
    for loaded in (mlflow.pytorch.load_model(uri), mlflow.pytorch.load_model("models:/tiny-net@best")):
        with torch.no_grad():
            predicted = loaded(data.x_test).argmax(dim=1)
        accuracy = (predicted == data.y_test).float().mean().item()
        assert accuracy == pytest.approx(best.user_attrs["test_metrics"]["test_accuracy"], abs=1e-6)
    version = client.get_model_version_by_alias("tiny-net", "best")
    assert str(version.version) == "1" and "best" in version.aliases
