"""A launcher is registered in one place (orchestrator/study/launch_settings.py's LauncherKind), and a plugin adds
one through the hook `register_launchers`: here one that runs each task as a local subprocess. The study key
`launcher:` checks its settings, and `automl run` runs the study on its tasks to exactly the budget."""

from __future__ import annotations

import subprocess

from conftest import AUTOML, TINY_STUDY, load_optuna

from orchestrator.records import WORKER_ATTR

LAUNCHER_PLUGIN = """
import os
import subprocess
from dataclasses import dataclass

from orchestrator import LauncherKind, hookimpl


@dataclass(frozen=True)
class Settings:
    tasks: int = 2
    shared: tuple = ()


def check(raw, folder, problems):
    tasks = raw.get("tasks", 2)
    if isinstance(tasks, bool) or not isinstance(tasks, int) or tasks < 1:
        problems.append(("launcher.subprocesses.tasks", tasks, "must be an integer >= 1"))
        tasks = 2
    return Settings(tasks, tuple((folder / path).resolve() for path in raw.get("shared", [])))


class Subprocesses:
    def __init__(self, settings, spec):
        self.settings, self.tasks = settings, []

    def submit(self, worker, env, workdir):
        self.tasks = [
            subprocess.Popen([*worker, "--worker-id", f"task{i}"], env={**os.environ, **env}, cwd=workdir,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for i in range(self.settings.tasks)
        ]
        return "submitted"

    def active(self):
        return sum(task.poll() is None for task in self.tasks)

    def cancel(self):
        for task in self.tasks:
            task.terminate()

    def plan(self):
        return f"{self.settings.tasks} subprocess task(s)"

    def describe(self):
        return f"{len(self.tasks)} subprocess task(s)"

    def log_files(self):
        return []

    def take_lost(self):
        return []

    def problems(self):
        return [f"a task exited {task.returncode}" for task in self.tasks if task.returncode]

    def close(self):
        pass


@hookimpl
def register_launchers(register):
    register(LauncherKind("subprocesses", Settings, check, factory=Subprocesses))
"""


def write(workdir, launcher: str) -> None:
    (workdir / "plugins").mkdir(exist_ok=True)
    (workdir / "plugins" / "subprocess_launcher.py").write_text(LAUNCHER_PLUGIN)
    study = TINY_STUDY.replace("budget: {trials: 3, max_epochs: 2}", "budget: {trials: 4, max_epochs: 2}")
    (workdir / "study.yaml").write_text(study + f"launcher: {launcher}\n")


def test_a_plugins_launcher_runs_the_study_on_its_tasks_to_exactly_its_budget(workdir):
    write(workdir, "{subprocesses: {tasks: 2, shared: ['.']}}")
    run = subprocess.run(
        [AUTOML, "run", "study.yaml", "--no-tracking"], cwd=workdir, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 subprocess task(s), submitted once the study is set up" in run.stdout
    trials = load_optuna(workdir, "tiny").trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    workers = {str(t.user_attrs[WORKER_ATTR]["id"]).split("@")[0] for t in trials}
    assert workers <= {"task0", "task1"} and workers, workers


def test_a_plugins_launcher_settings_are_checked_and_unknown_launchers_named(workdir):
    write(workdir, "{subprocesses: {tasks: 0}}")
    run = subprocess.run([AUTOML, "validate", "study.yaml"], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "launcher.subprocesses.tasks: must be an integer >= 1 (got 0)" in run.stderr
    write(workdir, "kubernetes")
    run = subprocess.run([AUTOML, "validate", "study.yaml"], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert "unknown launcher; choose one of local, slurm, ray, subprocesses (got 'kubernetes')" in run.stderr
