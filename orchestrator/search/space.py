"""The resolved search space: conditional component choices expanded into flat namespaced params."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from orchestrator.api.params import Choice, Fixed, Float, Int, Param, Suggester

CHOSEN_KINDS = ("architecture", "activation", "loss", "optimizer", "schedule")


@dataclass(frozen=True)
class ComponentOptions:
    """The names a study allows for one component kind, each with its (narrowed) params."""

    kind: str
    options: Mapping[str, Mapping[str, Param]]


@dataclass(frozen=True)
class RegularizerOption:
    """One regularizer (or augmentation: `kind`) the study may use: searched on/off (`optional`) or always on."""

    name: str
    params: Mapping[str, Param]
    optional: bool = True
    kind: str = "regularizer"

    @property
    def key(self) -> str:
        return f"{self.kind}.{self.name}"


@dataclass(frozen=True)
class SearchSpace:
    """Component kinds to choose from, regularizers and augmentations to switch, and shared hyperparameters.

    `sample(trial)` returns a flat configuration: `architecture: mlp`,
    `architecture.mlp.width: 128`, `regularizer.dropout: True`, `regularizer.dropout.p: 0.2`,
    `augmentation.flip: False`, `batch_size: 100`. Only the chosen component's params are suggested
    (conditional space).
    """

    components: Mapping[str, ComponentOptions]
    regularizers: tuple[RegularizerOption, ...] = ()
    shared: Mapping[str, Param] = field(default_factory=dict)
    augmentations: tuple[RegularizerOption, ...] = ()

    @property
    def switches(self) -> tuple[RegularizerOption, ...]:
        return (*self.regularizers, *self.augmentations)

    def sample(self, trial: Suggester) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for kind in CHOSEN_KINDS:
            options = self.components[kind].options
            names = list(options)
            name = Choice(tuple(names)).suggest(trial, kind) if len(names) > 1 else names[0]
            config[kind] = name
            _suggest_all(trial, f"{kind}.{name}", options[name], config)
        for reg in self.switches:
            key = reg.key
            used = Choice((True, False)).suggest(trial, key) if reg.optional else True
            config[key] = used
            if used:
                _suggest_all(trial, key, reg.params, config)
        _suggest_all(trial, "", self.shared, config)
        return config

    def params(self) -> dict[str, Param]:
        """Every parameter a trial may suggest, by its flat name (component choices and switches included)."""
        found: dict[str, Param] = {}
        for kind in CHOSEN_KINDS:
            options = self.components[kind].options
            if len(options) > 1:
                found[kind] = Choice(tuple(options))
            for name, params in options.items():
                found.update({f"{kind}.{name}.{p}": v for p, v in params.items()})
        for reg in self.switches:
            if reg.optional:
                found[reg.key] = Choice((True, False))
            found.update({f"{reg.key}.{p}": v for p, v in reg.params.items()})
        found.update(self.shared)
        return {key: param for key, param in found.items() if not isinstance(param, Fixed)}

    def grid(self, points: int) -> dict[str, list[Any]]:
        """A grid over the whole space for Optuna's GridSampler: every choice, `points` values per range."""
        return {key: _grid_values(param, points) for key, param in self.params().items()}

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description, also used as the fingerprint that guards resumed studies."""
        return {
            **{
                kind: {
                    name: {p: param.to_json() for p, param in params.items()}
                    for name, params in self.components[kind].options.items()
                }
                for kind in CHOSEN_KINDS
            },
            "regularizers": {
                reg.name: {"optional": reg.optional, **{p: v.to_json() for p, v in reg.params.items()}}
                for reg in self.regularizers
            },
            # only when used: the fingerprints of studies from before augmentations stay as they were
            **(
                {
                    "augmentations": {
                        reg.name: {"optional": reg.optional, **{p: v.to_json() for p, v in reg.params.items()}}
                        for reg in self.augmentations
                    }
                }
                if self.augmentations
                else {}
            ),
            **{name: param.to_json() for name, param in self.shared.items()},
        }

    def describe(self) -> list[str]:
        """Readable lines: every kind, its choices and their parameter ranges."""
        lines = []
        for kind in CHOSEN_KINDS:
            options = self.components[kind].options
            lines.append(f"{kind}: {' | '.join(options)}")
            for name, params in options.items():
                for pname, param in params.items():
                    lines.append(f"    {kind}.{name}.{pname}: {param.describe()}")
        for title, switches in (("regularizers", self.regularizers), ("augmentations", self.augmentations)):
            if switches:
                lines.append(f"{title}:")
            for reg in switches:
                lines.append(f"  {reg.key}: {'on or off' if reg.optional else 'always on'}")
                for pname, param in reg.params.items():
                    lines.append(f"    {reg.key}.{pname}: {param.describe()}")
        for name, param in self.shared.items():
            lines.append(f"{name}: {param.describe()}")
        return lines


def _grid_values(param: Param, points: int) -> list[Any]:
    if isinstance(param, Choice):
        return list(param.choices)
    span = cast("Float | Int", param)  # a grid is made of choices and ranges only
    low, high = float(span.low), float(span.high)
    if span.log:
        values = [low * (high / low) ** (i / (points - 1)) for i in range(points)]
    else:
        values = [low + (high - low) * i / (points - 1) for i in range(points)]
    if span.kind == "int":
        int_step = int(span.step or 1)
        return sorted({int(low) + round((v - low) / int_step) * int_step for v in values})
    if span.step:
        step = float(span.step)
        return sorted({round(low + round((v - low) / step) * step, 12) for v in values})
    return values


def _suggest_all(trial: Suggester, prefix: str, params: Mapping[str, Param], config: dict[str, Any]) -> None:
    for pname, param in params.items():
        key = f"{prefix}.{pname}" if prefix else pname
        config[key] = param.value if isinstance(param, Fixed) else param.suggest(trial, key)


def switched_on(config: Mapping[str, Any], kind: str) -> list[str]:
    """The names of the regularizers (or augmentations) a configuration switched on, in order."""
    start = kind + "."
    return [
        key[len(start) :]
        for key, used in config.items()
        if key.startswith(start) and "." not in key[len(start) :] and used is True
    ]


def component_params(config: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The params of one chosen component, without their namespace (`optimizer.adam.lr` -> `lr`)."""
    start = prefix + "."
    return {
        key[len(start) :]: value
        for key, value in config.items()
        if key.startswith(start) and "." not in key[len(start) :]
    }
