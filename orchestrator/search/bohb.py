"""BOHB's model (Falkner et al. 2018) for the asha pruner: a TPE fitted on the highest rung that has enough results.

Each lineage that reached that rung is one observation: its configuration with its objective value(s) there, as
if it were a complete trial. Until some rung has `min_points` lineages, the TPE sees the study as it is (its
start-up trials are random). Without asha (no rung values recorded) it is a plain TPE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from orchestrator.records import lineage
from orchestrator.search.promotion import rung_results


class RungView:
    """A study as the TPE should see it: one COMPLETE trial per lineage that reached the chosen rung."""

    def __init__(self, study: optuna.Study, trials: list[FrozenTrial]) -> None:
        self._study = study
        self._trials = trials

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self, deepcopy: bool = False, states: Sequence[TrialState] | None = None, use_cache: bool = False
    ) -> list[FrozenTrial]:
        return [t for t in self._trials if states is None or t.state in states]

    def get_trials(self, deepcopy: bool = False, states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy, states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return list(self._trials)


def rung_view(study: optuna.Study, min_points: int) -> tuple[Any, int | None]:
    """(the study as seen at the highest rung with at least `min_points` lineages, that rung's epochs), or
    (the study itself, None) when no rung has enough."""
    trials = study.get_trials(deepcopy=False)
    results = rung_results(trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    # a lineage that completed the whole budget also counts at its last epoch (the top rung)
    top: dict[int, list[float]] = {lineage(t): list(t.values) for t in complete}
    rungs = sorted(results)
    candidates = [(max(rungs, default=0) + 1, top)] if top else []
    candidates += [(epochs, results[epochs]) for epochs in reversed(rungs)]
    for epochs, at_rung in candidates:
        if len(at_rung) < min_points:
            continue
        latest: dict[int, FrozenTrial] = {}
        for trial in trials:
            if lineage(trial) in at_rung and trial.state != TrialState.WAITING:
                latest[lineage(trial)] = trial
        view = [
            FrozenTrial(
                number=trial.number,
                state=TrialState.COMPLETE,
                value=None,
                values=at_rung[key],
                datetime_start=trial.datetime_start,
                datetime_complete=trial.datetime_complete,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs={},
                system_attrs={},
                intermediate_values={},
                trial_id=trial._trial_id,
            )
            for key, trial in sorted(latest.items())
            if trial.params
        ]
        return RungView(study, view), epochs
    return study, None


class BohbSampler(optuna.samplers.TPESampler):
    """TPE (multivariate, `group=True`) on the highest rung with at least `min_points` results."""

    def __init__(
        self,
        *,
        min_points: int | None = None,
        n_startup_trials: int = 5,
        n_ei_candidates: int = 24,
        multivariate: bool = True,
        group: bool = True,
        constant_liar: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            n_startup_trials=n_startup_trials,
            n_ei_candidates=n_ei_candidates,
            multivariate=multivariate,
            group=group,
            constant_liar=constant_liar,
            seed=seed,
        )
        self.min_points = min_points if min_points is not None else max(n_startup_trials, 2)
        if not isinstance(self.min_points, int) or self.min_points < 2:
            raise ValueError(f"min_points must be an integer >= 2, got {min_points!r}")
        self._cached: tuple[int, Any] | None = None

    def _view(self, study: optuna.Study, trial: FrozenTrial) -> Any:
        """The rung view for this trial's sampling (computed once per trial: its calls must agree)."""
        if self._cached is None or self._cached[0] != trial.number:
            self._cached = (trial.number, rung_view(study, self.min_points)[0])
        return self._cached[1]

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return super().infer_relative_search_space(self._view(study, trial), trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return super().sample_relative(self._view(study, trial), trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return super().sample_independent(self._view(study, trial), trial, param_name, param_distribution)
