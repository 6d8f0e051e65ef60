"""Pause-and-resume successive halving, unit by unit: the rungs, the ranking (one objective and non-dominated
sorting), which paused trial a free worker promotes, and the rung view BOHB's TPE is fitted on."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from orchestrator.records import LINEAGE_ATTR, PAUSED_ATTR, PROMOTED_ATTR, RETRY_OF_ATTR, RUNGS_ATTR
from orchestrator.search.bohb import BohbSampler, rung_view
from orchestrator.search.promotion import SuccessiveHalving, next_promotion, promote, ranked, top_share, trains_on

MAX, MIN = StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE
X = {"x": FloatDistribution(0.0, 1.0)}


@pytest.mark.parametrize(
    ("eta", "min_epochs", "max_epochs", "rungs"),
    [
        (3, None, 40, [1, 4, 13, 40]),  # max_epochs / 3^k, four rungs by default
        (3, 2, 40, [4, 13, 40]),
        (2, 1, 8, [1, 2, 4, 8]),
        (3, None, 9, [1, 3, 9]),
        (3, 5, 4, [4]),  # min_epochs above max_epochs: one rung, the whole budget
    ],
)
def test_rungs_end_at_max_epochs(eta, min_epochs, max_epochs, rungs):
    assert SuccessiveHalving(eta=eta, min_epochs=min_epochs).rungs(max_epochs) == rungs


@pytest.mark.parametrize(
    ("halvings", "max_epochs", "rungs"),
    [(2, 40, [4, 13, 40]), (1, 40, [13, 40]), (2, 60, [7, 20, 60]), (3, 60, [2, 7, 20, 60])],
)
def test_halvings_set_the_number_of_rungs_below_max_epochs(halvings, max_epochs, rungs):
    assert SuccessiveHalving(halvings=halvings).rungs(max_epochs) == rungs
    assert SuccessiveHalving(halvings=halvings, min_epochs=1).rungs(40)[0] == 1  # min_epochs wins


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"eta": 1}, "eta must be an integer >= 2"),
        ({"min_epochs": 0}, "min_epochs must be an integer >= 1"),
        ({"leader": "yes"}, "leader must be true, false or 'first'"),
        ({"halvings": 0}, "halvings must be an integer >= 1"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        SuccessiveHalving(**options)


def test_one_objective_ranks_by_value_in_its_direction():
    results = {0: [0.5], 1: [0.9], 2: [0.7], 3: [0.9]}
    assert ranked(results, [MAX]) == [1, 3, 2, 0]  # ties to the earlier lineage
    assert ranked(results, [MIN]) == [0, 2, 1, 3]
    assert top_share(results, [MAX], 3) == {1}  # floor(4 / 3) = 1
    assert top_share({0: [0.1], 1: [0.2]}, [MAX], 3) == set()  # fewer than eta results: nobody yet


def test_a_rungs_leader_trains_on_before_eta_lineages_reached_it():
    leading, plain = SuccessiveHalving(leader=True), SuccessiveHalving(leader=False)
    assert trains_on(0, {0: [0.3]}, [MAX], leading)  # the study's first configuration runs to the end
    assert not trains_on(0, {0: [0.3]}, [MAX], plain)  # plain asha: nobody until eta have reached the rung
    assert trains_on(1, {0: [0.3], 1: [0.4]}, [MAX], leading)  # beats every one before it
    assert not trains_on(1, {0: [0.3], 1: [0.2]}, [MAX], leading)
    assert not trains_on(1, {0: [0.3], 1: [0.3]}, [MAX], leading)  # a tie goes to the earlier lineage
    assert trains_on(1, {0: [0.3], 1: [0.2]}, [MIN], leading)  # ranked in the objective's direction
    # with eta results, the top 1/eta trains on as before; the leader rule adds only the leader
    results = {0: [0.9], 1: [0.5], 2: [0.4], 3: [0.8]}
    assert [k for k in results if trains_on(k, results, [MAX], leading)] == [0]
    assert [k for k in results if trains_on(k, results, [MAX], plain)] == [0]


def test_leader_first_holds_the_rule_only_until_the_study_has_a_complete_trial():
    first = SuccessiveHalving()  # the default: leader "first"
    assert trains_on(0, {0: [0.3]}, [MAX], first, incumbent=False)  # the first configuration runs to the end
    assert trains_on(1, {0: [0.3], 1: [0.4]}, [MAX], first, incumbent=False)  # a new leader, still no model
    assert not trains_on(1, {0: [0.3], 1: [0.4]}, [MAX], first, incumbent=True)  # then plain asha's rule
    assert trains_on(1, {0: [0.3], 1: [0.4]}, [MAX], SuccessiveHalving(leader=True), incumbent=True)  # always
    results = {0: [0.9], 1: [0.5], 2: [0.4], 3: [0.8]}
    assert [k for k in results if trains_on(k, results, [MAX], first, incumbent=True)] == [0]


def test_several_objectives_rank_by_non_dominated_front_then_crowding():
    # accuracy (max), parameters (min): 0, 1 and 2 are the front; 3 is dominated by 1; 4 by everyone
    results = {0: [0.95, 1000.0], 1: [0.90, 200.0], 2: [0.80, 50.0], 3: [0.85, 300.0], 4: [0.5, 5000.0]}
    order = ranked(results, [MAX, MIN])
    assert set(order[:3]) == {0, 1, 2} and order[3:] == [3, 4]
    assert order[:2] == [0, 2]  # the front's extremes have infinite crowding distance, 1 sits between them
    # 3 has the second best accuracy at its rung, yet is not promoted before a non-dominated lineage
    assert top_share(results, [MAX, MIN], 2) == {0, 2}


def _study(directions=(MAX,)) -> optuna.Study:
    return optuna.create_study(directions=list(directions), pruner=SuccessiveHalving())


def _add(
    study: optuna.Study,
    x: float,
    rungs: dict[int, list[float]],
    paused_at: int | None = None,
    state: TrialState = TrialState.PRUNED,
    values: list[float] | None = None,
    **attrs,
) -> int:
    user_attrs = {RUNGS_ATTR: {str(k): v for k, v in rungs.items()}, **attrs}
    if paused_at is not None:
        user_attrs[PAUSED_ATTR] = paused_at
    trial = create_trial(params={"x": x}, distributions=X, state=state, values=values, user_attrs=user_attrs)
    study.add_trial(trial)
    return study.trials[-1].number


def test_a_free_worker_promotes_the_best_paused_trial_of_the_highest_rung():
    study = _study()
    pruner = study.pruner
    pruner.max_epochs = 9  # rungs 1, 3, 9
    for i, value in enumerate([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]):
        _add(study, i / 10, {1: [value]}, paused_at=1)
    # rung 1 has 6 results: its top 2 (0.6 and 0.5: trials 5 and 4) are promotable; the best first
    assert next_promotion(study, pruner).number == 5
    assert promote(study, pruner) == 5
    continuation = study.trials[-1]
    assert continuation.state == TrialState.WAITING and continuation.system_attrs["fixed_params"] == {"x": 0.5}
    assert continuation.user_attrs[RETRY_OF_ATTR] == 5 and continuation.user_attrs[LINEAGE_ATTR] == 5
    assert continuation.user_attrs[PROMOTED_ATTR] == 1
    assert promote(study, pruner) == 4  # 5 has its continuation: the next promotable one
    assert promote(study, pruner) is None  # 3 is not in the top third of rung 1


def test_a_higher_rung_is_promoted_first():
    study = _study()
    study.pruner.max_epochs = 9
    for i, value in enumerate([0.1, 0.2, 0.9]):
        _add(study, i / 10, {1: [value]}, paused_at=1)  # 2 is promotable from rung 1 ...
    for i, value in enumerate([0.5, 0.6, 0.7]):
        _add(study, 0.5 + i / 10, {1: [0.8], 3: [value]}, paused_at=3)  # ... but 5 from rung 3 comes first
    assert promote(study, study.pruner) == 5


def test_several_objectives_promote_by_non_dominated_rank():
    study = _study((MAX, MIN))
    study.pruner.max_epochs = 9
    points = [[0.95, 1000.0], [0.90, 200.0], [0.80, 50.0], [0.93, 1200.0], [0.5, 5000.0], [0.6, 4000.0]]
    numbers = [_add(study, i / 10, {1: p}, paused_at=1) for i, p in enumerate(points)]
    promoted = {promote(study, study.pruner), promote(study, study.pruner)}
    # top 2 of 6: the front's extremes (0 and 2); 3 (second best accuracy) is dominated by 0
    assert promoted == {numbers[0], numbers[2]}
    assert promote(study, study.pruner) is None


def test_bohb_fits_on_the_highest_rung_with_enough_results():
    study = _study()
    study.pruner.max_epochs = 9
    for i in range(6):
        _add(study, i / 10, {1: [i / 10]}, paused_at=1)
    for i in range(2):
        _add(study, 0.9 + i / 100, {1: [0.9], 3: [0.5 + i / 10]}, paused_at=3)
    view, epochs = rung_view(study, min_points=3)
    assert epochs == 1 and len(view.trials) == 8  # rung 3 has only 2 results
    assert all(t.state == TrialState.COMPLETE for t in view.trials)
    _add(study, 0.99, {1: [0.95], 3: [0.8]}, paused_at=3)
    view, epochs = rung_view(study, min_points=3)
    assert epochs == 3 and sorted(t.value for t in view.trials) == pytest.approx([0.5, 0.6, 0.8])
    assert rung_view(study, min_points=20) == (study, None)  # nothing has enough: the study as it is


def test_bohb_models_the_rung_it_is_fitted_on():
    """Past its start-up trials, BOHB's TPE samples near the configurations that did best at the rung."""
    study = optuna.create_study(
        direction="maximize", sampler=BohbSampler(n_startup_trials=5, seed=0), pruner=SuccessiveHalving()
    )
    study.pruner.max_epochs = 9
    for i in range(30):  # at rung 1 the best x are near 0.8
        x = i / 30
        _add(study, x, {1: [1.0 - abs(x - 0.8)]}, paused_at=1)
    proposals = [study.ask(X).params["x"] for _ in range(20)]
    assert sum(abs(x - 0.8) < 0.2 for x in proposals) >= 14, proposals


def test_once_no_configuration_will_start_the_best_of_each_rung_goes_on():
    study = _study()
    study.pruner.max_epochs = 9
    _add(study, 0.1, {1: [0.9], 3: [0.5]}, paused_at=3)  # alone at rung 3: not in a top third of 1
    _add(study, 0.2, {1: [0.8], 3: [0.7]}, paused_at=3)
    _add(study, 0.3, {1: [0.1]}, paused_at=1)
    assert promote(study, study.pruner) is None
    assert promote(study, study.pruner, finishing=True) == 1  # the best at rung 3
    assert promote(study, study.pruner, finishing=True) is None  # 0 is not the best of rung 3; rung 1's went on
