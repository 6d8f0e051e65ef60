"""What a killed worker costs: `automl run` on MNIST-1D (one trial, one CPU thread), its worker killed with
SIGKILL at the start of epoch K, once per checkpoint policy; prints the epochs the retry had to train again
(target: at most the one in progress) and the seconds they took.

    .venv/bin/python bench/resume.py [--epochs 120] [--kill-at 100] [--width 256]

The kill lands where the test plugin `tests/fixtures/pause.py` holds the first trial (start of epoch K); the
retry resumes at the epoch after its last checkpoint, so `lost = K + 1 - resumed_at` epochs (the one in
progress included). The seconds lost are those epochs at the killed attempt's median epoch time (from its MLflow
metric timestamps).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
AUTOML = str(Path(sys.executable).with_name("automl"))
STUDY = """
name: resume
dataset: mnist1d
objective: {{metric: val_accuracy, direction: maximize}}
budget: {{trials: 1, max_epochs: {epochs}}}
sampler: random
pruner: none
seed: 0
{checkpoints}
search:
  architecture: {{mlp: {{depth: 2, width: {width}}}}}
  activation: relu
  loss: cross_entropy
  optimizer: {{adam: {{lr: 0.001}}}}
  batch_size: 32
"""
POLICIES = {"default (every epoch, at most every 5 s)": "", "every epoch": "checkpoints: {min_seconds: 0}"}


def killed_run(folder: Path, epochs: int, kill_at: int, width: int, checkpoints: str) -> tuple[int, float]:
    """Run the study, kill its worker at the start of epoch `kill_at`; returns (epoch resumed at, median epoch s)."""
    (folder / "plugins").mkdir()
    shutil.copy(ROOT / "tests" / "fixtures" / "pause.py", folder / "plugins" / "pause.py")
    (folder / "study.yaml").write_text(STUDY.format(epochs=epochs, width=width, checkpoints=checkpoints))
    env = {**os.environ, "AUTOML_TEST_PAUSE_EPOCH": str(kill_at)}
    proc = subprocess.Popen(
        [AUTOML, "run", "study.yaml", "--threads", "1"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pid_file = folder / "paused.pid"
    while not pid_file.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"automl run ended before epoch {kill_at}:\n{proc.communicate()}")
        time.sleep(0.1)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    out, err = proc.communicate(timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"automl run exited {proc.returncode}:\n{out}\n{err}")
    study = optuna.load_study(
        study_name="resume",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(folder / "optuna.journal"))
        ),
    )
    retry = study.trials[-1]
    assert retry.state == optuna.trial.TrialState.COMPLETE and len(retry.intermediate_values) == epochs
    resumed_at = (retry.user_attrs.get("resumed") or {}).get("epoch", 0)
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("resume")
    killed = next(
        r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("optuna.trial_number") == "0"
    )
    stamps = sorted(m.timestamp for m in client.get_metric_history(killed.info.run_id, "val_accuracy"))
    epoch_seconds = statistics.median(b - a for a, b in zip(stamps, stamps[1:])) / 1000 if len(stamps) > 1 else 0.0
    return resumed_at, epoch_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--kill-at", type=int, default=100)
    parser.add_argument("--width", type=int, default=256)
    args = parser.parse_args()
    for name, checkpoints in POLICIES.items():
        with tempfile.TemporaryDirectory(prefix="automl-resume-") as tmp:
            resumed_at, epoch_seconds = killed_run(Path(tmp), args.epochs, args.kill_at, args.width, checkpoints)
        lost = args.kill_at + 1 - resumed_at
        print(
            f"epochs_lost_per_kill mnist1d-mlp{args.width} {lost} (policy {name}: killed during epoch "
            f"{args.kill_at}, the retry resumed at epoch {resumed_at}; {lost} x {epoch_seconds:.2f} s = "
            f"{lost * epoch_seconds:.1f} s of training lost; target: 1, the epoch in progress)",
            flush=True,
        )


if __name__ == "__main__":
    main()
