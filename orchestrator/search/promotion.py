"""Pause-and-resume successive halving: promotion-type ASHA (Li et al. 2018) on resumable trials.

Rungs are epoch counts ending at the study's `max_epochs` (`max_epochs / eta^k`, rounded, down to `min_epochs`).
A trial that finishes a rung records its objective value(s) there (user attribute `rung_values`, by epochs). If
its lineage is in the top `1/eta` of every lineage that reached that rung, it trains on to the next rung;
otherwise it pauses: its checkpoint is written and kept, and the trial ends PRUNED with `paused_at_epoch`. A
worker that claims its next trial first promotes the best paused trial that has since entered the top `1/eta`
of its rung (the highest rung first): it enqueues a continuation of it (a trial with the same parameters that
resumes from the checkpoint, as a retry does), and only starts a new configuration when there is none. All of
this goes through the shared Optuna storage, under the study lock.

The leader rule (`leader=True`): a trial whose lineage is ranked first among all that reached its
rung trains on at once, also before eta lineages have reached it. So the study's first configuration runs to the
end, and each configuration that beats every one before it at a rung goes on: the user has a complete model (an
incumbent) about as soon as random search would give one, instead of only at the end of the first promotion
chain. It adds at most the rungs' successive record holders to the top 1/eta that plain asha promotes. With
`leader="first"` (the default) the rule holds only until the study has its first complete trial: the first
configuration still runs to the end, then promotion is plain asha's. On the development task (MNIST-1D, 10 seeds
of 5 minutes, bench/baselines/search/report-dev-mnist1d-aaa0525.txt) `true` reached random search's median
quality 1.9x sooner, `false` 3.4x but with no complete model at T/10 in 9 of 10 seeds, `first` 3.0x with an
incumbent as early as random search's.

Several objectives are ranked by non-dominated sorting, ties in a front broken by crowding distance (MO-ASHA,
Schmucker et al. 2021).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeGuard

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from orchestrator.records import (
    EPOCHS_ATTR,
    INTERRUPTED,
    LINEAGE_ATTR,
    PAUSED_ATTR,
    PROMOTED_ATTR,
    REASON_ATTR,
    RESUMED_ATTR,
    RETRY_OF_ATTR,
    RETRY_REASON_ATTR,
    RUNGS_ATTR,
    lineage,
    paused_trials,
)

ETA = 3
HALVINGS = 3  # default: the lowest rung at max_epochs / eta^3, so four rungs
LEADER_FIRST = "first"  # the leader rule only until the study's first complete trial


class SuccessiveHalving(optuna.pruners.BasePruner):
    """The `asha` pruner: never prunes by itself; its rungs drive pausing (RungCallback) and promotion."""

    def __init__(
        self, eta: int = ETA, min_epochs: int | None = None, leader: bool | str = LEADER_FIRST, halvings: int = HALVINGS
    ) -> None:
        if not isinstance(eta, int) or isinstance(eta, bool) or eta < 2:
            raise ValueError(f"eta must be an integer >= 2, got {eta!r}")
        if not isinstance(halvings, int) or isinstance(halvings, bool) or halvings < 1:
            raise ValueError(f"halvings must be an integer >= 1, got {halvings!r}")
        if min_epochs is not None and (
            not isinstance(min_epochs, int) or isinstance(min_epochs, bool) or min_epochs < 1
        ):
            raise ValueError(f"min_epochs must be an integer >= 1, got {min_epochs!r}")
        if not (isinstance(leader, bool) or leader == LEADER_FIRST):
            raise ValueError(f"leader must be true, false or {LEADER_FIRST!r}, got {leader!r}")
        self.eta = eta
        self.min_epochs = min_epochs
        self.leader = leader
        self.halvings = halvings
        self.max_epochs: int | None = None  # set by `for_study`

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return False

    def rungs(self, max_epochs: int | None = None) -> list[int]:
        """The rungs' epoch counts, ascending; the last is `max_epochs`. The lowest is `min_epochs` when set, else
        `max_epochs / eta^halvings` (at least 1): `halvings + 1` rungs where the epochs allow."""
        top = max_epochs or self.max_epochs
        if top is None:
            raise ValueError("the rungs need the study's max_epochs")
        low = self.min_epochs or max(1, round(top / self.eta**self.halvings))
        rungs, budget = {top}, float(top)
        while round(budget) >= low:
            rungs.add(int(round(budget)))
            budget /= self.eta
        return sorted(rungs)


def is_asha(pruner: Any) -> TypeGuard[SuccessiveHalving]:
    return isinstance(pruner, SuccessiveHalving)


# -- ranking ----------------------------------------------------------------------------------------------------


def _signs(directions: Sequence[StudyDirection]) -> list[float]:
    """+1 for a minimised objective, -1 for a maximised one (smaller signed values are better)."""
    return [1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in directions]


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def _crowding(front: list[int], points: Mapping[int, Sequence[float]]) -> dict[int, float]:
    distance = {key: 0.0 for key in front}
    for axis in range(len(points[front[0]])):
        ordered = sorted(front, key=lambda key: points[key][axis])
        low, high = points[ordered[0]][axis], points[ordered[-1]][axis]
        distance[ordered[0]] = distance[ordered[-1]] = math.inf
        if high == low:
            continue
        for before, key, after in zip(ordered, ordered[1:], ordered[2:]):
            distance[key] += (points[after][axis] - points[before][axis]) / (high - low)
    return distance


def ranked(results: Mapping[int, Sequence[float]], directions: Sequence[StudyDirection]) -> list[int]:
    """The keys of `results` best first: by value for one objective; for several, by non-dominated front, then
    by crowding distance (largest first) within a front. Ties go to the smaller key (the earlier lineage)."""
    signs = _signs(directions)
    points = {key: [s * v for s, v in zip(signs, values)] for key, values in results.items()}
    if len(signs) == 1:
        return sorted(points, key=lambda key: (points[key][0], key))
    remaining, order = sorted(points), []
    while remaining:
        front = [a for a in remaining if not any(_dominates(points[b], points[a]) for b in remaining if b != a)]
        crowding = _crowding(front, points)
        order += sorted(front, key=lambda key: (-crowding[key], key))
        remaining = [key for key in remaining if key not in front]
    return order


def top_share(
    results: Mapping[int, Sequence[float]], directions: Sequence[StudyDirection], eta: int, at_least_one: bool = False
) -> set[int]:
    """The lineages in the top 1/eta of a rung: none until eta of them have reached it, unless `at_least_one`
    (the study starts no more configurations: the best of each rung goes on, so the best one completes)."""
    share = len(results) // eta
    return set(ranked(results, directions)[: max(share, 1) if at_least_one else share])


def trains_on(
    key: int,
    results: Mapping[int, Sequence[float]],
    directions: Sequence[StudyDirection],
    pruner: SuccessiveHalving,
    incumbent: bool = False,
) -> bool:
    """Whether lineage `key`, which has just reached a rung with `results` (its own included), trains on: it is in
    the rung's top 1/eta, or (leader rule) ranked first there; with `leader="first"` the rule holds only while
    the study has no complete trial (`incumbent` False)."""
    if key in top_share(results, directions, pruner.eta):
        return True
    rule = pruner.leader is True or (pruner.leader == LEADER_FIRST and not incumbent)
    return rule and ranked(results, directions)[0] == key


# -- what the storage says ----------------------------------------------------------------------------------------


def rung_results(trials: Iterable[FrozenTrial]) -> dict[int, dict[int, list[float]]]:
    """Epochs of a rung -> {lineage: its objective values there}, from every trial's `rung_values`."""
    results: dict[int, dict[int, list[float]]] = {}
    for trial in trials:
        for epochs, values in (trial.user_attrs.get(RUNGS_ATTR) or {}).items():
            results.setdefault(int(epochs), {})[lineage(trial)] = [float(v) for v in values]
    return results


