"""Samplers and pruners by name: data (class + defaults), built from a study file's options."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from orchestrator.errors import UserError
from orchestrator.search.bohb import BohbSampler
from orchestrator.search.promotion import SuccessiveHalving


@dataclass(frozen=True)
class Strategy:
    """An Optuna sampler or pruner class with this project's defaults."""

    cls: type
    defaults: Mapping[str, Any] = field(default_factory=dict)
    seeded: bool = False
    grid: bool = False  # GridSampler: its `search_space` is made from the study's space (`points` per range)
    single_objective: bool = False  # refuses multi-objective studies

    def option_names(self) -> list[str]:
        params = inspect.signature(self.cls.__init__).parameters.values()  # type: ignore[misc]
        names = [
            p.name
            for p in params
            if p.name not in ("self", "seed", "search_space")
            and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        ]
        return ["points", *names] if self.grid else names

    def build(self, options: Mapping[str, Any], seed: int | None = None, space: Any = None) -> Any:
        kwargs = {**self.defaults, **options}
        if self.grid:
            points = kwargs.pop("points", GRID_POINTS)
            if not isinstance(points, int) or isinstance(points, bool) or points < 2:
                raise ValueError(f"points must be an integer >= 2, got {points!r}")
            kwargs["search_space"] = space.grid(points) if space is not None else {"x": [0]}
        return self.cls(seed=seed, **kwargs) if self.seeded else self.cls(**kwargs)


# `group=True` is marked experimental, but it is what TPE needs for conditional spaces.
warnings.filterwarnings("ignore", message=r"Argument ``group`` is an experimental feature")


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler without its `study.stop()` once the grid is walked: that call is only allowed
    inside `Study.optimize`, and our workers ask and tell; the study's budget ends the search."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        pass


GRID_POINTS = 3  # values per numeric range in a grid search (log-spaced on a log range)

SAMPLERS: dict[str, Strategy] = {
    # `group=True` lets multivariate TPE model the conditional space (each component's own params).
    "tpe": Strategy(
        optuna.samplers.TPESampler, {"multivariate": True, "group": True, "n_startup_trials": 5}, seeded=True
    ),
    # TPE on the highest asha rung with enough results (BOHB); a plain TPE without asha.
    "bohb": Strategy(BohbSampler, {"n_startup_trials": 5}, seeded=True),
    "random": Strategy(optuna.samplers.RandomSampler, seeded=True),
    "grid": Strategy(GridSampler, seeded=True, grid=True),
    "qmc": Strategy(optuna.samplers.QMCSampler, {"qmc_type": "sobol", "scramble": True}, seeded=True),
    "gp": Strategy(optuna.samplers.GPSampler, {"n_startup_trials": 5}, seeded=True),
    "cmaes": Strategy(optuna.samplers.CmaEsSampler, {"n_startup_trials": 5}, seeded=True, single_objective=True),
    "nsga2": Strategy(optuna.samplers.NSGAIISampler, {"population_size": 20}, seeded=True),
    "nsga3": Strategy(optuna.samplers.NSGAIIISampler, {"population_size": 20}, seeded=True),
}

PRUNERS: dict[str, Strategy] = {
    "median": Strategy(optuna.pruners.MedianPruner, {"n_startup_trials": 3, "n_warmup_steps": 2}),
    "percentile": Strategy(
        optuna.pruners.PercentilePruner, {"percentile": 25.0, "n_startup_trials": 3, "n_warmup_steps": 2}
    ),
    "successive_halving": Strategy(optuna.pruners.SuccessiveHalvingPruner, {"min_resource": 1, "reduction_factor": 3}),
    # pause-and-resume successive halving: trials pause at rungs, the best are promoted and resume (promotion.py)
    "asha": Strategy(SuccessiveHalving, {"eta": 3}),
    "hyperband": Strategy(optuna.pruners.HyperbandPruner, {"min_resource": 1, "reduction_factor": 3}),
    "wilcoxon": Strategy(optuna.pruners.WilcoxonPruner, {"p_threshold": 0.1, "n_startup_steps": 2}),
    "none": Strategy(optuna.pruners.NopPruner),
}


def with_plugins(
    built_in: Mapping[str, Strategy], extra: Mapping[str, Mapping[str, Any]], what: str
) -> dict[str, Strategy]:
    """The built-in samplers (or pruners) and those plugins registered (`Registry.samplers` / `.pruners`)."""
    merged = dict(built_in)
    for name, fields in extra.items():
        if name in merged:
            raise UserError(f"{what} {name!r} is built in: a plugin cannot register another under its name")
        merged[name] = Strategy(**fields)
    return merged


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
