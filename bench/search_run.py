"""One run of the search benchmark: `automl run` of a task's study with one strategy and seed, in a fresh folder,
pinned to one CPU core, watched until it reaches the target, its time is up, or it ends.

Execution, alike for every run: `automl run study.yaml --no-tracking --workers 1 --threads 1`. The time of a trial
is the wall time from the process start (interpreter, imports, data, study set-up included) to the trial's
`datetime_complete`. Select by validation, report by test: the incumbent is the COMPLETE trial with the best
validation objective so far, and the run's quality is the incumbent's test metric (the `test_metrics` user
attribute, never used to pick).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

JOURNAL = "optuna.journal"
STOP_GRACE_SECONDS = 60
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def write_study(
    template: Path,
    data_file: Path,
    folder: Path,
    sampler: Any,
    pruner: Any,
    seed: int,
    seconds: float,
    budget: dict[str, Any] | None = None,
) -> Path:
    """The task's study with this run's strategy and seed, its data named by absolute path; the time decides
    (budget.timeout is only a safety net should the benchmark die before its run)."""
    data = yaml.safe_load(template.read_text())
    data["seed"], data["sampler"], data["pruner"] = seed, sampler, pruner
    data["dataset"] = {**data["dataset"], "path": str(data_file)}
    data["budget"] = {**data["budget"], "trials": 100000, "timeout": int(seconds) + 300, **(budget or {})}
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def finished_trials(journal: Path, study_name: str, started: dt.datetime, quality: str) -> list[dict[str, Any]]:
    """Every finished trial of a run's journal: number, state, validation value, test quality, seconds, epochs."""
    if not journal.exists():
        return []
    try:
        study = optuna.load_study(study_name=study_name, storage=JournalStorage(JournalFileBackend(str(journal))))
    except KeyError:
        return []
    rows = []
    for trial in study.get_trials(deepcopy=False, states=FINISHED):
        if trial.datetime_complete is None:
            continue
        test = (trial.user_attrs.get("test_metrics") or {}).get(quality)
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": trial.values[0] if trial.state == TrialState.COMPLETE and trial.values else None,
                "quality": None if test is None else float(test),
                "seconds": round((trial.datetime_complete - started).total_seconds(), 2),
                "epochs": len(trial.intermediate_values),
            }
        )
    return sorted(rows, key=lambda r: r["seconds"])


def quality_curve(trials: list[dict[str, Any]], maximize: bool) -> list[tuple[float, float]]:
    """(seconds, test quality of the incumbent) at each change of incumbent (best validation value, COMPLETE)."""
    curve: list[tuple[float, float]] = []
    best = None
    for row in sorted(trials, key=lambda r: r["seconds"]):
        if row["state"] != "COMPLETE" or row["value"] is None or row["quality"] is None:
            continue
        if best is None or (row["value"] > best if maximize else row["value"] < best):
            best = row["value"]
            curve.append((row["seconds"], row["quality"]))
    return curve


def reached(curve: list[tuple[float, float]], target: float, sign: int) -> bool:
    return any(sign * quality >= sign * target for _, quality in curve)


class Run:
    """One `automl run` process in its own folder, pinned to one core."""

    def __init__(self, study: Path, core: int | None, seconds: float, quality: str, maximize: bool, label: str) -> None:
        self.seconds, self.quality, self.maximize, self.label = seconds, quality, maximize, label
        self.folder = study.parent
        self.study_name = yaml.safe_load(study.read_text())["name"]
        command = [
            str(Path(sys.executable).with_name("automl")),
            "run",
            study.name,
            "--no-tracking",
            "--workers",
            "1",
            "--threads",
            "1",
        ]
        self.log = open(self.folder / "run.log", "w")
        self.started = dt.datetime.now()
        self.began = time.monotonic()
        pin = (lambda: os.sched_setaffinity(0, {core})) if core is not None else None
        self.process = subprocess.Popen(
            command,
            cwd=self.folder,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=pin,
        )
        self.stop_reason: str | None = None

    def trials(self) -> list[dict[str, Any]]:
        return finished_trials(self.folder / JOURNAL, self.study_name, self.started, self.quality)

    def check(self, target: float | None, sign: int) -> bool:
        """True when the run should stop: its process ended, its time is up, or it reached the target."""
        if self.process.poll() is not None:
            self.stop_reason = f"exited {self.process.returncode}"
        elif time.monotonic() - self.began >= self.seconds:
            self.stop_reason = "time"
        elif target is not None and reached(quality_curve(self.trials(), self.maximize), target, sign):
            self.stop_reason = "target"
        return self.stop_reason is not None

    def wait(self, timeout: float) -> None:
        """Wait for the process to end by itself (a probe's small budget)."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        self.stop_reason = self.stop_reason or ("time" if self.process.poll() is None else "ended")

    def finish(self) -> dict[str, Any]:
        """Stop the process (SIGINT: it marks its running trial and exits 130); the run's record. Its folder is
        removed unless the run looks broken (kept for a look)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        ended = round(min(time.monotonic() - self.began, self.seconds), 2)
        self.log.close()
        trials = [t for t in self.trials() if t["seconds"] <= self.seconds]
        code = self.process.returncode
        if code not in (0, 130) or not trials:
            tail = "\n".join((self.folder / "run.log").read_text().splitlines()[-30:])
            print(
                f"warning: {self.label}: automl run exited {code} with {len(trials)} finished trial(s); its "
                f"output ends ({self.folder}):\n{tail}",
                file=sys.stderr,
                flush=True,
            )
        else:
            shutil.rmtree(self.folder, ignore_errors=True)
        return {"stop": self.stop_reason, "exit_code": code, "end": ended, "trials": trials}

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def run_folder(label: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"automl-search-{label}-"))