def next_promotion(study: optuna.Study, pruner: SuccessiveHalving, finishing: bool = False) -> FrozenTrial | None:
    """The paused trial a free worker should continue: the best promotable one of the highest rung (`finishing`:
    no new configuration will start, so the best of a rung is promotable even before eta reached it)."""
    trials = study.get_trials(deepcopy=False)
    waiting = paused_trials(trials)
    if not waiting:
        return None
    results = rung_results(trials)
    for epochs in reversed(pruner.rungs()[:-1]):
        at_rung = results.get(epochs, {})
        promotable = top_share(at_rung, study.directions, pruner.eta, at_least_one=finishing)
        candidates = {
            lineage(t): t for t in waiting if t.user_attrs[PAUSED_ATTR] == epochs and lineage(t) in promotable
        }
        if candidates:
            best = next(key for key in ranked({k: at_rung[k] for k in candidates}, study.directions))
            return candidates[best]
    return None


def promote(study: optuna.Study, pruner: SuccessiveHalving, finishing: bool = False) -> int | None:
    """Enqueue the continuation of the next promotable paused trial; its number, or None. Call under the study
    lock (two workers must not promote the same trial)."""
    paused = next_promotion(study, pruner, finishing)
    if paused is None:
        return None
    epochs = int(paused.user_attrs[PAUSED_ATTR])
    study.enqueue_trial(
        paused.params,
        user_attrs={
            RETRY_OF_ATTR: paused.number,
            RETRY_REASON_ATTR: f"promoted from the rung at epoch {epochs}",
            LINEAGE_ATTR: lineage(paused),
            PROMOTED_ATTR: epochs,
        },
        skip_if_exists=False,
    )
    return paused.number


# -- for review ---------------------------------------------------------------------------------------------------


def rung_counts(trials: Sequence[FrozenTrial]) -> dict[str, int]:
    """How many configurations (lineages) reached each rung ("N epochs"), and how many completed ("completed");
    empty for a study without rungs."""
    results = rung_results(trials)
    if not results:
        return {}
    counts = {
        f"{epochs} epoch{'' if epochs == 1 else 's'}": len(at_rung) for epochs, at_rung in sorted(results.items())
    }
    counts["completed"] = len({lineage(t) for t in trials if t.state == TrialState.COMPLETE})
    return counts


def lineage_history(trials: Sequence[FrozenTrial], trial: FrozenTrial) -> list[tuple[int, int, int, str]]:
    """The trials of `trial`'s lineage up to it, in order: (number, first epoch, last epoch, how it ended), epochs
    counted from 1 (a continuation starts after the epoch its lineage paused at)."""
    history = []
    for member in sorted(
        (t for t in trials if lineage(t) == lineage(trial) and t.number <= trial.number), key=lambda t: t.number
    ):
        start = int((member.user_attrs.get(RESUMED_ATTR) or {}).get("epoch", 0)) + 1
        # the last epoch: where it paused, its epoch count, or (an interrupted trial of an older version, which
        # recorded no count) its last reported epoch; steps count from 0
        end = int(
            member.user_attrs.get(PAUSED_ATTR)
            or member.user_attrs.get(EPOCHS_ATTR)
            or (max(member.intermediate_values) + 1 if member.intermediate_values else start - 1)
        )
        ended = (
            "paused"
            if PAUSED_ATTR in member.user_attrs
            else INTERRUPTED
            if member.user_attrs.get(REASON_ATTR) == INTERRUPTED
            else member.state.name.lower()
        )
        history.append((member.number, start, end, ended))
    return history
