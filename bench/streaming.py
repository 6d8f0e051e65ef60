"""Streamed data larger than memory: writes 4 GiB of inputs as a .npy file, runs `automl run` on a study that
trains one epoch over all of it (`dataset: npy`, streamed through a DataLoader), and prints the peak resident
memory of the whole run (every process: supervisor, worker, loader processes; PSS, so shared pages count once)
beside the data's size.

    .venv/bin/python bench/streaming.py [--gib 4] [--folder /tmp/automl-streaming]

tests/test_streaming.py runs the same measurement and asserts the peak stays far below the data's size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

SAMPLE_FEATURES = 16384  # 64 KiB per sample
STUDY = """
name: streaming
dataset: {{name: npy, path: x.npy, targets: y.npy}}
objective: {{metric: val_accuracy, direction: maximize}}
budget: {{trials: 1, max_epochs: 1}}
pruner: none
workers: 1
seed: 0
search:
  architecture:
    mlp: {{depth: 1, width: 16}}
  activation: relu
  loss: cross_entropy
  optimizer:
    adam: {{lr: 0.001}}
  batch_size: 128
"""


def write_npy(folder: Path, rows: int, features: int, seed: int = 0) -> int:
    """Inputs x.npy (rows, features) and class targets y.npy: the class shifts the first 16 features, so it can
    be learnt. Written block by block with plain file writes (this process never holds, nor maps, all of it).
    Returns the size of x.npy in bytes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    noise = rng.standard_normal((257, features), dtype=np.float32)  # rows repeat a noise block: fast to write
    path = folder / "x.npy"
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle,
            {
                "descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                "fortran_order": False,
                "shape": (rows, features),
            },
        )
        for start in range(0, rows, 257):
            block = noise[: min(257, rows - start)].copy()
            block[:, :16] += (y[start : start + len(block), None] * 2.0 - 1.0).astype(np.float32)
            handle.write(block.tobytes())
    np.save(folder / "y.npy", y)
    return path.stat().st_size


def process_tree(pid: int) -> list[int]:
    """`pid` and every process below it."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            parents.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += parents.get(current, [])
    return found


def pss_mib(pid: int) -> float:
    """Proportional resident memory of one process (shared pages divided among their sharers), in MiB."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_measured(command: list[str], cwd: Path) -> tuple[int, float, str]:
    """Run `command`, sampling the summed resident memory (PSS) of its whole process tree (supervisor, worker,
    data loader processes) every 50 ms; returns its exit code, the peak in MiB, and its output."""
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0.0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], sum(pss_mib(p) for p in process_tree(proc.pid)))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    output, _ = proc.communicate(timeout=600)
    sampler.join()
    return proc.returncode, peak[0], output


def measure(folder: Path, gib: float) -> tuple[int, float, float, float, str]:
    """Write the data into `folder`, run the study there; (exit code, peak MiB, data MiB, seconds, output)."""
    rows = int(gib * 2**30) // (SAMPLE_FEATURES * 4)
    size = write_npy(folder, rows=rows, features=SAMPLE_FEATURES)
    (folder / "study.yaml").write_text(STUDY.format())
    automl = str(Path(sys.executable).with_name("automl"))
    start = time.perf_counter()
    code, peak, output = run_measured([automl, "run", "study.yaml"], folder)
    return code, peak, size / 2**20, time.perf_counter() - start, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=4.0, help="size of the inputs file")
    parser.add_argument(
        "--small-gib",
        type=float,
        default=1 / 16,
        help="the same run on this much data too: how much of the peak the data's size accounts for",
    )
    parser.add_argument("--folder", type=Path, default=Path("/tmp/automl-streaming"))
    args = parser.parse_args()
    peaks = {}
    for gib in (args.small_gib, args.gib):
        shutil.rmtree(args.folder, ignore_errors=True)
        args.folder.mkdir(parents=True)
        code, peak, data, seconds, output = measure(args.folder, gib)
        print(output.strip().splitlines()[-3] if code == 0 else output)
        print(
            f"inputs_mib {data:.0f}  peak_resident_mib {peak:.0f}  ratio {data / peak:.2f}  run_seconds {seconds:.1f}"
            f"  exit_code {code}"
        )
        peaks[data] = peak
    shutil.rmtree(args.folder, ignore_errors=True)
    (small, small_peak), (large, large_peak) = sorted(peaks.items())
    print(
        f"streaming_peak_mib {large_peak:.0f} for {large:.0f} MiB of inputs ({large / large_peak:.1f}x smaller); "
        f"{large_peak - small_peak:+.0f} MiB against {small:.0f} MiB of inputs"
    )


if __name__ == "__main__":
    main()
