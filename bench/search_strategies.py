"""The search benchmark's strategies: the baseline, its control, the project's default, and ablations that each
differ from the default in one thing (so the report says what each part buys).

Every TPE variant keeps the registry's start-up count (orchestrator.search.samplers: 5), so no comparison mixes two
changes.
Seeds: strategy k's seed i is `seed_base + i`, so no two strategies (and no strategy and the baseline) share start-up
trials; the control is random search exactly like the baseline, with its own seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Strategy:
    """A sampler and a pruner as a study file names them, the seeds a benchmark run uses, and what it tests."""

    key: str
    sampler: Any
    pruner: Any
    seed_base: int
    differs: str  # what it changes from the default (or what it is for)

    def seed(self, index: int) -> int:
        return self.seed_base + index


def default_choice() -> tuple[Any, Any]:
    """The project's default sampler and pruner for one objective, as a study file that names none gets them."""
    from orchestrator.study.studyfile import DEFAULT_PRUNER, DEFAULT_SAMPLER

    return DEFAULT_SAMPLER, DEFAULT_PRUNER


def strategies() -> dict[str, Strategy]:
    """Every strategy by key; `default` is whatever the project's default is now."""
    sampler, pruner = default_choice()
    rows = [
        Strategy("baseline", "random", "none", 1000, "the reference: random search, every trial to max_epochs"),
        Strategy("control", "random", "none", 2000, "random search again with other seeds: must read 1.0x"),
        Strategy("default", sampler, pruner, 3000, f"the project's default ({_name(sampler)} + {_name(pruner)})"),
        Strategy(
            "no-leader",
            sampler,
            {"name": "asha", "leader": False},
            4000,
            "asha without the leader rule (a rung's leader waits for eta results like the rest)",
        ),
        Strategy(
            "leader-always",
            sampler,
            {"name": "asha", "leader": True},
            10000,
            "asha's leader rule at every rung all along (the default before dev-mnist1d chose `first`)",
        ),
        Strategy("random-asha", "random", pruner, 5000, "random configurations instead of TPE's"),
        Strategy("tpe-none", sampler, "none", 6000, "no multi-fidelity: every trial to max_epochs"),
        Strategy("tpe-median", sampler, "median", 7000, "Optuna's stopping median pruner instead of pausing"),
        Strategy("bohb-asha", "bohb", pruner, 8000, "BOHB's model (TPE on the highest rung with enough results)"),
        Strategy(
            "leader-first",
            sampler,
            {"name": "asha", "leader": "first"},
            9000,
            "the default's asha named explicitly (the candidate dev-mnist1d chose it as, seeds of its own)",
        ),
        Strategy(
            "two-halvings",
            sampler,
            {"name": "asha", "halvings": 2},
            11000,
            "three rungs instead of four: the lowest at max_epochs / 9, not / 27 (a first rung of 1 epoch "
            "ranks noisily where an epoch is short)",
        ),
    ]
    return {s.key: s for s in rows}


def _name(choice: Any) -> str:
    return choice["name"] if isinstance(choice, dict) else str(choice)


PRIMARY = ["baseline", "control", "default"]  # the evaluation's figures
ABLATIONS = [
    "no-leader",
    "leader-always",
    "random-asha",
    "tpe-none",
    "tpe-median",
    "bohb-asha",
    "leader-first",
    "two-halvings",
]
