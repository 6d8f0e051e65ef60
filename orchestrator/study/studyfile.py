"""Study files: load YAML, validate everything against the registry, resolve a StudySpec.

Nothing here touches storage, MLflow or processes: a study that fails here leaves no trace.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import yaml

from orchestrator.api.components import TASKS
from orchestrator.api.params import Choice, Int, OverrideError, Param, Text, is_finite_number
from orchestrator.api.registry import Registered, Registry
from orchestrator.errors import StudyFileError
from orchestrator.search.samplers import PRUNERS, SAMPLERS, check_options, with_plugins
from orchestrator.search.space import CHOSEN_KINDS, ComponentOptions, RegularizerOption, SearchSpace
from orchestrator.study.launch_settings import LauncherSpec, check_launcher
from orchestrator.training.tasks import MODEL_METRICS, default_objective, objective_choices

TOP_KEYS = {
    "name",
    "description",
    "dataset",
    "task",
    "objective",
    "budget",
    "sampler",
    "pruner",
    "seed",
    "search",
    "storage",
    "tracking_uri",
    "plugins_dir",
    "workers",
    "devices",
    "trials_per_device",
    "worker_memory_mb",
    "heartbeat_seconds",
    "enqueue",
    "constraints",
    "checkpoints",
    "stop_grace_seconds",
    "max_consecutive_failures",
    "launcher",
}
CHECKPOINT_KEYS = {"dir", "every_epochs", "min_seconds", "keep"}
CONSTRAINT_KEYS = {"max_params": "params", "max_latency_ms": "latency_ms"}  # bound -> model metric
BUDGET_KEYS = {"trials", "timeout", "max_epochs"}
OBJECTIVE_KEYS = {"metric", "direction"}
SEARCH_KEYS = set(CHOSEN_KINDS) | {"regularizers", "augmentations", "batch_size", "embedding_dim"}
SHARED_PARAMS: dict[str, Param] = {  # what a study may narrow them to
    "batch_size": Int(1, 8192, default=100, log=True, help="mini-batch size"),
}
INPUT_KIND_PARAMS: dict[str, dict[str, Param]] = {  # shared parameters that only data of one input kind has
    "tokens": {"embedding_dim": Int(2, 1024, default=64, log=True, help="features per token")},
}
# What a study that leaves a shared parameter out searches: the values a practitioner would try.
SHARED_DEFAULT_SEARCH: dict[str, Param] = {
    "batch_size": Choice((32, 64, 128, 256), default=128, help="mini-batch size"),
    "embedding_dim": Choice((16, 32, 64, 128), default=64, help="features per token"),
}
DEFAULT_SAMPLER, DEFAULT_PRUNER = "tpe", "asha"  # chosen on development tasks: bench/search_protocol.md
# Kinds that a study leaving them out does not search over (`all` still does).
DEFAULT_WHEN_OMITTED = {"schedule": "constant"}
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Budget:
    trials: int = 10
    timeout: float | None = None
    max_epochs: int = 10


@dataclass(frozen=True)
class Execution:
    """Where trials run: CPU worker count, devices, trials per GPU, memory limit, RDB heartbeat."""

    workers: int | None = None
    devices: str | tuple[int, ...] = "auto"
    trials_per_device: int = 1
    worker_memory_mb: int | None = None
    heartbeat_seconds: int = 30
    stop_grace_seconds: float = 10.0  # a stopped worker's time to finish its epoch and checkpoint
    max_consecutive_failures: int = 5  # stop the run when this many trials in a row fail alike (0: never)


@dataclass(frozen=True)
class CheckpointSettings:
    """How often trials checkpoint (`every_epochs` 0: never; at most every `min_seconds`), where (`dir`;
    None: a `checkpoints/` folder beside the Optuna journal), and whether finished trials keep theirs."""

    dir: Path | None = None
    every_epochs: int = 1
    min_seconds: float = 5.0
    keep: bool = False


@dataclass(frozen=True)
class StudySpec:
    """A validated study: everything a run needs, resolved against the registered components."""

    name: str
    path: Path
    dataset: Registered
    dataset_params: Mapping[str, Any]
    task: str
    input_kind: str
    metric: str
    direction: str
    budget: Budget
    sampler: tuple[str, Mapping[str, Any]]
    pruner: tuple[str, Mapping[str, Any]]
    seed: int
    space: SearchSpace
    removed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # what `all` (or an omitted kind) lacks because a plugin failed to load
    storage: str | None = None
    tracking_uri: str | None = None
    plugin_dirs: tuple[Path, ...] = ()
    execution: Execution = Execution()
    enqueue: tuple[Mapping[str, Any], ...] = ()  # known configurations (flat params) to try first
    objectives: tuple[tuple[str, str], ...] = ()  # (metric, direction) each; the first is `metric`/`direction`
    constraints: Mapping[str, float] = field(default_factory=dict)  # model metric -> upper bound
    checkpoints: CheckpointSettings = CheckpointSettings()
    launcher: LauncherSpec = LauncherSpec()  # where the workers run: this machine, SLURM or Ray
    strategies: tuple[Any, Any] = (None, None)  # the sampler's and the pruner's Strategy (built-in or a plugin's)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def directions(self) -> list[str]:
        return [direction for _, direction in self.objectives] or [self.direction]

    def fingerprint(self) -> dict[str, Any]:
        """What must not change when a study is resumed."""
        objective: Any = {"metric": self.metric, "direction": self.direction}
        if self.multi_objective:
            objective = [{"metric": m, "direction": d} for m, d in self.objectives]
        return {
            "dataset": self.dataset.spec.name,
            "dataset_params": dict(self.dataset_params),
            "task": self.task,
            "objective": objective,
            "search": self.space.to_json(),
        }

    def resolved_yaml(self) -> str:
        """The study as it runs: the file's keys with every default filled in."""
        resolved = {
            "name": self.name,
            "dataset": {"name": self.dataset.spec.name, **self.dataset_params},
            "task": self.task,
            "objective": (
                [{"metric": m, "direction": d} for m, d in self.objectives]
                if self.multi_objective
                else {"metric": self.metric, "direction": self.direction}
            ),
            **({"constraints": {f"max_{k}": v for k, v in self.constraints.items()}} if self.constraints else {}),
            "budget": vars(self.budget),
            "sampler": {"name": self.sampler[0], **self.sampler[1]},
            "pruner": {"name": self.pruner[0], **self.pruner[1]},
            "seed": self.seed,
            "search": self.space.to_json(),
        }
        return yaml.safe_dump(resolved, sort_keys=False)


