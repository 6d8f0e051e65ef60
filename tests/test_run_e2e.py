"""End to end as a user: write a study file, run `automl`, read Optuna and MLflow back with their clients."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import AUTOML, TINY_STUDY, free_port, load_optuna, mlflow_runs
from optuna.trial import TrialState


def test_run_records_every_trial_in_optuna_and_mlflow(write_study, workdir):
    study_file = write_study()
    started = time.time()
    proc = subprocess.run(
        [AUTOML, "run", study_file.name],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "AUTOML_TIMINGS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    # live progress: a header and one row per trial, then a summary
    assert "trial  choices" in proc.stdout
    # where the worker's start-up went, and (AUTOML_TIMINGS=1, for benchmarks) when its data was ready
    assert re.search(
        r"worker cpu0 ready after [0-9.]+ s \(imports and data [0-9.]+ s, study set-up [0-9.]+ s\)", proc.stdout
    ), proc.stdout
    ready_at = float(re.search(r"timing: data ready at ([0-9.]+) \(unix time\)", proc.stdout).group(1))
    assert started < ready_at < time.time()
    rows = [line for line in proc.stdout.splitlines() if line.strip().split(" ")[0].isdigit()]
    assert len(rows) == 3 and "Done: 3 trial(s)" in proc.stdout
    # with no storage flags, every file lands in the working directory
    assert {"mlflow.db", "optuna.journal", "study.yaml"} <= {p.name for p in workdir.iterdir()}

    study = load_optuna(workdir)
    trials = study.get_trials()
    assert len(trials) == 3
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    for t in trials:
        config = t.user_attrs["config"]
        assert config["architecture"] == "mlp" and config["architecture.mlp.depth"] == 1
        assert config["architecture.mlp.width"] in (16, 32)
        assert 0.001 <= config["optimizer.adam.lr"] <= 0.01
        # only searched params are suggested to Optuna, under their namespaced names
        assert set(t.params) == {
            "architecture.mlp.width",
            "activation",
            "optimizer.adam.lr",
            "optimizer.adam.beta1",
            "optimizer.adam.beta2",
        }
    best = study.best_trial
    assert 0.5 < best.value <= 1.0  # 2 epochs on digits is already far above chance (0.1)

    client, parents, children = mlflow_runs(workdir)
    assert len(parents) == 1 and len(children) == 3
    # marked as model training, so that MLflow 3's UI opens it on its runs, not in its GenAI view
    experiment_tags = client.get_experiment_by_name("tiny").tags
    assert experiment_tags["mlflow.experimentKind"] == "custom_model_development"
    # with a saved view of every trial by its objective (what `automl ui` links to)
    view = json.loads(experiment_tags["mlflow.sharedViewState.automl-trials"])
    assert json.loads(view["state"])["orderByKey"] == "metrics.`objective`"
    parent = parents[0]
    assert study.user_attrs["mlflow_parent_run_id"] == parent.info.run_id
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_value"] == pytest.approx(best.value)
    assert parent.data.tags["best_trial"] == str(best.number)
    assert "study.yaml" in [a.path for a in client.list_artifacts(parent.info.run_id)]
    by_number = {int(r.data.tags["optuna.trial_number"]): r for r in children}
    for t in trials:
        run = by_number[t.number]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status == "FINISHED" and run.data.tags["state"] == t.state.name
        assert run.data.params["architecture.mlp.width"] == str(t.user_attrs["config"]["architecture.mlp.width"])
        assert run.data.params["activation"] == t.params["activation"]
        assert run.data.tags["plugin.architecture.mlp"].startswith("automl-orchestrator ")
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        epochs = len(t.intermediate_values)
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(epochs))
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
            [t.intermediate_values[i] for i in range(epochs)]
        )
        for metric in ("train_loss", "val_loss"):
            assert len(client.get_metric_history(run.info.run_id, metric)) == epochs
        assert "test_accuracy" in run.data.metrics
        if t.state == TrialState.COMPLETE:
            assert run.data.metrics["objective"] == pytest.approx(t.value)


def test_resume_adds_trials_to_the_same_study_and_parent_run(write_study, workdir, cli):
    study_file = write_study()
    assert cli("run", study_file, "--trials", "2").code == 0
    _, parents_before, _ = mlflow_runs(workdir)
    rerun = cli("run", study_file, "--trials", "3")  # the budget is the study's total: one more trial
    assert rerun.code == 0 and "(2 finished already)" in rerun.out
    assert len(load_optuna(workdir).trials) == 3
    again = cli("run", study_file, "--trials", "3")  # budget met: nothing more runs
    assert again.code == 0 and "Done: 3 trial(s) in the study" in again.out
    assert len(load_optuna(workdir).trials) == 3
    _, parents, children = mlflow_runs(workdir)
    assert [p.info.run_id for p in parents] == [parents_before[0].info.run_id]
    assert parents[0].info.status == "FINISHED"
    assert sorted(int(c.data.tags["optuna.trial_number"]) for c in children) == [0, 1, 2]


def test_changed_search_space_is_refused_with_the_difference(write_study, workdir, cli):
    study_file = write_study()
    assert cli("run", study_file, "--trials", "1").code == 0
    write_study(TINY_STUDY.replace("high: 0.01", "high: 0.05"))
    result = cli("run", study_file)
    assert result.code == 2
    assert "different objective or search space" in result.err
    assert "search.optimizer.adam.lr.high: 0.01 -> 0.05" in result.err
    write_study(TINY_STUDY.replace("direction: maximize", "direction: minimize"))
    result = cli("run", study_file)
    assert result.code == 2 and "objective.direction: 'maximize' -> 'minimize'" in result.err
    assert len(load_optuna(workdir).trials) == 1


def test_show_reports_counts_and_best_trial(write_study, workdir, cli):
    study_file = write_study()
    assert cli("run", study_file, "--no-tracking").code == 0
    shown = cli("show", study_file, "--json")
    assert shown.code == 0
    data = json.loads(shown.out)
    study = load_optuna(workdir)
    assert data["study"] == "tiny" and data["direction"] == "maximize"
    counts = {s.name: sum(t.state == s for t in study.trials) for s in TrialState}
    assert data["trials"] == {k: v for k, v in counts.items() if v}
    assert data["best"]["number"] == study.best_trial.number
    assert data["best"]["value"] == pytest.approx(study.best_value)
    assert data["best"]["params"]["architecture"] == "mlp"
    tested = study.best_trial.user_attrs["test_metrics"]
    assert data["best"]["test_metrics"] == pytest.approx(tested) and "test_accuracy" in tested
    text = cli("show", "tiny")
    assert text.code == 0 and f"best: trial {study.best_trial.number}" in text.out
    assert (
        f"  on the held-out test split (never used to choose): test_accuracy {tested['test_accuracy']:.6g}" in text.out
    )
    missing = cli("show", "nope")
    assert missing.code == 2 and "no study named 'nope'" in missing.err and "tiny" in missing.err
    assert not (workdir / "mlflow.db").exists()  # --no-tracking wrote nothing to MLflow


def test_show_and_ui_honour_the_environment_variables(write_study, workdir, cli, monkeypatch):
    """AUTOML_STORAGE and AUTOML_TRACKING_URI reach `show` and `ui` as they reach `run` and `worker`."""
    (workdir / "elsewhere").mkdir()
    journal = workdir / "elsewhere" / "study.journal"
    monkeypatch.setenv("AUTOML_STORAGE", f"journal:{journal}")
    assert cli("run", write_study(), "--trials", "1", "--no-tracking").code == 0
    assert journal.exists() and not (workdir / "optuna.journal").exists()
    shown = cli("show", "tiny")
    assert shown.code == 0 and "trials: complete 1" in shown.out and str(journal) in shown.out, shown.out + shown.err
    monkeypatch.delenv("AUTOML_STORAGE")
    assert cli("show", "tiny").code == 2

    executed: list[list[str]] = []
    monkeypatch.setattr("os.execv", lambda path, command: executed.append(command))
    monkeypatch.setenv("AUTOML_TRACKING_URI", "sqlite:////tmp/elsewhere/mlflow.db")
    assert cli("ui", "--port", "5999").code == 0
    command = executed[-1]
    assert command[command.index("--backend-store-uri") + 1] == "sqlite:////tmp/elsewhere/mlflow.db"
    assert cli("ui", "--tracking-uri", "sqlite:////tmp/flag.db").code == 0
    assert executed[-1][executed[-1].index("--backend-store-uri") + 1] == "sqlite:////tmp/flag.db"


BROKEN_PLUGIN = """
from torch import nn
from orchestrator import Architecture, Float, hookimpl


