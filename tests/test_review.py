"""Reviewing a finished study: the best model in MLflow, warm starts, re-runs, the summary on the parent run."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import mlflow
import mlflow.pyfunc
import mlflow.pytorch
import pytest
import torch
from conftest import AUTOML, RERUN_STUDY, TINY_STUDY, load_optuna, mlflow_runs

from orchestrator.execution.study_session import load_data
from orchestrator.study.studyfile import load_study

SINGLE_PLOTS = (
    "optimization_history.png",
    "param_importances.png",
    "parallel_coordinates.png",
    "learning_curves.png",
    "objective_by_component.png",
)

MULTI_STUDY = """
name: trade-off
dataset: digits
objective:
  - {metric: val_accuracy, direction: maximize}
  - {metric: params, direction: minimize}
  - {metric: latency_ms}
constraints: {max_params: 5000}
budget: {trials: 6, max_epochs: 2}
sampler: {name: nsga2, population_size: 4}
search:
  architecture:
    mlp: {depth: 1, width: [16, 32, 64, 128]}
  activation: relu
  loss: cross_entropy
  optimizer: {adam: {lr: 0.01, beta1: 0.9, beta2: 0.999}}
  batch_size: 64
"""


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
    uri, network_uri = parent.data.tags["best_model.uri"], parent.data.tags["best_network.uri"]
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    for logged in (uri, network_uri):
        info = mlflow.models.get_model_info(logged)
        assert info.signature is not None and info.saved_input_example_info is not None
    # the same digits split the study trained on, rebuilt by the data set plugin
    data = load_data(load_study(workdir / "study.yaml", builtin_registry)).to("cpu")
    tested = best.user_attrs["test_metrics"]["test_accuracy"]
    # for PyTorch users: a plain nn.Module (eval() works) that takes float32 or float64 tensors
    network = mlflow.pytorch.load_model(network_uri)
    assert type(network).__name__ == "FloatInputs" and network.eval() is network
    with torch.no_grad():
        predicted = network(data.x_test).argmax(dim=1)
        assert torch.equal(network(data.x_test.double()).argmax(dim=1), predicted)
    assert (predicted == data.y_test).float().mean().item() == pytest.approx(tested, abs=1e-6)
    # the registered model is the pyfunc one: inputs as the data set gives them, class labels out
    for served in (mlflow.pyfunc.load_model(uri), mlflow.pyfunc.load_model("models:/tiny-net@best")):
        labels = served.predict(data.x_test.numpy())
        assert list(labels) == predicted.tolist()
    version = client.get_model_version_by_alias("tiny-net", "best")
    assert str(version.version) == "1" and "best" in version.aliases

    # the study summary sits beside it on the parent run
    summary = {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
    assert summary == {f"summary/{name}" for name in (*SINGLE_PLOTS, "report.md", "report.html")}
    folder = client.download_artifacts(parent.info.run_id, "summary", str(workdir / "summary-copy"))
    for name in SINGLE_PLOTS:
        image = (Path(folder) / name).read_bytes()
        assert image.startswith(b"\x89PNG") and len(image) > 10_000, name
    report = (Path(folder) / "report.md").read_text()
    assert f"## Best trial: {best.number}" in report
    assert "| mlp | adam | 3 | 3 |" in report  # the architecture x optimizer table
    tested = best.user_attrs["test_metrics"]["test_accuracy"]
    assert "On the held-out test split (never used to choose): " in report and f"test_accuracy = {tested:.6g}" in report
    page = (Path(folder) / "report.html").read_text()
    assert "<table>" in page and f"test_accuracy = {tested:.6g}" in page
    # every plot is embedded (MLflow's artifact viewer shows the page alone), byte for byte the PNG beside it
    embedded = dict(re.findall(r"<img src='data:image/png;base64,([A-Za-z0-9+/=]+)' alt='([^']+)'>", page))
    assert sorted(embedded.values()) == sorted(SINGLE_PLOTS)
    for data, name in embedded.items():
        assert base64.b64decode(data) == (Path(folder) / name).read_bytes()
    assert "src='" not in page.replace("src='data:", "")


def test_enqueued_configurations_run_first_and_a_rerun_reproduces_a_trial(write_study, workdir, cli):
    known = (
        "enqueue:\n"
        "  - {architecture.mlp.width: 32, activation: relu, optimizer.adam.lr: 0.005}\n"
        "  - {architecture.mlp.width: 16, activation: sigmoid}\n"
    )
    write_study(TINY_STUDY + known)
    assert cli("run", "study.yaml", "--no-tracking").code == 0
    trials = load_optuna(workdir).trials
    assert len(trials) == 3
    assert trials[0].params["architecture.mlp.width"] == 32 and trials[0].params["activation"] == "relu"
    assert trials[0].params["optimizer.adam.lr"] == pytest.approx(0.005)
    assert trials[1].params["architecture.mlp.width"] == 16 and trials[1].params["activation"] == "sigmoid"
    assert trials[0].user_attrs["enqueued"] and "enqueued" not in trials[2].user_attrs
    # resuming with a bigger budget does not enqueue them again
    assert cli("run", "study.yaml", "--no-tracking", "--trials", "4").code == 0
    assert len(load_optuna(workdir).trials) == 4
    assert sum("enqueued" in t.user_attrs for t in load_optuna(workdir).trials) == 2

    result = cli("rerun", "study.yaml", "1")
    assert result.code == 0, result.err
    logged = load_optuna(workdir).trials[1].value
    threads = load_optuna(workdir).trials[1].user_attrs["runtime"]["threads"]
    assert (
        f"trial 1 retrained (2 epochs, {threads} CPU thread(s)): val_accuracy {logged:.6g} (logged: {logged:.6g}, "
        "COMPLETE)"
    ) in result.out
    missing = cli("rerun", "study.yaml", "9")
    assert missing.code == 2 and "has no trial 9; its trials are numbered 0..3" in missing.err


def test_rerun_retrains_with_the_threads_each_trial_recorded_and_reproduces_its_value(write_study, workdir):
    """Two workers (each with its share of the cores), then `automl rerun` of both trials as a user types it (a
    process with every core): each retrains with its trial's recorded threads and gives the logged value."""
    write_study(RERUN_STUDY)
    run = subprocess.run(
        [AUTOML, "run", "study.yaml", "--no-tracking", "--workers", "2"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for trial in load_optuna(workdir, "rerun").trials:
        runtime = trial.user_attrs["runtime"]
        assert runtime["device"] == "cpu" and runtime["threads"] >= 1 and runtime["torch"] == torch.__version__
        result = subprocess.run(
            [AUTOML, "rerun", "study.yaml", str(trial.number)], cwd=workdir, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, result.stderr
        assert (
            f"trial {trial.number} retrained (4 epochs, {runtime['threads']} CPU thread(s)): val_loss "
            f"{trial.value:.6g} (logged: {trial.value:.6g}, COMPLETE)"
        ) in result.stdout, result.stdout
        assert "may differ" not in result.stdout


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "{architecture.mlp.widht: 32}",
            "enqueue[0].architecture.mlp.widht: not a searched parameter (did you mean 'architecture.mlp.width'?)",
        ),
        (
            "{architecture.mlp.width: 64}",
            "enqueue[0].architecture.mlp.width: outside the search space: one of [16, 32]",
        ),
        ("{optimizer.adam.lr: 1.0}", "enqueue[0].optimizer.adam.lr: outside the search space: 0.001..0.01"),
    ],
)
def test_an_enqueued_configuration_outside_the_space_is_a_study_file_error(write_study, cli, entry, message):
    path = write_study(TINY_STUDY + f"enqueue:\n  - {entry}\n")
    result = cli("validate", path)
    assert result.code == 2 and f"{path}: {message}" in result.err, result.err


