"""Calibrate a search benchmark task before it measures anything (protocol: bench/search_protocol.md, Tasks): one
run of random search, the baseline's strategy (seed 0, never one of the benchmark's seeds), for a few minutes on
one core. It prints every trial and the incumbent's test quality over time, so that the task's data, space and
`max_epochs` can be fixed where random search still has room below the best at T/2. Nothing is saved to runs.json;
the printed output goes to bench/baselines/search/calibration-<task>-<commit>.txt.

    .venv/bin/python bench/search_calibrate.py TASK [--minutes 4] [--core 0]

Run it on a quiet machine, like the benchmark.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import optuna
import yaml
from search import OUT, commit, machine
from search_run import Run, quality_curve, run_folder, write_study
from search_tasks import STUDIES, TASKS, prepare

POLL_SECONDS = 2.0
CALIBRATION_SEED = 0


def calibrate(task_name: str, minutes: float, core: int) -> list[str]:
    """One random-search run of the task; the lines of its account (trials, then the incumbent over time)."""
    task = TASKS[task_name]
    template = STUDIES / task.study
    maximize = (yaml.safe_load(template.read_text()).get("objective") or {}).get("direction", "maximize") == "maximize"
    seconds = minutes * 60
    study = write_study(
        template, prepare(task), run_folder(f"calibrate-{task.name}"), "random", "none", CALIBRATION_SEED, seconds
    )
    run = Run(study, core, seconds, task.quality, maximize, f"calibrate {task.name}")
    while not run.check(None, task.sign):
        time.sleep(POLL_SECONDS)
    result = run.finish()
    lines = [
        f"calibration of {task.name} ({task.role}): random search, seed {CALIBRATION_SEED}, {minutes:g} min "
        f"on core {core}; commit {commit()}; {machine()}",
        f"{len(result['trials'])} finished trials; run stopped ({result['stop']}) at {result['end']:.0f} s",
        f"{'trial':>5} {'state':>8} {'seconds':>8} {'epochs':>6} {'validation':>11} {task.quality:>13}",
    ]
    for row in result["trials"]:
        value = "" if row["value"] is None else f"{row['value']:.4f}"
        quality = "" if row["quality"] is None else f"{row['quality']:.4f}"
        lines.append(
            f"{row['number']:>5} {row['state']:>8} {row['seconds']:>8.0f} {row['epochs']:>6} {value:>11} {quality:>13}"
        )
    curve = quality_curve(result["trials"], maximize)
    lines.append(
        "incumbent (best validation so far) and its test quality: "
        + (", ".join(f"{q:.4f} at {s:.0f} s" for s, q in curve) or "none")
    )
    for share in (0.1, 0.25, 0.5, 1.0):
        held = [q for s, q in curve if s <= share * seconds]
        lines.append(
            f"  at {share:g} T ({share * seconds:.0f} s): " + (f"{held[-1]:.4f}" if held else "no complete trial yet")
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--minutes", type=float, default=4.0, help="the run's length")
    parser.add_argument("--core", type=int, default=0, help="the core it is pinned to")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    lines = calibrate(args.task, args.minutes, args.core)
    print("\n".join(lines))
    path = OUT / f"calibration-{args.task}-{commit()}.txt"
    path.write_text("\n".join(lines) + "\n")
    print(f"saved to {Path(path).relative_to(OUT.parent.parent.parent)}")


if __name__ == "__main__":
    main()
