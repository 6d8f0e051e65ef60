"""Plugin discovery (entry points + local plugin folders) and the component registry."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar, cast

import pluggy

from orchestrator.api import hookspecs
from orchestrator.api.components import KINDS, SPEC_TYPES, ComponentSpec
from orchestrator.errors import UserError

ENTRY_POINT_GROUP = hookspecs.PROJECT
DISTRIBUTION = "automl-orchestrator"
DISABLE_AUTOLOAD_ENV = "AUTOML_DISABLE_PLUGIN_AUTOLOAD"
LOAD_ONLY_ENV = "AUTOML_LOAD_PLUGINS"
LOCAL_PLUGINS_DIR = "plugins"
REGISTER_HOOKS = {
    "architecture": "register_architectures",
    "activation": "register_activations",
    "loss": "register_losses",
    "optimizer": "register_optimizers",
    "schedule": "register_schedules",
    "regularizer": "register_regularizers",
    "augmentation": "register_augmentations",
    "dataset": "register_datasets",
}


SpecT = TypeVar("SpecT", bound=ComponentSpec)


class PluginConflictError(UserError):
    """Two plugins registered a component of the same kind and name."""


@dataclass(frozen=True)
class Registered:
    """A component spec and the plugin that registered it."""

    spec: ComponentSpec
    plugin: str


@dataclass(frozen=True)
class PluginLoadError:
    """A plugin that could not be imported or whose hook raised; the others still load."""

    plugin: str
    error: str

    def __str__(self) -> str:
        return f'Error loading plugin "{self.plugin}": {self.error}'


@dataclass
class Registry:
    """Every registered component by kind and name, plus the plugin manager for lifecycle hooks."""

    manager: pluggy.PluginManager
    components: dict[str, dict[str, Registered]] = field(default_factory=lambda: {k: {} for k in KINDS})
    errors: list[PluginLoadError] = field(default_factory=list)
    plugin_names: dict[str, str] = field(default_factory=dict)
    launchers: list[Any] = field(default_factory=list)  # LauncherKinds plugins registered (hook register_launchers)
    samplers: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> cls, defaults, flags (hook)
    pruners: dict[str, dict[str, Any]] = field(default_factory=dict)

    def names(self, kind: str) -> list[str]:
        return sorted(self.components[kind])

    def get(self, kind: str, name: str) -> Registered:
        return self.components[kind][name]

    def spec(self, spec_type: type[SpecT], name: str) -> SpecT:
        """The spec of the component `name` of `spec_type`'s kind, typed: `registry.spec(Loss, "cross_entropy")`."""
        return cast(SpecT, self.components[spec_type.kind][name].spec)

    def all(self) -> Iterable[Registered]:
        for kind in KINDS:
            for name in sorted(self.components[kind]):
                yield self.components[kind][name]

    @property
    def hook(self) -> pluggy.HookRelay:
        return self.manager.hook


def _load_only() -> set[str] | None:
    raw = os.environ.get(LOAD_ONLY_ENV)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def _autoload_disabled() -> bool:
    return os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def builtin_plugins_dir() -> Path:
    """Where the built-in component library lives (the project's `plugins/` folder)."""
    spec = importlib.util.find_spec("automl_plugins")
    assert spec is not None and spec.origin is not None, "automl_plugins is not installed"
    return Path(spec.origin).resolve().parent


def default_plugin_dirs(cwd: Path | None = None) -> list[Path]:
    """`./plugins/` of the working directory, unless it is the built-in library itself."""
    local = (cwd or Path.cwd()) / LOCAL_PLUGINS_DIR
    if local.is_dir() and local.resolve() != builtin_plugins_dir():
        return [local]
    return []


