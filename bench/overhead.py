"""Overhead benchmark (shared/BENCHMARKS.md): `automl` against a bare PyTorch loop, same run.

The workload: MNIST-1D (3600 train / 400 validation by a fixed permutation, seed 0), MLP
40->w->w->10 with ReLU, Adam, batch 100, 15 epochs, 10 fixed (width, lr) configurations
enqueued, no pruning, MLflow tracking on, trial i seeded with i, one CPU thread.
Wall time counts from after imports and data generation to the end of the last trial: `automl run`
starts a worker process, whose own start (imports, data, study: it reports the seconds) is taken
out of `overhead_ratio` and kept in `end_to_end_ratio`.

    .venv/bin/python bench/overhead.py [--rounds 2] [--epochs 15] [--checkpoint-rounds 3]

Prints one summary line per figure, e.g. `overhead_ratio mnist1d-mlp 1.21 (...)`.

Checkpointing on vs off: the same `automl run` with checkpoints off (`every_epochs: 0`), with the default policy
(every epoch, at most every 5 s) and with a checkpoint at every epoch (`min_seconds: 0`), in alternating order,
whole `automl run` wall time each; `checkpoint_ratio` = default / off (target <= 1.05).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch
from torch import nn

from orchestrator.cli import main as automl
from orchestrator.plugins import load_registry
from orchestrator.session import open_study
from orchestrator.studyfile import load_study
from orchestrator.training import quiet_libraries

CONFIGS = [(64, 1e-3), (128, 1e-3), (256, 1e-3), (512, 1e-3), (100, 2e-3),
           (64, 3e-3), (128, 3e-3), (256, 5e-3), (512, 5e-3), (100, 1e-2)]
BATCH = 100

STUDY = """
name: overhead
dataset: {{name: mnist1d, val_fraction: 0.1}}
objective: {{metric: val_accuracy, direction: maximize}}
budget: {{trials: {trials}, max_epochs: {epochs}}}
sampler: random
pruner: none
seed: 0
search:
  architecture:
    mlp: {{depth: 2, width: {{low: 16, high: 1024}}}}
  activation: relu
  loss: cross_entropy
  optimizer:
    adam: {{lr: {{low: 0.0001, high: 0.1, log: true}}, beta1: 0.9, beta2: 0.999}}
  batch_size: {batch}
{extra}"""


def bare_loop(data, epochs: int) -> list[float]:
    """The limit: a plain PyTorch loop over tensors with index batching, validation every epoch."""
    x_train, y_train = data.x_train.flatten(1), data.y_train
    x_val, y_val = data.x_val.flatten(1), data.y_val
    x_test, y_test = data.x_test.flatten(1), data.y_test
    accuracies = []
    for i, (width, lr) in enumerate(CONFIGS):
        torch.manual_seed(i)
        model = nn.Sequential(nn.Linear(40, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                              nn.Linear(width, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        loss_fn = nn.CrossEntropyLoss()
        generator = torch.Generator().manual_seed(i)
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(x_train), generator=generator)
            for start in range(0, len(order), BATCH):
                idx = order[start:start + BATCH]
                loss = loss_fn(model(x_train[idx]), y_train[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                val_acc = (model(x_val).argmax(1) == y_val).float().mean().item()
        with torch.no_grad():
            (model(x_test).argmax(1) == y_test).float().mean().item()
        accuracies.append(val_acc)
    return accuracies


READY = re.compile(r"worker (\S+) ready after ([0-9.]+) s")


def orchestrated(workdir: Path, epochs: int, configs: list[tuple[int, float]] = CONFIGS,
                 args: tuple[str, ...] = ("--threads", "1"), extra: str = "") -> tuple[float, list[float]]:
    """The configurations enqueued and run by `automl run ARGS` from this process; returns the wall
    seconds and each worker's start-up seconds (imports, data, study) as the workers report them."""
    study_file = workdir / "overhead.yaml"
    study_file.write_text(textwrap.dedent(STUDY.format(trials=len(configs), epochs=epochs, batch=BATCH, extra=extra)))
    previous = Path.cwd()
    os.chdir(workdir)
    start = time.perf_counter()
    spec = load_study(study_file, load_registry())
    study = open_study(spec, f"journal:{workdir / 'optuna.journal'}")
    for width, lr in configs:
        study.enqueue_trial({"architecture.mlp.width": width, "optimizer.adam.lr": lr})
    output = io.StringIO()
    stdout, sys.stdout = sys.stdout, output
    try:
        code = automl(["run", str(study_file), *args])
    finally:
        sys.stdout = stdout
    elapsed = time.perf_counter() - start
    os.chdir(previous)
    assert code == 0, f"automl run exited {code}:\n{output.getvalue()}"
    check_completed(workdir / "optuna.journal", len(configs), epochs)
    return elapsed, [float(seconds) for _, seconds in READY.findall(output.getvalue())]


