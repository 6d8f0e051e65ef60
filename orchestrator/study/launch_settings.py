"""Where a study's workers run: this machine (`local`, the default), a SLURM job array (`slurm`) or actors on a
Ray cluster (`ray`), or a launcher a plugin registers (hook `register_launchers`). The study key `launcher:` holds
the scheduler's settings as data; `--launcher` picks one.

Each launcher is one `LauncherKind`, registered in one place: its name, its settings and their checks, what it
needs on the machine `automl run` runs on, and the factory of its workers' handle (`orchestrator.execution.
launchers.cluster_run.Launcher`), named by import path so that this layer never imports the execution layer."""

from __future__ import annotations

import importlib.util
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from orchestrator.errors import RunError, UserError

_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")  # sbatch --time: minutes, MM:SS, HH:MM:SS, D-HH[:MM[:SS]]
_MEMORY = re.compile(r"^\d+[KMGT]?$")


class LaunchError(RunError):
    """A cluster's scheduler refused or failed to start the workers; the message says why."""


@dataclass(frozen=True)
class SlurmSettings:
    """One job array of `tasks` tasks, each one `automl worker` with its own GPUs and CPUs."""

    tasks: int = 2
    partition: str | None = None
    gpus_per_task: int = 0
    cpus_per_task: int = 1
    mem: str | None = None  # per node, as sbatch takes it: 16G, 4000M
    time: str | None = None  # the time limit, as sbatch takes it: 90, 02:00:00, 1-00:00:00
    account: str | None = None
    signal_seconds: int = 120  # SIGUSR1 this long before the time limit: checkpoint, requeue
    sbatch: tuple[str, ...] = ()  # more sbatch options, as written on its command line
    shared: tuple[Path, ...] = ()  # folders every node sees (besides network file systems, found by themselves)
    logs: Path | None = None  # the tasks' output files (default: slurm/ beside the study file)


@dataclass(frozen=True)
class RaySettings:
    """`workers` actors on the Ray cluster at `address`, each with `num_cpus` CPUs and `num_gpus` GPUs."""

    address: str = "auto"
    workers: int = 2
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    shared: tuple[Path, ...] = ()


@dataclass(frozen=True)
class LauncherSpec:
    """The study's launcher and its checked settings (None for one that takes none, such as `local`)."""

    name: str = "local"
    options: Any = None

    def settings(self) -> Any:
        return self.options


def _nothing_needed() -> str | None:
    return None


@dataclass(frozen=True)
class LauncherKind:
    """One launcher: its `name`; its `settings` (a frozen dataclass, None when it takes none) and `check`, which
    turns the study file's mapping into them (appending (key, value, message) problems); `needs`, a problem
    when this machine cannot submit (None when it can); and `factory`, a callable (or "module:callable", imported
    when used) taking the settings and the StudySpec and returning the workers' handle (None: the workers run
    here, under `automl run`)."""

    name: str
    settings: type | None = None
    check: Callable[[Mapping[str, Any], Path, list], Any] | None = None
    needs: Callable[[], str | None] = _nothing_needed
    factory: str | Callable[[Any, Any], Any] | None = None


def _sbatch_missing() -> str | None:
    if shutil.which("sbatch") is None:
        return "`sbatch` is not on PATH: run `automl run --launcher slurm` where SLURM's commands are (a login node)"
    return None


def _ray_missing() -> str | None:
    if importlib.util.find_spec("ray") is None:
        return "Ray is not installed: pip install 'automl-orchestrator[ray]' (or 'ray[default]')"
    return None


def launcher_kinds(extra: Iterable[LauncherKind] = ()) -> dict[str, LauncherKind]:
    """Every launcher by name: the built-in ones, then those plugins registered."""
    built_in = [
        LauncherKind("local"),
        LauncherKind(
            "slurm", SlurmSettings, _check_slurm, _sbatch_missing, "orchestrator.execution.launchers.slurm:for_study"
        ),
        LauncherKind("ray", RaySettings, _check_ray, _ray_missing, "orchestrator.execution.launchers.ray:for_study"),
    ]
    kinds = {kind.name: kind for kind in built_in}
    for kind in extra:
        if kind.name in kinds:
            raise UserError(f"launcher {kind.name!r} is registered twice: rename the plugin's launcher")
        kinds[kind.name] = kind
    return kinds


