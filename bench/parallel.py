"""Parallel benchmark (shared/BENCHMARKS.md): W workers on W slots against 1 worker, same study.

The workload: the overhead benchmark's MNIST-1D MLP study (Adam, batch 100, no pruning, MLflow
tracking on) with a fixed list of (width, lr) configurations enqueued, so both sides train exactly
the same trials; one CPU thread per worker. Efficiency = wall(1) / (W * wall(W)), target >= 0.8.
`efficiency` counts the whole `automl run` (worker start-ups included); `steady_efficiency` takes
out the time until the workers reported ready.

With a visible GPU it also runs the packing benchmark: `trials_per_device` K = 1, 2, 4, 8 on one GPU
and reports trials/hour against K = 1 (target >= 3x at K = 8).

    .venv/bin/python bench/parallel.py [--workers 2] [--trials 60] [--epochs 15] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from overhead import AUTOML, CONFIGS, READY, completed_trials, run_process, study_text  # noqa: E402

from orchestrator.quiet import quiet_libraries  # noqa: E402


def configs(count: int) -> list[tuple[int, float]]:
    """`count` configurations: the overhead benchmark's ten, repeated with shifted learning rates."""
    return [
        (width, lr * (1 + 0.1 * (i // len(CONFIGS))))
        for i, (width, lr) in ((i, CONFIGS[i % len(CONFIGS)]) for i in range(count))
    ]


def timed_run(epochs: int, trials: int, args: tuple[str, ...]) -> tuple[float, float]:
    """(wall seconds, wall seconds after the last worker was ready) of one whole `automl run ARGS` process in a
    fresh folder; every enqueued trial is checked to have completed all its epochs."""
    with tempfile.TemporaryDirectory(prefix="automl-parallel-") as tmp:
        folder = Path(tmp)
        (folder / "overhead.yaml").write_text(study_text(epochs, configs=configs(trials)))
        wall, output = run_process([AUTOML, "run", "overhead.yaml", *args], folder)
        completed_trials(folder / "optuna.journal", epochs, trials)
    ready = [float(seconds) for seconds, _, _ in READY.findall(output)]
    return wall, wall - max(ready)


def cpu_benchmark(workers: int, trials: int, epochs: int, rounds: int) -> None:
    single, multi = [], []
    for round_ in range(rounds):
        single.append(timed_run(epochs, trials, ("--workers", "1", "--threads", "1", "--devices", "cpu")))
        multi.append(timed_run(epochs, trials, ("--workers", str(workers), "--threads", "1", "--devices", "cpu")))
        print(f"round {round_}: 1 worker {single[-1][0]:.1f} s, {workers} workers {multi[-1][0]:.1f} s", flush=True)
    wall1, wallw = statistics.median(w for w, _ in single), statistics.median(w for w, _ in multi)
    steady1, steadyw = statistics.median(s for _, s in single), statistics.median(s for _, s in multi)
    print(
        f"parallel_efficiency cpu W={workers} {wall1 / (workers * wallw):.2f} (wall 1 worker {wall1:.1f} s, "
        f"{workers} workers {wallw:.1f} s; {trials} trials x {epochs} epochs; median of {rounds} rounds)"
    )
    print(
        f"steady_efficiency cpu W={workers} {steady1 / (workers * steadyw):.2f} (after the workers were ready: "
        f"{steady1:.1f} s vs {steadyw:.1f} s)"
    )
    print(f"trials_per_hour cpu W=1 {trials / wall1 * 3600:.0f}, W={workers} {trials / wallw * 3600:.0f}")


def gpu_benchmark(trials: int, epochs: int) -> None:
    if not torch.cuda.is_available():
        print("packing gpu: not run (no CUDA device visible to this process)")
        return
    per_hour = {}
    for k in (1, 2, 4, 8):
        wall, _ = timed_run(epochs, trials, ("--devices", "0", "--trials-per-device", str(k)))
        per_hour[k] = trials / wall * 3600
        print(f"trials_per_hour gpu K={k} {per_hour[k]:.0f} ({trials} trials in {wall:.1f} s)", flush=True)
    print(f"packing_gain gpu K=8 {per_hour[8] / per_hour[1]:.2f}x trials/hour against K=1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trials", type=int, default=60, help="enqueued trials (a one-minute study on 1 worker)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gpu-trials", type=int, default=64)
    args = parser.parse_args()
    quiet_libraries()
    cpu_benchmark(args.workers, args.trials, args.epochs, args.rounds)
    gpu_benchmark(args.gpu_trials, args.epochs)


if __name__ == "__main__":
    main()
