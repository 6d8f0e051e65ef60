"""Image folder start-up (issue 24, item 8): how long after `automl run` a study on a folder of 10,000 small PNGs
is ready to train, on the embedded defaults (MLflow in SQLite, one worker).

Workload: a folder of --images PNGs of 16x16 (three classes, noise and a shape, written once under --folder), a
study of one trial, one epoch, a small MLP (training is not what is measured), tracked. Figures, each the median
of --rounds runs with the range:
- ready: wall seconds from starting `automl run` to the worker's "ready" line (imports, the folder read, the study
  set up): what a user waits before the first trial starts;
- the worker's own split of it (imports and data; study set-up), as it prints them;
- the whole run: wall and CPU seconds (every process: supervisor, worker, the best model logged at the end);
- `automl validate`: wall seconds.
Target: ready <= 10 s on 2 cores. Printed whether it meets it or not.

    .venv/bin/python bench/image_startup.py [--images 10000] [--rounds 3] \
        | tee bench/baselines/image-startup-$(git rev-parse --short HEAD).txt
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from cli import timed  # bench/cli.py: one command's wall seconds, exiting with its output on failure
from PIL import Image

AUTOML = str(Path(sys.executable).with_name("automl"))
TARGET_SECONDS = 10.0
STUDY = """
name: startup
dataset: {name: image_folder, path: images, size: 16, colour: rgb}
objective: {metric: val_accuracy, direction: maximize}
budget: {trials: 1, max_epochs: 1}
pruner: none
seed: 0
search:
  architecture: {mlp: {depth: 1, width: 16}}
  activation: relu
  loss: cross_entropy
  optimizer: {adam: {lr: 0.001}}
  batch_size: 256
"""
READY = re.compile(r"ready after ([\d.]+) s \(imports and data ([\d.]+) s, study set-up ([\d.]+) s\)")


def write_folder(root: Path, images: int, seed: int = 0) -> None:
    """`images` PNGs of 16x16 in three class folders (kept between invocations when the count matches)."""
    marker = root / f".{images}-written"
    if marker.exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(seed)
    for index in range(images):
        label = index % 3
        folder = root / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (rng.random((16, 16, 3)) * 60).astype(np.uint8)
        pixels[4:12, 4:12, label] = 220
        Image.fromarray(pixels).save(folder / f"{index}.png")
    marker.touch()


def one_run(folder: Path) -> dict[str, float]:
    for stale in ("optuna.journal", "mlflow.db", "mlruns", "mlartifacts", "checkpoints"):
        path = folder / stale
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [AUTOML, "run", "study.yaml", "--workers", "1"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    figures: dict[str, float] = {}
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        match = READY.search(line)
        if match and "ready" not in figures:
            figures["ready"] = time.perf_counter() - start
            figures["worker ready"], figures["worker imports and data"], figures["worker study set-up"] = (
                float(group) for group in match.groups()
            )
    code = proc.wait()
    figures["run wall"] = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures["run CPU"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if code != 0 or "ready" not in figures:
        raise SystemExit(f"automl run exited {code}:\n{''.join(lines)[-3000:]}")
    figures["validate wall"] = timed([AUTOML, "validate", "study.yaml"], folder)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/automl-image-startup"))
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
    ).stdout.strip()
    args.folder.mkdir(parents=True, exist_ok=True)
    write_folder(args.folder / "images", args.images)
    (args.folder / "study.yaml").write_text(STUDY)
    print(
        f"image start-up benchmark: commit {commit}, {os.cpu_count()} cores, {args.images} PNGs of 16x16, "
        f"{args.rounds} rounds, one worker, tracked (SQLite)",
        flush=True,
    )
    rounds = []
    for round_ in range(args.rounds):
        rounds.append(one_run(args.folder))
        print(
            f"  round {round_}: " + ", ".join(f"{key} {value:.1f} s" for key, value in rounds[-1].items()), flush=True
        )
    for key in rounds[0]:
        values = [r[key] for r in rounds]
        print(f"{key:>24}: {statistics.median(values):6.1f} s [{min(values):.1f}-{max(values):.1f}]")
    ready = statistics.median(r["ready"] for r in rounds)
    verdict = "met" if ready <= TARGET_SECONDS else "MISSED"
    print(f"image_startup ready {ready:.1f} s (target <= {TARGET_SECONDS:g} s: {verdict})")


if __name__ == "__main__":
    main()