class _Checker:
    """Collects problems with their key paths instead of stopping at the first."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[str] = []

    def add(self, key: str, value: Any, message: str) -> None:
        self.problems.append(f"{key}: {message} (got {value!r})" if key else f"{message} (got {value!r})")

    def unknown_keys(self, where: str, data: Mapping[str, Any], allowed: set[str]) -> None:
        for key in data:
            if key not in allowed:
                self.add(
                    _join(where, str(key)),
                    key,
                    f"unknown key{_nearest(str(key), allowed)}; allowed: " + ", ".join(sorted(allowed)),
                )

    def mapping(self, key: str, value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(key, value, "must be a mapping")
            return {}
        return value


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _nearest(name: str, options: Any) -> str:
    close = difflib.get_close_matches(name, [str(o) for o in options], n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _unregistered(kind: str, name: str, registry: Registry, label: str | None = None) -> str:
    """Why `name` is not registered: a plugin failed to load (named, with its error), or no plugin provides it."""
    registered = registry.names(kind)
    unknown = f"unknown {label or kind}{_nearest(name, registered)}"
    if registry.errors:
        failed = "; ".join(str(error) for error in registry.errors)
        return f"{unknown}; it may come from a plugin that failed to load ({failed}); registered: " + ", ".join(
            registered
        )
    return f"{unknown}; no installed or local plugin registers it; registered: " + ", ".join(registered)


def _broken_plugin(entry: Registered, registry: Registry) -> str | None:
    """Why a registered component cannot be trusted: its plugin registered it and then failed (a hook raised)."""
    failed = [error for error in registry.errors if error.plugin == entry.plugin]
    if not failed:
        return None
    return (
        f"its plugin {entry.plugin} failed to load ({'; '.join(e.error for e in failed)}) after "
        "registering it: fix the plugin, or search without this component"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_study_file(path: str | Path) -> dict[str, Any]:
    """Parse a study file with `yaml.safe_load`; errors name the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise StudyFileError(str(path), ["file not found" if not path.exists() else "not a file"])
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise StudyFileError(str(path), [f"YAML syntax error: {line}{exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise StudyFileError(str(path), [f"YAML error: {exc}"]) from None
    if not isinstance(data, dict):
        raise StudyFileError(
            str(path), [f"a study file is a mapping of keys (name, dataset, search, ...), got {type(data).__name__}"]
        )
    return data


def plugin_dirs_of(path: str | Path, data: Mapping[str, Any]) -> list[Path]:
    """The study's `plugins_dir` entries, relative to the study file."""
    raw = data.get("plugins_dir")
    entries = raw if isinstance(raw, list) else [raw] if isinstance(raw, str) else []
    return [(Path(path).parent / entry).resolve() for entry in entries]


def _check_strategies(
    check: _Checker, data: Mapping[str, Any], objectives: int, samplers: Mapping[str, Any], pruners: Mapping[str, Any]
) -> tuple[Any, Any]:
    """The sampler and the pruner (the defaults for one objective, else TPE and none) among the built-in and the
    plugins' ones, and whether they suit several objectives."""
    sampler = _check_strategy(
        check, "sampler", data.get("sampler", DEFAULT_SAMPLER if objectives == 1 else "tpe"), samplers
    )
    pruner = _check_strategy(
        check, "pruner", data.get("pruner", DEFAULT_PRUNER if objectives == 1 else "none"), pruners
    )
    if objectives > 1:
        if pruner[0] not in ("none", "asha"):
            check.add(
                "pruner",
                data.get("pruner"),
                "Optuna's pruners judge one objective per step: a "
                "multi-objective study can use pruner: asha (ranked by non-dominated sorting) or none",
            )
        if sampler[0] in samplers and samplers[sampler[0]].single_objective:
            check.add(
                "sampler",
                data.get("sampler"),
                f"{sampler[0]} optimises a single objective; for several "
                "use tpe, random, grid, qmc, gp, nsga2 or nsga3",
            )
    return sampler, pruner


def _check_settings(check: _Checker, data: Mapping[str, Any]) -> Any:
    """The seed (returned), the storage and tracking URLs and the plugin folders."""
    seed = data.get("seed", 0)
    if not _is_int(seed) or seed < 0:
        check.add("seed", seed, "must be a non-negative integer")
    for key in ("storage", "tracking_uri"):
        if key in data and not isinstance(data[key], str):
            check.add(key, data[key], "must be a string URL")
    raw_dirs = data.get("plugins_dir")
    if raw_dirs is not None and not (
        isinstance(raw_dirs, str) or (isinstance(raw_dirs, list) and all(isinstance(d, str) for d in raw_dirs))
    ):
        check.add("plugins_dir", raw_dirs, "must be a folder path or a list of them")
    return seed


def validate_study(path: str | Path, data: Mapping[str, Any], registry: Registry) -> StudySpec:
    """Check every key of a parsed study file and resolve it; raise StudyFileError listing all problems."""
    check = _Checker(str(path))
    check.unknown_keys("", data, TOP_KEYS)

    name = data.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        check.add("name", name, "required: a study name of letters, digits, '_', '.', '-'")

    dataset, dataset_params = _check_dataset(check, data.get("dataset"), registry, Path(path))
    task, input_kind = _check_task(check, data.get("task"), dataset, dataset_params)
    objectives = _check_objectives(check, data.get("objective"), task)
    metric, direction = objectives[0]
    settings = _check_run_settings(check, data, registry, len(objectives), Path(path))
    # Without a usable data set (or task) the search is still checked, for everything but what depends on the data.
    search_kind, search_task = (input_kind, task) if dataset is not None and task is not None else ("", "")
    space, removed = _check_search(check, data.get("search"), registry, search_kind, search_task)

    enqueue = _check_enqueue(check, data.get("enqueue"), space) if space is not None else ()

    if check.problems:
        raise StudyFileError(str(path), check.problems)
    assert isinstance(name, str) and dataset is not None and task is not None and space is not None
    return StudySpec(
        name=name,
        path=Path(path),
        dataset=dataset,
        dataset_params=dataset_params,
        task=task,
        input_kind=input_kind,
        metric=metric,
        direction=direction,
        space=space,
        removed=tuple(removed),
        missing=tuple(_missing_from_all(data.get("search"), registry)),
        storage=data.get("storage"),
        tracking_uri=data.get("tracking_uri"),
        plugin_dirs=tuple(plugin_dirs_of(path, data)),
        enqueue=enqueue,
        objectives=tuple(objectives),
        **settings,
    )


class _RunSettings(TypedDict):
    """The StudySpec fields of how a study runs, as `_check_run_settings` checked them."""

    budget: Budget
    sampler: tuple[str, Mapping[str, Any]]
    pruner: tuple[str, Mapping[str, Any]]
    constraints: Mapping[str, float]
    seed: int
    execution: Execution
    checkpoints: CheckpointSettings
    launcher: LauncherSpec
    strategies: tuple[Any, Any]


def _check_run_settings(
    check: _Checker, data: Mapping[str, Any], registry: Registry, objectives: int, study_path: Path
) -> _RunSettings:
    """How the study runs, checked in this order: budget, sampler and pruner (built-in or a plugin's), constraints,
    seed and the other settings, execution, checkpoints (on for the asha pruner) and launcher."""
    budget = _check_budget(check, data.get("budget"))
    samplers = with_plugins(SAMPLERS, registry.samplers, "sampler")
    pruners = with_plugins(PRUNERS, registry.pruners, "pruner")
    sampler, pruner = _check_strategies(check, data, objectives, samplers, pruners)
    constraints = _check_constraints(check, data.get("constraints"))
    seed = _check_settings(check, data)
    execution = _check_execution(check, data)
    checkpoints = _check_checkpoints(check, data.get("checkpoints"), study_path)
    if pruner[0] == "asha" and checkpoints.every_epochs == 0:
        check.add(
            "checkpoints.every_epochs",
            0,
            "the asha pruner pauses trials at rungs and resumes them from their "
            "checkpoints: checkpoints must be on (every_epochs >= 1), or choose another pruner",
        )
    launcher, launcher_problems = check_launcher(data.get("launcher"), study_path.resolve().parent, registry.launchers)
    for key, value, message in launcher_problems:
        check.add(key, value, message)
    return _RunSettings(
        budget=budget,
        sampler=sampler,
        pruner=pruner,
        constraints=constraints,
        seed=seed,
        execution=execution,
        checkpoints=checkpoints,
        launcher=launcher,
        strategies=(samplers.get(sampler[0]), pruners.get(pruner[0])),
    )


def _missing_from_all(raw: Any, registry: Registry) -> list[str]:
    """For each component kind the study leaves to `all` (by name, or by omitting it where no default applies), each
    plugin that failed to load: whatever it registers is missing from the search, and why."""
    search = raw if isinstance(raw, dict) else {}
    kinds = [
        f"search.{kind}"
        for kind in CHOSEN_KINDS
        if search.get(kind) == "all" or (search.get(kind) is None and kind not in DEFAULT_WHEN_OMITTED)
    ]
    kinds += [f"search.{key}" for key in ("regularizers", "augmentations") if search.get(key) == "all"]
    return [
        f"{where}: `all` lacks whatever {error.plugin} registers: it failed to load ({error.error})"
        for where in kinds
        for error in registry.errors
    ]


def _check_objectives(check: _Checker, raw: Any, task: str | None) -> list[tuple[str, str]]:
    """One objective (a mapping) or several (a list of them); the first must be a validation metric."""
    if not isinstance(raw, list):
        return [_check_objective(check, raw, task)]
    if len(raw) < 2:
        check.add("objective", raw, "a list needs at least two objectives (give one as a mapping)")
        return [_check_objective(check, None, task)]
    objectives = [_check_objective(check, entry, task, f"objective[{i}]", extra=i > 0) for i, entry in enumerate(raw)]
    if len({m for m, _ in objectives}) != len(objectives):
        check.add("objective", raw, "each metric may appear once")
    return objectives


def _check_constraints(check: _Checker, raw: Any) -> dict[str, float]:
    constraints = check.mapping("constraints", raw)
    check.unknown_keys("constraints", constraints, set(CONSTRAINT_KEYS))
    bounds = {}
    for key, value in constraints.items():
        if key in CONSTRAINT_KEYS:
            if not is_finite_number(value) or value <= 0:
                check.add(f"constraints.{key}", value, "must be a number > 0")
            else:
                bounds[CONSTRAINT_KEYS[key]] = float(value)
    return bounds


def _check_enqueue(check: _Checker, raw: Any, space: SearchSpace) -> tuple[Mapping[str, Any], ...]:
    """Configurations to try first: lists of flat parameter names (as logged) with values in the space."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(entry, dict) for entry in raw):
        check.add("enqueue", raw, "must be a list of mappings of parameter names to values")
        return ()
    known = space.params()
    for index, entry in enumerate(raw):
        for key, value in entry.items():
            where = f"enqueue[{index}].{key}"
            if key not in known:
                check.add(where, value, f"not a searched parameter{_nearest(str(key), known)}")
            elif not known[key].contains(value):
                check.add(where, value, f"outside the search space: {known[key].describe()}")
    return tuple(raw)


def _check_execution(check: _Checker, data: Mapping[str, Any]) -> Execution:
    def positive(key: str, minimum: int = 1) -> Any:
        value = data.get(key)
        if value is not None and (not _is_int(value) or value < minimum):
            check.add(key, value, f"must be an integer >= {minimum}")
            return None
        return value

    devices = data.get("devices", "auto")
    if isinstance(devices, int) and not isinstance(devices, bool):
        devices = [devices]
    if (
        isinstance(devices, list)
        and devices
        and all(_is_int(d) and d >= 0 for d in devices)
        and len(set(devices)) == len(devices)
    ):
        devices = tuple(devices)
    elif devices not in ("auto", "cpu"):
        check.add("devices", devices, "must be auto, cpu, or a list of distinct GPU indices such as [0, 2]")
        devices = "auto"
    grace = data.get("stop_grace_seconds", Execution.stop_grace_seconds)
    if not (is_finite_number(grace) and grace > 0):
        check.add("stop_grace_seconds", grace, "must be a number of seconds > 0")
        grace = Execution.stop_grace_seconds
    failures = positive("max_consecutive_failures", 0)
    return Execution(
        workers=positive("workers"),
        devices=devices,
        trials_per_device=positive("trials_per_device") or 1,
        worker_memory_mb=positive("worker_memory_mb"),
        heartbeat_seconds=positive("heartbeat_seconds") or 30,
        stop_grace_seconds=float(grace),
        max_consecutive_failures=Execution.max_consecutive_failures if failures is None else failures,
    )


def _check_checkpoints(check: _Checker, raw: Any, study_path: Path) -> CheckpointSettings:
    settings = check.mapping("checkpoints", raw)
    check.unknown_keys("checkpoints", settings, CHECKPOINT_KEYS)
    default = CheckpointSettings()
    every = settings.get("every_epochs", default.every_epochs)
    if not _is_int(every) or every < 0:
        check.add("checkpoints.every_epochs", every, "must be an integer >= 0 (0 turns checkpoints off)")
        every = default.every_epochs
    seconds = settings.get("min_seconds", default.min_seconds)
    if not (is_finite_number(seconds) and seconds >= 0):
        check.add("checkpoints.min_seconds", seconds, "must be a number of seconds >= 0")
        seconds = default.min_seconds
    keep = settings.get("keep", default.keep)
    if not isinstance(keep, bool):
        check.add("checkpoints.keep", keep, "must be true or false")
        keep = default.keep
    folder = settings.get("dir")
    if folder is not None and not (isinstance(folder, str) and folder):
        check.add("checkpoints.dir", folder, "must be a folder path (relative to the study file)")
        folder = None
    return CheckpointSettings(
        dir=(study_path.parent / Path(folder).expanduser()).resolve() if folder else None,
        every_epochs=every,
        min_seconds=float(seconds),
        keep=keep,
    )


def _check_dataset(
    check: _Checker, raw: Any, registry: Registry, study_path: Path
) -> tuple[Registered | None, dict[str, Any]]:
    options = raw if isinstance(raw, dict) else {"name": raw}
    name = options.get("name")
    if not isinstance(name, str):
        check.add(
            "dataset" if not isinstance(raw, dict) else "dataset.name",
            name,
            f"required: a data set name, one of {registry.names('dataset')}",
        )
        return None, {}
    if name not in registry.components["dataset"]:
        check.add(
            "dataset" if not isinstance(raw, dict) else "dataset.name",
            name,
            _unregistered("dataset", name, registry, "data set"),
        )
        return None, {}
    dataset = registry.get("dataset", name)
    broken = _broken_plugin(dataset, registry)
    if broken:
        check.add("dataset" if not isinstance(raw, dict) else "dataset.name", name, broken)
    declared = dataset.spec.params
    params = {pname: param.default for pname, param in declared.items()}
    for key, value in options.items():
        if key == "name":
            continue
        where = f"dataset.{key}"
        if key not in declared:
            check.add(
                where,
                key,
                f"unknown option of data set {name!r}{_nearest(key, declared)}; allowed: "
                + (", ".join(declared) or "none"),
            )
        elif not declared[key].contains(value):
            check.add(where, value, f"must be {declared[key].describe()}")
        elif isinstance(param := declared[key], Text) and param.is_path and value:
            params[key] = str((study_path.parent / Path(value).expanduser()).resolve())
        else:
            params[key] = value
    return dataset, params


def _check_task(
    check: _Checker, raw: Any, dataset: Registered | None, params: Mapping[str, Any]
) -> tuple[str | None, str]:
    """The study's task (given, or the data set's) and the data's input kind."""
    if raw is not None and raw not in TASKS:
        check.add("task", raw, f"unknown task{_nearest(str(raw), TASKS)}; allowed: {', '.join(TASKS)}")
        return None, ""
    if dataset is None:
        return raw, ""
    spec = dataset.spec
    tasks, input_kind = spec.tasks, spec.input_kind  # type: ignore[union-attr]
    if spec.probe is not None:  # type: ignore[union-attr]
        try:
            probed_task, input_kind = spec.probe(params)  # type: ignore[union-attr]
        except (ValueError, OSError) as exc:
            check.add("dataset", dict(params), f"data set {spec.name!r} cannot use this data: {exc}")
            return None, ""
        tasks = (probed_task,) + tuple(t for t in tasks if t != probed_task)
        if raw is not None and raw != probed_task and raw in tasks:
            if "task" in spec.params:  # type: ignore[union-attr]
                params["task"] = raw  # type: ignore[index]  # so that `build` makes the data for it
            return raw, input_kind  # the study's explicit task wins where the data set allows it
    if raw is None:
        return tasks[0], input_kind
    if raw not in tasks:
        check.add("task", raw, f"data set {spec.name!r} supports {', '.join(tasks)}")
        return None, ""
    return raw, input_kind


def _check_objective(
    check: _Checker, raw: Any, task: str | None, where: str = "objective", extra: bool = False
) -> tuple[str, str]:
    """One objective; `extra` ones (after the first) may also be a model metric: params, latency_ms."""
    objective = check.mapping(where, raw)
    check.unknown_keys(where, objective, OBJECTIVE_KEYS)
    if task is None:
        return "", ""
    allowed = {**objective_choices(task), **(MODEL_METRICS if extra else {})}
    metric, direction = default_objective(task)
    metric = objective.get("metric", metric)
    if not isinstance(metric, str) or metric not in allowed:
        check.add(
            f"{where}.metric",
            metric,
            f"not a {task} metric{_nearest(str(metric), allowed)}; allowed: " + ", ".join(allowed),
        )
        return metric, direction
    direction = objective.get("direction", allowed[metric])
    if direction not in ("maximize", "minimize"):
        check.add(f"{where}.direction", direction, "must be maximize or minimize")
    return metric, direction


def _check_budget(check: _Checker, raw: Any) -> Budget:
    budget = check.mapping("budget", raw)
    check.unknown_keys("budget", budget, BUDGET_KEYS)
    trials = budget.get("trials", Budget.trials)
    max_epochs = budget.get("max_epochs", Budget.max_epochs)
    timeout = budget.get("timeout")
    if not _is_int(trials) or trials < 1:
        check.add("budget.trials", trials, "must be an integer >= 1")
    if not _is_int(max_epochs) or max_epochs < 1:
        check.add("budget.max_epochs", max_epochs, "must be an integer >= 1")
    if timeout is not None and not (is_finite_number(timeout) and timeout > 0):
        check.add("budget.timeout", timeout, "must be a number of seconds > 0")
    return Budget(trials=trials, timeout=timeout, max_epochs=max_epochs)


def _check_strategy(check: _Checker, key: str, raw: Any, known: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    options = dict(raw) if isinstance(raw, dict) else {"name": raw}
    name = options.pop("name", None)
    if not isinstance(name, str) or name not in known:
        check.add(
            f"{key}.name" if isinstance(raw, dict) else key,
            name,
            f"unknown {key}{_nearest(str(name), known)}; allowed: {', '.join(known)}",
        )
        return str(name), options
    for problem_key, problem in check_options(known[name], options):
        check.add(f"{key}.{problem_key}", options.get(problem_key), problem)
    return name, options


def _check_search(
    check: _Checker, raw: Any, registry: Registry, input_kind: str, task: str
) -> tuple[SearchSpace | None, list[str]]:
    search = check.mapping("search", raw)
    check.unknown_keys("search", search, SEARCH_KEYS)
    removed: list[str] = []
    components: dict[str, ComponentOptions] = {}
    for kind in CHOSEN_KINDS:
        options = _check_component_kind(check, kind, search.get(kind), registry, input_kind, task, removed)
        if options is not None:
            components[kind] = ComponentOptions(kind, options)
    regularizers = _check_switches(check, "regularizer", search.get("regularizers"), registry, "", task)
    augmentations = _check_switches(check, "augmentation", search.get("augmentations"), registry, input_kind, task)
    shared = {}
    for kind, params in INPUT_KIND_PARAMS.items():
        for pname in set(params) & set(search) if input_kind and kind != input_kind else ():
            check.add(f"search.{pname}", search[pname], f"only {kind} inputs have it; this data set gives {input_kind}")
    # the data's input kind unknown (no usable data set): every input kind's parameters are checked where given
    by_kind = (
        INPUT_KIND_PARAMS.get(input_kind, {})
        if input_kind
        else {
            pname: param for params in INPUT_KIND_PARAMS.values() for pname, param in params.items() if pname in search
        }
    )
    for pname, declared in {**SHARED_PARAMS, **by_kind}.items():
        shared[pname] = (
            _narrow(check, f"search.{pname}", declared, search[pname])
            if pname in search
            else SHARED_DEFAULT_SEARCH.get(pname, declared)
        )
    if len(components) < len(CHOSEN_KINDS) or not task:
        return None, removed
    return SearchSpace(components, tuple(regularizers), shared, tuple(augmentations)), removed


def incompatibility(kind: str, entry: Registered, input_kind: str, task: str) -> str | None:
    """Why a component cannot be used with this data, or None when it can (or when the data is unknown: "")."""
    spec = entry.spec
    tasks = getattr(spec, "tasks", None)
    if tasks is not None and task and task not in tasks:
        return f"{kind} {spec.name!r} is for {'/'.join(tasks)}, this study's task is {task}"
    kinds = getattr(spec, "input_kinds", None)
    if kind == "architecture" and input_kind == "tokens" and kinds is not None and "sequence" in kinds:
        return None  # tokens reach it embedded, as sequences
    if kinds is not None and input_kind and input_kind not in kinds:
        return f"{kind} {spec.name!r} takes {'/'.join(kinds)} inputs, this data set gives {input_kind}"
    return None


def _check_component_kind(
    check: _Checker, kind: str, raw: Any, registry: Registry, input_kind: str, task: str, removed: list[str]
) -> dict[str, dict[str, Param]] | None:
    where = f"search.{kind}"
    registered = registry.names(kind)
    named: dict[str, Any] | None
    if raw is None and kind in DEFAULT_WHEN_OMITTED and DEFAULT_WHEN_OMITTED[kind] in registered:
        raw = DEFAULT_WHEN_OMITTED[kind]
    if raw is None or raw == "all":
        # Not named by the study: every compatible component, the others removed with the reason.
        named = _every_compatible(kind, registered, registry, input_kind, task, removed)
        if not named:
            check.add(where, raw, f"no registered {kind} is compatible with {input_kind} inputs and task {task}")
            return None
    else:
        named = _named_by_study(check, kind, raw, registered)
        if named is None:
            return None

    options: dict[str, dict[str, Param]] = {}
    for name, overrides in named.items():
        key = f"{where}.{name}" if isinstance(raw, dict) else where
        if not _registered_and_loaded(check, key, kind, name, registry):
            continue
        reason = incompatibility(kind, registry.get(kind, name), input_kind, task)
        if reason:
            compatible = [n for n in registered if not incompatibility(kind, registry.get(kind, n), input_kind, task)]
            check.add(key, name, f"incompatible: {reason}; compatible: {', '.join(compatible) or 'none'}")
            continue
        options[name] = _narrow_params(check, f"{where}.{name}", registry.get(kind, name).spec.params, overrides)
    return options if options else None


def _every_compatible(
    kind: str, registered: list[str], registry: Registry, input_kind: str, task: str, removed: list[str]
) -> dict[str, Any]:
    """Every registered component of `kind` usable with this data (each without overrides); each other one is
    added to `removed` with the reason."""
    named: dict[str, Any] = {}
    for name in registered:
        reason = _broken_plugin(registry.get(kind, name), registry) or incompatibility(
            kind, registry.get(kind, name), input_kind, task
        )
        if reason:
            removed.append(f"search.{kind}: removed {name!r}: {reason}")
        else:
            named[name] = None
    return named


def _named_by_study(check: _Checker, kind: str, raw: Any, registered: list[str]) -> dict[str, Any] | None:
    """The components a study names for `kind` (a name, a list of names, or a mapping of names to parameter
    ranges), each with its overrides (None: none); None when there are none to search."""
    where = f"search.{kind}"
    if isinstance(raw, str):
        return {raw: None}
    if isinstance(raw, list):
        if not raw:
            check.add(where, raw, f"an empty list; name at least one {kind}: {', '.join(registered)}")
            return None
        named: dict[str, Any] = {}
        for item in raw:
            if not isinstance(item, str):
                check.add(where, item, f"list items must be {kind} names")
            named[str(item)] = None
        return named
    if isinstance(raw, dict):
        if not raw:
            check.add(where, raw, f"an empty mapping; name at least one {kind}: {', '.join(registered)}")
            return None
        return raw
    check.add(where, raw, f"must be a {kind} name, a list of names, or a mapping of names to parameter ranges")
    return None


def _registered_and_loaded(check: _Checker, key: str, kind: str, name: str, registry: Registry) -> bool:
    """Whether `name` is a registered `kind` whose plugin loaded; where not, the problem is added at `key`."""
    if name not in registry.components[kind]:
        check.add(key, name, _unregistered(kind, name, registry))
        return False
    broken = _broken_plugin(registry.get(kind, name), registry)
    if broken:
        check.add(key, name, broken)
        return False
    return True


def _check_switches(
    check: _Checker, kind: str, raw: Any, registry: Registry, input_kind: str, task: str
) -> list[RegularizerOption]:
    """`search.regularizers` or `search.augmentations`: components each switched on/off (or always on)."""
    where = f"search.{kind}s"
    if raw is None:
        return []
    registered = registry.names(kind)
    if raw == "all":  # every compatible one whose plugin loaded, each searched on/off
        named: dict[str, Any] = {
            name: None
            for name in registered
            if not incompatibility(kind, registry.get(kind, name), input_kind, task)
            and not _broken_plugin(registry.get(kind, name), registry)
        }
    elif isinstance(raw, list):
        named = {str(item): None for item in raw}
    elif isinstance(raw, dict):
        named = raw
    else:
        check.add(where, raw, f"must be `all`, a list of {kind} names or a mapping of names to parameter ranges")
        return []
    result = []
    for name, overrides in named.items():
        key = f"{where}.{name}"
        if not _registered_and_loaded(check, key, kind, name, registry):
            continue
        reason = incompatibility(kind, registry.get(kind, name), input_kind, task)
        if reason:
            check.add(key, name, f"incompatible: {reason}")
            continue
        overrides = dict(overrides) if isinstance(overrides, dict) else overrides
        optional = True
        if isinstance(overrides, dict) and "optional" in overrides:
            optional = overrides.pop("optional")
            if not isinstance(optional, bool):
                check.add(f"{key}.optional", optional, "must be true (searched on/off) or false (always on)")
        params = _narrow_params(check, key, registry.get(kind, name).spec.params, overrides)
        result.append(RegularizerOption(name, params, optional is not False, kind))
    return result


def _narrow_params(check: _Checker, where: str, declared: Mapping[str, Param], overrides: Any) -> dict[str, Param]:
    if overrides is None:
        return dict(declared)
    if not isinstance(overrides, dict):
        check.add(where, overrides, "must be a mapping of parameter names to a value, a list or {low, high}")
        return dict(declared)
    params = dict(declared)
    for pname, override in overrides.items():
        key = f"{where}.{pname}"
        if pname not in declared:
            check.add(
                key,
                pname,
                f"unknown parameter{_nearest(str(pname), declared)}; declared: " + (", ".join(declared) or "none"),
            )
            continue
        params[pname] = _narrow(check, key, declared[pname], override)
    return params


def _narrow(check: _Checker, key: str, declared: Param, override: Any) -> Param:
    try:
        return declared.narrow(override)
    except OverrideError as exc:
        check.add(key, override, f"{exc}; declared: {declared.describe()}")
        return declared


def load_study(path: str | Path, registry: Registry) -> StudySpec:
    """Read and validate a study file in one step."""
    return validate_study(path, read_study_file(path), registry)