def build(params, ctx):
    if params["fail"] > 0.5:
        raise RuntimeError("boom: this architecture cannot be built")
    return nn.Sequential(nn.Flatten(), nn.Linear(64, ctx.output_size))


@hookimpl
def register_architectures(register):
    register(Architecture("fragile", "Fails to build for half of its space.",
                          params={"fail": Float(0.0, 1.0, default=0.0)}, build=build))
"""


def test_a_failing_trial_is_recorded_and_the_study_goes_on(write_study, workdir, cli):
    (workdir / "plugins").mkdir()
    (workdir / "plugins" / "fragile.py").write_text(BROKEN_PLUGIN)
    study_file = write_study(
        TINY_STUDY.replace("mlp: {depth: 1, width: [16, 32]}", "fragile: {fail: [0.0, 1.0]}").replace(
            "trials: 3", "trials: 6"
        )
    )
    result = cli("run", study_file)
    assert result.code == 0
    study = load_optuna(workdir)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    done = [t for t in study.trials if t.state != TrialState.FAIL]
    assert len(study.trials) == 6 and failed and done
    assert all(t.params["architecture.fragile.fail"] == 1.0 for t in failed)
    assert all(t.params["architecture.fragile.fail"] == 0.0 for t in done)
    assert all("RuntimeError: boom" in t.user_attrs["reason"] for t in failed)
    assert "reason: RuntimeError: boom" in result.out
    client, _, children = mlflow_runs(workdir)
    failed_runs = [r for r in children if r.data.tags["state"] == "FAIL"]
    assert len(failed_runs) == len(failed)
    for run in failed_runs:
        assert run.info.status == "FAILED" and "boom" in run.data.tags["reason"]
        assert "traceback.txt" in [a.path for a in client.list_artifacts(run.info.run_id)]


def test_pruned_trials_stop_early_and_are_recorded(write_study, workdir, cli):
    study_file = write_study(
        TINY_STUDY.replace("trials: 3", "trials: 5").replace("max_epochs: 2", "max_epochs: 6")
        + "pruner: {name: percentile, percentile: 99.0, n_startup_trials: 1, n_warmup_steps: 0}\n"
    )
    assert cli("run", study_file).code == 0
    study = load_optuna(workdir)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, [t.state for t in study.trials]
    _, _, children = mlflow_runs(workdir)
    by_number = {int(r.data.tags["optuna.trial_number"]): r for r in children}
    for t in pruned:
        assert len(t.intermediate_values) < 6
        run = by_number[t.number]
        assert run.info.status == "FINISHED" and run.data.tags["state"] == "PRUNED"
        assert "pruned by the percentile pruner" in run.data.tags["reason"]


SLOW_STUDY = """
name: slow
dataset: {name: mnist1d, train_samples: 3800}
budget: {trials: 4, max_epochs: 400}
pruner: median  # trials train to the end (not paused at asha rungs)
search:
  architecture: {mlp: {depth: 2, width: 256}}
  activation: relu
  loss: cross_entropy
  optimizer: adam
  batch_size: 32
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_signal_leaves_nothing_running_and_the_rerun_resumes(write_study, workdir, signum):
    study_file = write_study(SLOW_STUDY)
    proc = subprocess.Popen(
        [AUTOML, "run", study_file.name, "--threads", "1"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until a trial is training
            time.sleep(0.5)
            if (workdir / "optuna.journal").exists() and load_optuna(workdir, "slow").trials:
                break
        time.sleep(2)
        stopped_at = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert time.monotonic() - stopped_at < 15, "the workers did not stop within seconds"
    assert proc.returncode == 128 + signum, err
    assert f"interrupted by {signal.Signals(signum).name}" in err
    study = load_optuna(workdir, "slow")
    # the interrupted trial is FAIL with its reason, and the same parameters wait to be retried first
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]
    assert study.trials[0].user_attrs["reason"] == "interrupted"
    assert study.trials[1].user_attrs["retry_of"] == 0
    _, parents, children = mlflow_runs(workdir, "slow")
    assert [p.info.status for p in parents] == ["KILLED"]
    assert [c.info.status for c in children] == ["KILLED"]

    # running it again resumes the same study and parent run (budget shortened: budgets may change)
    write_study(SLOW_STUDY.replace("max_epochs: 400", "max_epochs: 1"))
    rerun = subprocess.run(
        [AUTOML, "run", study_file.name, "--trials", "1"], cwd=workdir, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    study = load_optuna(workdir, "slow")
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[1].params == study.trials[0].params
    _, parents_after, children = mlflow_runs(workdir, "slow")
    assert [p.info.run_id for p in parents_after] == [parents[0].info.run_id]
    assert parents_after[0].info.status == "FINISHED"
    assert sorted(c.info.status for c in children) == ["FINISHED", "KILLED"]


def test_ui_serves_the_study_from_the_default_store(write_study, workdir, cli):
    assert cli("run", write_study(), "--trials", "1").code == 0
    port = free_port()
    proc = subprocess.Popen(
        [AUTOML, "ui", "--port", str(port)], cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        body = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and body is None:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search",
                    data=json.dumps({"max_results": 10}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                body = json.loads(urllib.request.urlopen(request, timeout=5).read())
            except OSError:
                time.sleep(1)
        assert body is not None, "the MLflow UI did not answer"
        assert "tiny" in [e["name"] for e in body["experiments"]]
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
        assert "<html" in page.lower()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_python_dash_m_orchestrator_is_the_automl_command():
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for command in ("run", "validate", "plugins", "show", "ui"):
        assert command in proc.stdout


def test_a_hook_that_raises_fails_only_its_trial(write_study, workdir, cli):
    (workdir / "plugins").mkdir()
    (workdir / "plugins" / "moody.py").write_text(
        "from orchestrator import hookimpl\n\n"
        "@hookimpl\n"
        "def before_trial(trial, config):\n"
        "    if trial.number == 0:\n"
        "        raise ValueError('hook refused trial 0')\n"
    )
    assert cli("run", write_study(TINY_STUDY.replace("trials: 3", "trials: 2"))).code == 0
    study = load_optuna(workdir)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[0].user_attrs["reason"] == "ValueError: hook refused trial 0"
    _, parents, children = mlflow_runs(workdir)
    statuses = {int(c.data.tags["optuna.trial_number"]): c.info.status for c in children}
    assert statuses == {0: "FAILED", 1: "FINISHED"} and parents[0].info.status == "FINISHED"