def _import_file(path: Path) -> ModuleType:
    # A unique module name per file: a local `plugins/` folder or file name can never
    # collide with (or shadow) an installed module.
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    module_name = f"automl_local_plugin_{digest}_{path.stem}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def _short_error(exc: BaseException) -> str:
    """`Type: message (file:line)`, the line being in the plugin's own code, not importlib's."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"SyntaxError: {exc.msg} ({Path(exc.filename).name}:{exc.lineno})"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _discover(registry: Registry, plugin_dirs: Sequence[Path]) -> None:
    only = _load_only()
    autoload = not _autoload_disabled()
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist_name = ep.dist.name if ep.dist else "?"
        origin = f"{dist_name} {ep.dist.version}" if ep.dist else ep.value
        builtin = dist_name == DISTRIBUTION
        if not builtin and (not autoload or (only is not None and not {ep.name, dist_name} & only)):
            continue
        try:
            module = ep.load()
            registry.manager.register(module, name=f"{dist_name}:{ep.name}")
        except Exception as exc:  # a broken plugin must not take the others down
            registry.errors.append(PluginLoadError(f"{dist_name} ({ep.name})", _short_error(exc)))
            continue
        registry.plugin_names[f"{dist_name}:{ep.name}"] = origin
    for folder in plugin_dirs:
        if not folder.is_dir():
            registry.errors.append(PluginLoadError(str(folder), "plugin folder does not exist"))
            continue
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_") or (only is not None and path.stem not in only):
                continue
            try:
                module = _import_file(path)
                registry.manager.register(module, name=str(path))
            except Exception as exc:
                registry.errors.append(PluginLoadError(str(path), _short_error(exc)))
                continue
            registry.plugin_names[str(path)] = str(path)


def _collect_components(registry: Registry) -> None:
    for kind, hook_name in REGISTER_HOOKS.items():
        spec_type = SPEC_TYPES[kind]
        for impl in getattr(registry.manager.hook, hook_name).get_hookimpls():
            origin = registry.plugin_names.get(impl.plugin_name, impl.plugin_name)

            def register(
                spec: ComponentSpec,
                _origin: str = origin,
                _kind: str = kind,
                _type: type = spec_type,
                _hook: str = hook_name,
            ) -> None:
                if not isinstance(spec, _type):
                    raise TypeError(f"{_hook} must register {_type.__name__} objects, got {spec!r}")
                existing = registry.components[_kind].get(spec.name)
                if existing is not None:
                    raise PluginConflictError(
                        f"{_kind} {spec.name!r} is registered twice: by {existing.plugin} and by {_origin}. "
                        f"Rename one of them or disable one plugin ({LOAD_ONLY_ENV}=...)."
                    )
                registry.components[_kind][spec.name] = Registered(spec, _origin)

            try:
                impl.function(register=register)
            except PluginConflictError:
                raise
            except Exception as exc:
                registry.errors.append(PluginLoadError(origin, f"{hook_name} failed: {_short_error(exc)}"))


def load_registry(plugin_dirs: Sequence[Path | str] | None = None) -> Registry:
    """Load every plugin and collect their components.

    `plugin_dirs` adds local folders of `.py` plugin files to `./plugins/` of the working
    directory. Raises PluginConflictError when two plugins register the same component.
    """
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    registry = Registry(manager)
    dirs = default_plugin_dirs() + [Path(d) for d in plugin_dirs or ()]
    unique_dirs = list(dict.fromkeys(d.resolve() for d in dirs))
    _discover(registry, unique_dirs)
    _collect_components(registry)
    registry.hook.register_launchers(register=registry.launchers.append)
    registry.hook.register_samplers(register=_strategy_register(registry.samplers))
    registry.hook.register_pruners(register=_strategy_register(registry.pruners))
    return registry


def _strategy_register(table: dict[str, dict[str, Any]]) -> Any:
    """The `register` callback of `register_samplers` / `register_pruners`: a class and its settings by name."""

    def register(name: str, cls: type, defaults: Mapping[str, Any] | None = None, **flags: bool) -> None:
        if name in table:
            raise PluginConflictError(f"{name!r} is registered twice as a sampler or pruner by plugins")
        table[name] = {"cls": cls, "defaults": dict(defaults or {}), **flags}

    return register


def describe_params(params: Mapping[str, object]) -> dict[str, object]:
    """JSON-ready declared ranges of a component."""
    return {name: param.to_json() for name, param in params.items()}  # type: ignore[attr-defined]