def check_completed(journal: Path, trials: int, epochs: int) -> None:
    """The run did what the workload says: `trials` complete trials of `epochs` epochs each."""
    import optuna

    study = optuna.load_study(study_name="overhead", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == trials, f"{len(complete)} of {trials} trials completed"
    assert all(len(t.intermediate_values) == epochs for t in complete), "a trial did not train every epoch"


CHECKPOINT_POLICIES = {"off": "checkpoints: {every_epochs: 0}\n", "default": "",
                       "every epoch": "checkpoints: {min_seconds: 0}\n"}


def checkpoint_rounds(rounds: int, epochs: int) -> dict[str, list[float]]:
    """Whole `automl run` seconds per checkpoint policy, in alternating order (a fresh folder each run)."""
    times: dict[str, list[float]] = {name: [] for name in CHECKPOINT_POLICIES}
    for round_ in range(rounds):
        order = list(CHECKPOINT_POLICIES)[round_ % 3:] + list(CHECKPOINT_POLICIES)[:round_ % 3]
        for name in order:
            with tempfile.TemporaryDirectory(prefix="automl-bench-") as tmp:
                prepare_tracking_store(Path(tmp))
                total, _ = orchestrated(Path(tmp), epochs, extra=CHECKPOINT_POLICIES[name])
                left = list((Path(tmp) / "checkpoints").rglob("*.pt"))
                assert not left, f"checkpoints left behind: {left}"
            times[name].append(total)
        print(f"checkpoint round {round_}: " + ", ".join(f"{name} {times[name][-1]:.2f} s" for name in times),
              flush=True)
    return times


def prepare_tracking_store(workdir: Path) -> float:
    """Create mlflow.db's schema once (a one-time cost per folder, reported apart); returns seconds."""
    from mlflow.tracking import MlflowClient

    start = time.perf_counter()
    MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}").search_experiments()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of each side (median)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--checkpoint-rounds", type=int, default=3, help="alternating rounds of checkpointing "
                        "off / default / every epoch (0 skips them)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    quiet_libraries()
    registry = load_registry()
    data = registry.get("dataset", "mnist1d").spec.build({"val_fraction": 0.1, "train_samples": 3800}, 0)
    bare_loop(data, 1)  # warm up kernels and allocator once, for both sides

    bare_times, orch_times, total_times, start_times, schema_times = [], [], [], [], []
    for round_ in range(args.rounds):
        start = time.perf_counter()
        accuracies = bare_loop(data, args.epochs)
        bare_times.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory(prefix="automl-bench-") as tmp:
            schema_times.append(prepare_tracking_store(Path(tmp)))
            total, ready = orchestrated(Path(tmp), args.epochs)
        total_times.append(total)
        start_times.append(ready[0])
        orch_times.append(total - ready[0])
        print(f"round {round_}: bare {bare_times[-1]:.2f} s, automl {orch_times[-1]:.2f} s + worker start "
              f"{ready[0]:.2f} s (bare best val_accuracy {max(accuracies):.3f})", flush=True)

    bare, orch, total = (statistics.median(bare_times), statistics.median(orch_times),
                         statistics.median(total_times))
    n = len(CONFIGS)
    print(f"overhead_ratio mnist1d-mlp {orch / bare:.2f} (orchestrator {orch:.1f} s / bare loop {bare:.1f} s, "
          f"{n} trials, {args.epochs} epochs, median of {args.rounds} rounds; worker start-up excluded)")
    print(f"end_to_end_ratio mnist1d-mlp {total / bare:.2f} (including the worker process start-up of "
          f"{statistics.median(start_times):.1f} s: imports, data, study; paid once per worker, not per trial)")
    print(f"trial_fixed_cost_ms mnist1d-mlp {(orch - bare) / n * 1000:.0f} "
          f"(bare trial {bare / n:.2f} s, automl trial {orch / n:.2f} s)")
    print(f"tracking_schema_setup_s {statistics.median(schema_times):.2f} "
          "(one-time creation of mlflow.db's tables in a new folder, not in the ratio)")
    if args.checkpoint_rounds:
        times = {name: statistics.median(values) for name, values in
                 checkpoint_rounds(args.checkpoint_rounds, args.epochs).items()}
        print(f"checkpoint_ratio mnist1d-mlp {times['default'] / times['off']:.3f} (default policy {times['default']:.1f} s"
              f" / checkpoints off {times['off']:.1f} s, whole automl run, median of {args.checkpoint_rounds}; "
              "target <= 1.05)")
        print(f"checkpoint_every_epoch_ratio mnist1d-mlp {times['every epoch'] / times['off']:.3f} "
              f"(a checkpoint after each of the {args.epochs} epochs of every trial: {times['every epoch']:.1f} s)")


if __name__ == "__main__":
    main()
