"""Samplers and pruners by name: data (class + defaults), built from a study file's options."""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import optuna


@dataclass(frozen=True)
class Strategy:
    """An Optuna sampler or pruner class with this project's defaults."""

    cls: type
    defaults: Mapping[str, Any] = field(default_factory=dict)
    seeded: bool = False

    def option_names(self) -> list[str]:
        params = inspect.signature(self.cls.__init__).parameters.values()
        return [p.name for p in params if p.name not in ("self", "seed")
                and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]

    def build(self, options: Mapping[str, Any], seed: int | None = None) -> Any:
        kwargs = {**self.defaults, **options}
        return self.cls(seed=seed, **kwargs) if self.seeded else self.cls(**kwargs)


# `group=True` is marked experimental, but it is what TPE needs for conditional spaces.
warnings.filterwarnings("ignore", message=r"Argument ``group`` is an experimental feature")

SAMPLERS: dict[str, Strategy] = {
    # `group=True` lets multivariate TPE model the conditional space (each component's own params).
    "tpe": Strategy(optuna.samplers.TPESampler, {"multivariate": True, "group": True, "n_startup_trials": 5},
                    seeded=True),
    "random": Strategy(optuna.samplers.RandomSampler, seeded=True),
}

PRUNERS: dict[str, Strategy] = {
    "median": Strategy(optuna.pruners.MedianPruner, {"n_startup_trials": 3, "n_warmup_steps": 2}),
    "percentile": Strategy(optuna.pruners.PercentilePruner,
                           {"percentile": 25.0, "n_startup_trials": 3, "n_warmup_steps": 2}),
    "none": Strategy(optuna.pruners.NopPruner),
}


def check_options(strategy: Strategy, options: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(option, problem) for each option the strategy does not take, or that its class rejects."""
    allowed = strategy.option_names()
    unknown = [key for key in options if key not in allowed]
    for key in unknown:
        yield key, f"unknown option of {strategy.cls.__name__}; allowed: {', '.join(allowed) or 'none'}"
    if unknown or not options:
        return
    rejected = False
    for key, value in options.items():  # one at a time, so the problem names its own key
        try:
            strategy.build({key: value}, seed=0)
        except (TypeError, ValueError) as exc:
            rejected = True
            yield key, f"rejected by {strategy.cls.__name__}: {exc}"
    if not rejected:
        try:
            strategy.build(options, seed=0)
        except (TypeError, ValueError) as exc:
            yield ", ".join(options), f"rejected together by {strategy.cls.__name__}: {exc}"
