"""How long a user waits for the quick commands: `automl --help`, `automl plugins`, `automl validate` (the
quickstart) and `automl show` (the quickstart's finished study), each as a whole process from a shell, the
median of --repeats runs after one warm-up (a warm install: files in the page cache). Target: <= 1.5 s each.

    .venv/bin/python bench/cli.py [--repeats 5]

A study for `show` is made first in a temporary folder (a quickstart with 2 trials of 1 epoch, no tracking).
Prints one line per command and the slowest of the four; keep the machine otherwise idle while it runs.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
AUTOML = str(Path(sys.executable).with_name("automl"))
TARGET_SECONDS = 1.5


def timed(command: list[str], folder: Path) -> float:
    """One command's wall seconds, exiting with its output on failure."""
    return timed_run(command, folder)[0]


def timed_run(command: list[str], folder: Path, env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run `command` in `folder`: its wall seconds, its CPU seconds (user + system of the process and its
    children) and its standard output; exits with its output on failure."""
    cpu, began = _children_cpu(), time.perf_counter()
    proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return wall, _children_cpu() - cpu, proc.stdout


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="automl-cli-") as name:
        folder = Path(name)
        study = yaml.safe_load((ROOT / "studies" / "quickstart.yaml").read_text())
        study["budget"] = {**study["budget"], "trials": 2, "max_epochs": 1}
        (folder / "quickstart.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
        timed([AUTOML, "run", "quickstart.yaml", "--no-tracking"], folder)
        commands = {
            "--help": [AUTOML, "--help"],
            "plugins": [AUTOML, "plugins"],
            "validate": [AUTOML, "validate", "quickstart.yaml"],
            "show": [AUTOML, "show", "quickstart.yaml"],
        }
        medians = {}
        for label, command in commands.items():
            timed(command, folder)  # warm-up
            runs = [timed(command, folder) for _ in range(args.repeats)]
            medians[label] = statistics.median(runs)
            print(
                f"automl {label:<9} {medians[label]:.2f} s (median of {args.repeats}; runs "
                + ", ".join(f"{r:.2f}" for r in runs)
                + ")",
                flush=True,
            )
        slowest = max(medians, key=medians.get)
        verdict = "meets" if medians[slowest] <= TARGET_SECONDS else "misses"
        print(f"cli_start_seconds max {medians[slowest]:.2f} ({slowest}); target <= {TARGET_SECONDS} s: {verdict}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
