"""Thread policy benchmark (issue 24, item 7): does the default CPU thread count fall off the cliff where PyTorch's
threads wait for a core that another job keeps busy?

Workload: a 1-trial study of a CNN on an image folder written by scripts/make_shapes.py (480 images of 16x16,
3 classes), --epochs epochs, batch 32, --no-tracking, one worker. Three settings side by side in one invocation,
interleaved round by round: the default (no --threads: the worker's share of the cores), --threads 1 and
--threads 2. Two conditions: idle, and busy (another process spinning on the CPU the whole time, unpinned, as a
job beside it would). Each figure is the whole `automl run` process: wall seconds and CPU seconds (children
included), the median of --rounds with the range.

Targets: busy: the default within 1.1x of the best of the three; idle: the default within 1.1x of --threads 2.
The figures are printed whether or not they meet them.

    .venv/bin/python bench/threads.py [--rounds 3] [--epochs 6] \
        | tee bench/baselines/threads-$(git rev-parse --short HEAD).txt
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AUTOML = str(Path(sys.executable).with_name("automl"))
SETTINGS = {"default": (), "threads 1": ("--threads", "1"), "threads 2": ("--threads", "2")}
STUDY = """
name: threads
dataset: {{name: image_folder, path: images, size: 16, colour: rgb}}
objective: {{metric: val_accuracy, direction: maximize}}
budget: {{trials: 1, max_epochs: {epochs}}}
pruner: none
seed: 0
search:
  architecture: cnn
  activation: relu
  loss: cross_entropy
  optimizer: adam
  batch_size: 32
"""


def timed(folder: Path, flags: tuple[str, ...]) -> tuple[float, float]:
    """(wall, CPU) seconds of one `automl run` in `folder` (a fresh journal each time)."""
    (folder / "optuna.journal").unlink(missing_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [AUTOML, "run", "study.yaml", "--no-tracking", "--workers", "1", *flags],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-3000:]
        raise SystemExit(f"automl run {' '.join(flags)} exited {done.returncode}:\n{output}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def spinner() -> subprocess.Popen:
    """Another job: one process keeping a CPU busy."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)


def measure(folder: Path, rounds: int, busy: bool) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in SETTINGS}
    load = spinner() if busy else None
    try:
        for round_ in range(rounds):
            for name, flags in SETTINGS.items():
                results[name].append(timed(folder, flags))
                wall, cpu = results[name][-1]
                print(
                    f"  {'busy' if busy else 'idle'} round {round_}: {name}: wall {wall:.1f} s, CPU {cpu:.1f} s",
                    flush=True,
                )
    finally:
        if load is not None:
            load.kill()
            load.wait()
    return results


def report(condition: str, results: dict[str, list[tuple[float, float]]], against: str | None) -> None:
    walls = {name: statistics.median(w for w, _ in runs) for name, runs in results.items()}
    print(f"{condition}:")
    for name, runs in results.items():
        cpus = [c for _, c in runs]
        print(
            f"  {name:<10} wall {walls[name]:6.1f} s [{min(w for w, _ in runs):.1f}-{max(w for w, _ in runs):.1f}]"
            f"  CPU {statistics.median(cpus):6.1f} s"
        )
    reference = against or min(walls, key=walls.get)  # type: ignore[arg-type]
    ratio = walls["default"] / walls[reference]
    print(f"  default / {reference}: {ratio:.2f}x (target <= 1.10: {'met' if ratio <= 1.10 else 'MISSED'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from scripts.make_shapes import write_shapes

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    print(
        f"threads benchmark: commit {commit.stdout.strip()}, {os.cpu_count()} cores, {args.rounds} rounds, "
        f"{args.epochs} epochs; 480 images of 16x16, one worker, one trial",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="automl-threads-") as tmp:
        folder = Path(tmp)
        write_shapes(folder / "images", per_class=160, size=16)
        (folder / "study.yaml").write_text(STUDY.format(epochs=args.epochs))
        idle = measure(folder, args.rounds, busy=False)
        busy = measure(folder, args.rounds, busy=True)
    report("idle", idle, "threads 2")
    report("busy (another process spinning on one CPU)", busy, None)


if __name__ == "__main__":
    main()