def _keys(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def check_launcher(
    raw: Any, study_folder: Path, extra: Iterable[LauncherKind] = ()
) -> tuple[LauncherSpec, list[tuple[str, Any, str]]]:
    """The `launcher:` key: a name (`local`, `slurm`, `ray`, or one a plugin registered in `extra`) or
    `{name: {settings}}`; returns the launcher and the problems found, each (key, value, message)."""
    kinds = launcher_kinds(extra)
    names = ", ".join(kinds)
    problems: list[tuple[str, Any, str]] = []
    if raw is None:
        return LauncherSpec(), problems
    if isinstance(raw, str):
        raw = {raw: {}}
    if not isinstance(raw, dict) or len(raw) != 1:
        problems.append(
            (
                "launcher",
                raw,
                f"must be one of {names}, or a mapping of one of them to "
                "its settings, e.g. {slurm: {tasks: 4, partition: gpu}}",
            )
        )
        return LauncherSpec(), problems
    name, settings = next(iter(raw.items()))
    settings = settings if settings is not None else {}
    if name not in kinds:
        problems.append(("launcher", name, f"unknown launcher; choose one of {names}"))
        return LauncherSpec(), problems
    if not isinstance(settings, dict):
        problems.append((f"launcher.{name}", settings, "must be a mapping of settings"))
        return LauncherSpec(), problems
    kind = kinds[name]
    if kind.settings is None or kind.check is None:
        if settings:
            problems.append((f"launcher.{name}", settings, "takes no settings (workers, devices: see their own keys)"))
        return LauncherSpec(name=name), problems
    for key in settings:
        if key not in _keys(kind.settings):
            problems.append(
                (f"launcher.{name}.{key}", key, "unknown setting; allowed: " + ", ".join(sorted(_keys(kind.settings))))
            )
    return LauncherSpec(name=name, options=kind.check(settings, study_folder, problems)), problems


def _folders(key: str, value: Any, study_folder: Path, problems: list) -> tuple[Path, ...]:
    if value is None:
        return ()
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        problems.append((key, value, "must be a folder path or a list of them (relative to the study file)"))
        return ()
    return tuple((study_folder / Path(v).expanduser()).resolve() for v in values)


def _count(key: str, value: Any, minimum: int, problems: list) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        problems.append((key, value, f"must be an integer >= {minimum}"))
        return None
    return value


def _text(key: str, value: Any, pattern: re.Pattern | None, what: str, problems: list) -> str | None:
    if value is None:
        return None
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not text or (pattern is not None and not pattern.match(text)):
        problems.append((key, value, what))
        return None
    return text


def _check_slurm(raw: Mapping[str, Any], study_folder: Path, problems: list) -> SlurmSettings:
    default = SlurmSettings()
    where = "launcher.slurm"
    extra = raw.get("sbatch", [])
    if isinstance(extra, str):
        extra = extra.split()
    if not isinstance(extra, list) or not all(isinstance(o, str) and o.startswith("-") for o in extra):
        problems.append(
            (
                f"{where}.sbatch",
                raw.get("sbatch"),
                "must be a list of sbatch options such as ['--qos=high', '--constraint=a100']",
            )
        )
        extra = []
    logs = raw.get("logs")
    if logs is not None and not (isinstance(logs, str) and logs):
        problems.append((f"{where}.logs", logs, "must be a folder path (relative to the study file)"))
        logs = None
    return SlurmSettings(
        tasks=_count(f"{where}.tasks", raw.get("tasks"), 1, problems) or default.tasks,
        partition=_text(f"{where}.partition", raw.get("partition"), None, "must be a partition name", problems),
        gpus_per_task=_count(f"{where}.gpus_per_task", raw.get("gpus_per_task"), 0, problems) or 0,
        cpus_per_task=_count(f"{where}.cpus_per_task", raw.get("cpus_per_task"), 1, problems) or 1,
        mem=_text(f"{where}.mem", raw.get("mem"), _MEMORY, "must be a size as sbatch takes it: 4000M, 16G", problems),
        time=_text(
            f"{where}.time",
            raw.get("time"),
            _TIME,
            "must be a time limit as sbatch takes it: minutes, HH:MM:SS or D-HH:MM:SS",
            problems,
        ),
        account=_text(f"{where}.account", raw.get("account"), None, "must be an account name", problems),
        signal_seconds=_count(f"{where}.signal_seconds", raw.get("signal_seconds"), 1, problems)
        or default.signal_seconds,
        sbatch=tuple(extra),
        shared=_folders(f"{where}.shared", raw.get("shared"), study_folder, problems),
        logs=(study_folder / Path(logs).expanduser()).resolve() if logs else None,
    )


def _check_ray(raw: Mapping[str, Any], study_folder: Path, problems: list) -> RaySettings:
    default = RaySettings()
    where = "launcher.ray"
    numbers = {}
    for key in ("num_cpus", "num_gpus"):
        value = raw.get(key, getattr(default, key))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            problems.append((f"{where}.{key}", value, "must be a number >= 0"))
            value = getattr(default, key)
        numbers[key] = float(value)
    return RaySettings(
        address=_text(
            f"{where}.address",
            raw.get("address"),
            None,
            "must be a Ray address: auto, HOST:PORT or ray://HOST:PORT",
            problems,
        )
        or default.address,
        workers=_count(f"{where}.workers", raw.get("workers"), 1, problems) or default.workers,
        shared=_folders(f"{where}.shared", raw.get("shared"), study_folder, problems),
        **numbers,
    )
