"""The full MNIST-1D search's goal (issue 23): `studies/mnist1d_search.yaml` with the default strategy reaches a test
accuracy of at least 99.5% within 10 minutes on 2 cores, the incumbent chosen by validation, in at least half of 10
seeds.

Each seed: `automl run studies/mnist1d_search.yaml --no-tracking --workers 2 --seed S` in a fresh folder, the
study's timeout set to the limit, nothing else running. The quality at the limit is the test accuracy of the
COMPLETE trial with the best validation accuracy finished by then (time from the process start). Each seed's result
is saved to bench/baselines/search/goal-runs.json as it ends, keyed by the code it ran on (the git trees of
orchestrator/, plugins/ and the study file, and the library versions); a second start resumes.

    .venv/bin/python bench/search_goal.py [--seeds 10] [--minutes 10] [--workers 2] [--report-only]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from search_probe import versions
from search_run import JOURNAL, finished_trials, quality_curve

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT / "studies" / "mnist1d_search.yaml"
OUT = ROOT / "bench" / "baselines" / "search" / "goal-runs.json"
GOAL = 0.995
FIRST_SEED = 20000


def code_key() -> str:
    """The git trees of the training code and the study file (uncommitted changes included), and the versions."""
    paths = ["orchestrator", "plugins", str(STUDY.relative_to(ROOT))]
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", *paths], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    if status.strip():
        sys.exit(f"commit the training code first: the runs are keyed by its git tree\n{status}")
    trees = [
        subprocess.run(
            ["git", "rev-parse", f"HEAD:{p}"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        for p in paths
    ]
    return " ".join(trees + [versions()])


def one_seed(seed: int, seconds: float, workers: int) -> dict[str, Any]:
    """One run of the study to its timeout: the incumbent's test accuracy at the limit and the curve."""
    folder = Path(tempfile.mkdtemp(prefix=f"automl-goal-{seed}-"))
    data = yaml.safe_load(STUDY.read_text())
    data["seed"] = seed
    data["budget"] = {**data["budget"], "timeout": int(seconds), "trials": 100000}
    study = folder / "study.yaml"
    study.write_text(yaml.safe_dump(data, sort_keys=False))
    started, began = dt.datetime.now(), time.monotonic()
    with open(folder / "run.log", "w") as log:
        code = subprocess.run(
            [
                str(Path(sys.executable).with_name("automl")),
                "run",
                study.name,
                "--no-tracking",
                "--workers",
                str(workers),
            ],
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=seconds + 600,
        ).returncode
    ended = time.monotonic() - began
    trials = [
        t for t in finished_trials(folder / JOURNAL, data["name"], started, "test_accuracy") if t["seconds"] <= seconds
    ]
    curve = quality_curve(trials, maximize=True)
    if code != 0 or not trials:
        print(f"warning: seed {seed}: automl run exited {code}; see {folder / 'run.log'}", file=sys.stderr)
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "seed": seed,
        "seconds": seconds,
        "workers": workers,
        "exit_code": code,
        "end": round(ended, 1),
        "trials": len(trials),
        "complete": sum(t["state"] == "COMPLETE" for t in trials),
        "curve": curve,
        "quality": curve[-1][1] if curve else None,
    }


def report(runs: list[dict[str, Any]], seeds: int, seconds: float) -> None:
    reached = [r for r in runs if r["quality"] is not None and r["quality"] >= GOAL]
    qualities = sorted(r["quality"] for r in runs if r["quality"] is not None)
    for r in sorted(runs, key=lambda r: r["seed"]):
        first = next((t for t, q in r["curve"] if q >= GOAL), None)
        when = f">= {GOAL:.1%} at {first:.0f} s" if first is not None else f"never {GOAL:.1%}"
        print(
            f"seed {r['seed']}: test accuracy {r['quality']} at {seconds / 60:g} min ({r['complete']} complete of "
            f"{r['trials']} finished trials); {when}"
        )
    if qualities:
        print(
            f"median test accuracy at {seconds / 60:g} min: {statistics.median(qualities):.4f} "
            f"(range {qualities[0]:.4f}-{qualities[-1]:.4f}, {len(qualities)} seeds)"
        )
    verdict = (
        "met"
        if len(runs) >= seeds and len(reached) * 2 >= seeds
        else "missed"
        if len(runs) >= seeds
        else "not yet decided"
    )
    print(
        f"search_goal mnist1d_search: {len(reached)} of {len(runs)} seeds >= {GOAL:.1%} within "
        f"{seconds / 60:g} min (goal: at least half of {seeds}): {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    key, seconds = code_key(), args.minutes * 60
    saved = json.loads(OUT.read_text())["runs"] if OUT.exists() else []
    mine = [r for r in saved if r["code"] == key and r["seconds"] == seconds and r["workers"] == args.workers]
    todo = [FIRST_SEED + i for i in range(args.seeds) if FIRST_SEED + i not in {r["seed"] for r in mine}]
    print(
        f"search goal: {STUDY.relative_to(ROOT)}, {args.seeds} seeds, {args.minutes:g} min, {args.workers} "
        f"workers; {len(todo)} to go; code {key}",
        flush=True,
    )
    for seed in [] if args.report_only else todo:
        result = {**one_seed(seed, seconds, args.workers), "code": key}
        saved.append(result)
        mine.append(result)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps({"runs": saved}, indent=1) + "\n")
        print(f"seed {seed}: test accuracy {result['quality']} ({result['complete']} complete trials)", flush=True)
    report(mine, args.seeds, seconds)


if __name__ == "__main__":
    main()
