"""A supervised worker's tracking writes travel as lines to its supervisor, which writes them to MLflow."""

from __future__ import annotations

import io

from mlflow.tracking import MlflowClient

from orchestrator.tracking.relay import PREFIX, RelayTracker, relayed_operation
from orchestrator.tracking.tracker import Tracker


def test_other_lines_are_not_relayed_operations():
    assert relayed_operation("    0  mlp relu  COMPLETE\n") is None
    assert relayed_operation(PREFIX + '["h", "log_text", {"text": "x", "artifact_file": "a.txt"}]\n') == (
        "h",
        "log_text",
        {"text": "x", "artifact_file": "a.txt"},
    )


def test_a_relayed_trial_run_arrives_in_mlflow_as_the_worker_wrote_it(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    supervisor = Tracker(uri)
    parent = supervisor.open_study("relayed", None, {"automl.role": "study"}, "name: relayed\n")
    pipe = io.StringIO()
    worker = RelayTracker(pipe)
    run = worker.start_trial(3, {"architecture": "mlp", "optimizer.adam.lr": 0.01}, {"automl.worker": "w1"})
    for epoch in range(3):
        run.log_epoch(epoch, {"val_accuracy": 0.5 + epoch / 10})
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x00" * 16)
    run.log_file(weights, "network_state.pt")
    run.log_text("Traceback: none\n", "traceback.txt")
    run.end("COMPLETE", {"objective": 0.7}, {"reason": "done"})
    worker.update_study({"trials_complete": 1}, {"best_trial": "3"})
    worker.close()

    lines = pipe.getvalue().split("\n")[:-1]
    assert lines and all(line.startswith(PREFIX) for line in lines)
    for line in lines:  # as the supervisor's relay thread hands them on
        handle, op, args = relayed_operation(line)
        supervisor.send(f"w1/{handle}", op, **args)
    supervisor.close()

    client = MlflowClient(uri)
    [trial] = client.search_runs([client.get_run(parent).info.experiment_id], "tags.`automl.role` = 'trial'")
    assert trial.data.tags["mlflow.parentRunId"] == parent and trial.data.tags["automl.worker"] == "w1"
    assert trial.info.run_name == "trial-3" and trial.info.status == "FINISHED"
    assert trial.data.params == {"architecture": "mlp", "optimizer.adam.lr": "0.01"}
    assert [m.value for m in client.get_metric_history(trial.info.run_id, "val_accuracy")] == [0.5, 0.6, 0.7]
    assert trial.data.metrics["objective"] == 0.7 and trial.data.tags["state"] == "COMPLETE"
    assert {a.path for a in client.list_artifacts(trial.info.run_id)} == {"network_state.pt", "traceback.txt"}
    assert not weights.exists()  # moved into the artifact store
    assert client.get_run(parent).data.metrics["trials_complete"] == 1


def test_a_worker_whose_supervisor_is_gone_keeps_training():
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError("supervisor gone")

    run = RelayTracker(Closed()).start_trial(0, {}, {})
    run.log_epoch(0, {"val_accuracy": 0.5})
    run.end("COMPLETE", {}, {})  # no exception: tracking never stops a trial