def test_a_multi_objective_study_shows_its_pareto_front_and_respects_constraints(write_study, workdir, cli):
    write_study(MULTI_STUDY)
    proc = automl(workdir, "run", "study.yaml")
    assert proc.returncode == 0, proc.stderr
    study = load_optuna(workdir, "trade-off")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    assert len(study.trials) == 6
    for t in study.trials:
        width = t.params["architecture.mlp.width"]
        assert t.values[1] == 64 * width + width + width * 10 + 10  # counted independently: 64 -> w -> 10
        assert 0 < t.values[2] < 1000  # milliseconds for one sample
        assert t.constraints == {"max_params": t.values[1] - 5000}
    feasible = [t for t in study.trials if t.values[1] <= 5000]
    front = study.best_trials
    assert front and all(t.values[1] <= 5000 for t in front)
    for t in feasible:  # nothing feasible dominates a front member
        for f in front:
            assert not (
                t.values[0] >= f.values[0]
                and t.values[1] <= f.values[1]
                and t.values[2] <= f.values[2]
                and t.values != f.values
            )

    shown = cli("show", "study.yaml", "--json")
    data = json.loads(shown.out)
    assert data["objectives"] == ["val_accuracy", "params", "latency_ms"]
    assert sorted(e["number"] for e in data["pareto_front"]) == sorted(t.number for t in front)
    text = cli("show", "study.yaml").out
    assert f"Pareto front ({len(front)} trial(s), feasible only):" in text
    assert "val_accuracy        params    latency_ms" in text

    client, parents, children = mlflow_runs(workdir, "trade-off")
    summary = {a.path for a in client.list_artifacts(parents[0].info.run_id, "summary")}
    assert "summary/pareto_front.png" in summary and "summary/report.md" in summary
    assert "summary/objective_by_component.png" in summary and "summary/learning_curves.png" not in summary
    for child in children:
        assert {"objective_0", "objective_1", "objective_2", "params", "latency_ms"} <= set(child.data.metrics)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "pruner: median\n",
            "pruner: Optuna's pruners judge one objective per step: a multi-objective study can use pruner: asha",
        ),
        ("sampler: cmaes\n", "sampler: cmaes optimises a single objective"),
        ("constraints: {max_flops: 10}\n", "constraints.max_flops: unknown key"),
    ],
)
def test_multi_objective_settings_that_cannot_work_are_study_file_errors(write_study, cli, change, message):
    text = MULTI_STUDY.replace("sampler: {name: nsga2, population_size: 4}\n", "")
    path = write_study(text + change)
    result = cli("validate", path)
    assert result.code == 2 and f"{path}: {message}" in result.err, result.err


def test_the_first_objective_must_be_a_validation_metric(write_study, cli):
    path = write_study(
        MULTI_STUDY.replace(
            "  - {metric: val_accuracy, direction: maximize}\n  - {metric: params, direction: minimize}",
            "  - {metric: params, direction: minimize}\n  - {metric: val_accuracy, direction: maximize}",
        )
    )
    result = cli("validate", path)
    assert result.code == 2 and f"{path}: objective[0].metric: not a classification metric" in result.err
