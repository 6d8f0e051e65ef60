"""The search benchmark's statistics (`bench/search_stats.py`) against hand-computed values: incumbent look-ups,
targets, censored medians, speedups and their bootstrap intervals, P(before), anytime areas and median curves."""

from __future__ import annotations

import numpy as np
import pytest

from bench.search_stats import (
    Interval,
    Run,
    _interval,
    _nearest_rank,
    _ordered,
    anytime_area,
    area_ratio,
    bootstrap_ratio,
    bootstrap_speedup,
    censored_median,
    median_curve,
    probability_before,
    quality_at,
    range_curve,
    speedup,
    summary_line,
    target_at,
    time_to_target,
)

H = 100.0  # the horizon T in these tests


def flat(seconds: float, quality: float, end: float = H) -> Run:
    """A run with a single incumbent from `seconds` on."""
    return Run([(seconds, quality)], end)


def random_search(rng: np.random.Generator, speed: float = 1.0) -> Run:
    """A model of random search: trials end at exponential intervals (mean 8 s / speed), each with a uniform
    quality; the curve keeps the changes of incumbent up to H."""
    curve, t, best = [], 0.0, -1.0
    while True:
        t += rng.exponential(8.0 / speed)
        if t > H:
            return Run(curve, H)
        quality = float(rng.uniform())
        if quality > best:
            best = quality
            curve.append((round(t, 2), quality))


# quality_at / time_to_target


def test_quality_at_before_at_between_and_after_points_and_end():
    run = Run([(10.0, 0.5), (20.0, 0.7)], end=30.0)
    assert quality_at(run, 0.0) is None
    assert quality_at(run, 9.99) is None
    assert quality_at(run, 10.0) == 0.5
    assert quality_at(run, 15.0) == 0.5
    assert quality_at(run, 20.0) == 0.7
    assert quality_at(run, 25.0) == 0.7
    assert quality_at(run, 1000.0) == 0.7  # held after the last point and after end
    assert quality_at(Run([], 30.0), 50.0) is None


def test_time_to_target_minimised_and_maximised():
    rmse = Run([(5.0, 3.0), (12.0, 2.0), (30.0, 1.5)], end=40.0)
    assert time_to_target(rmse, 3.0, sign=-1) == 5.0
    assert time_to_target(rmse, 2.5, sign=-1) == 12.0
    assert time_to_target(rmse, 2.0, sign=-1) == 12.0  # reaching the target exactly counts
    assert time_to_target(rmse, 1.5, sign=-1) == 30.0
    assert time_to_target(rmse, 1.0, sign=-1) is None  # censored
    assert time_to_target(rmse, 2.0) == 5.0  # as a maximised metric 3.0 >= 2.0 at once
    accuracy = Run([(5.0, 0.6), (12.0, 0.8)], end=40.0)
    assert time_to_target(accuracy, 0.8) == 12.0
    assert time_to_target(accuracy, 0.81) is None
    assert time_to_target(Run([], 40.0), 0.1) is None


# censored_median


def test_censored_median_odd():
    assert censored_median([30.0, None, 10.0], H) == (30.0, False)
    assert censored_median([50.0, 10.0, 20.0, 5.0, 7.0], H) == (10.0, False)
    assert censored_median([None, None, 10.0], H) == (H, True)
    assert censored_median([4.0], H) == (4.0, False)
    assert censored_median([None], H) == (H, True)


def test_censored_median_even():
    assert censored_median([40.0, 10.0, 20.0, 30.0], H) == (25.0, False)
    assert censored_median([30.0, 20.0, None, 10.0], H) == (25.0, False)  # the censored one is beyond the middle
    assert censored_median([10.0, None, 20.0, None], H) == (60.0, True)  # upper middle censored: >= (20 + H) / 2
    assert censored_median([10.0, None, None, None], H) == (H, True)  # both middles censored
    assert censored_median([None] * 4, H) == (H, True)


def test_censored_median_treats_times_beyond_the_horizon_as_censored_and_needs_times():
    assert censored_median([10.0, 150.0, 20.0], H) == (20.0, False)
    assert censored_median([10.0, 150.0], H) == (55.0, True)
    with pytest.raises(ValueError):
        censored_median([], H)


# target_at


def test_target_at_odd_and_even():
    assert target_at([flat(10, 0.6), flat(20, 0.8), flat(30, 0.7)], 50.0) == 0.7
    assert target_at([flat(10, 0.6), flat(20, 0.8), flat(30, 0.7), flat(40, 0.9)], 50.0) == pytest.approx(0.75)
    # qualities after tau do not count: at tau = 25 the third run has none yet (the worst), median of 3 is 0.6
    assert target_at([flat(10, 0.6), Run([(20, 0.5), (30, 0.95)], H), flat(30, 0.7)], 25.0) == 0.5
    # a missing incumbent is the worst: with 4 runs the two middle ones are 0.6 and 0.7
    assert target_at([Run([], H), flat(10, 0.6), flat(10, 0.8), flat(10, 0.7)], 50.0) == pytest.approx(0.65)


def test_target_at_minimised_orders_by_signed_quality():
    runs = [Run([], H), flat(10, 1.0), flat(10, 2.0)]
    assert target_at(runs, 50.0, sign=-1) == 2.0  # signed: -inf, -2, -1
    assert target_at(runs, 50.0, sign=1) == 1.0  # signed: -inf, 1, 2
    assert target_at([flat(1, 3.0), flat(1, 1.0), flat(1, 2.0), flat(1, 4.0)], 5.0, sign=-1) == pytest.approx(2.5)


def test_target_at_undefined_raises():
    with pytest.raises(ValueError, match="no target"):
        target_at([Run([], H), Run([], H), flat(10, 0.8)], 50.0)
    with pytest.raises(ValueError, match="no target"):  # even: the lower middle has no incumbent
        target_at([Run([], H), Run([], H), flat(10, 0.7), flat(10, 0.8)], 50.0)
    with pytest.raises(ValueError, match="no target"):
        target_at([flat(60, 0.7), flat(60, 0.8), flat(10, 0.9)], 50.0)


# speedup


def test_speedup_and_its_bound_flag():
    assert speedup(100.0, [25.0, 25.0, None], H) == (4.0, False)
    assert speedup(100.0, [25.0, None, None], H) == (1.0, True)
    value, bound = speedup(50.0, [10.0, 20.0, None, None], H)
    assert value == pytest.approx(50.0 / 60.0) and bound
    assert speedup(50.0, [10.0, 20.0, 30.0, None], H) == (2.0, False)


# bootstrap internals: ordering and the nearest-rank percentile


def test_censored_replicate_is_ordered_below_uncensored_of_the_same_value():
    replicates = [(2.0, False), (2.0, True), (1.0, False), (3.0, True), (1.0, True)]
    assert _ordered(replicates) == [(1.0, True), (1.0, False), (2.0, True), (2.0, False), (3.0, True)]


def test_nearest_rank_index():
    assert _nearest_rank(2000, 0.05) == 99  # the 100th smallest
    assert _nearest_rank(2000, 0.95) == 1899  # the 1900th
    assert _nearest_rank(20, 0.05) == 0
    assert _nearest_rank(20, 0.95) == 18
    assert _nearest_rank(10, 0.05) == 0  # ceil(0.5) = 1
    assert _nearest_rank(10, 0.95) == 9  # ceil(9.5) = 10
    assert _nearest_rank(1, 0.05) == _nearest_rank(1, 0.95) == 0
    assert _nearest_rank(50, 0.05) == 2  # ceil(2.5) = 3: never rounded half to even
    assert _nearest_rank(30, 0.95) == 28  # ceil(28.5) = 29


def test_interval_takes_the_nearest_rank_percentiles():
    replicates = [(float(v), False) for v in (7, 3, 20, 1, 12, 5, 18, 9, 14, 2, 16, 4, 11, 19, 6, 13, 8, 17, 10, 15)]
    interval = _interval(replicates, (9.5, False), 0.90)
    assert (interval.low, interval.high) == (1.0, 19.0)
    half = _interval(replicates, (9.5, False), 0.50)
    assert (half.low, half.high) == (5.0, 15.0)  # ceil(0.25 * 20) = 5th, ceil(0.75 * 20) = 15th
    with pytest.raises(ValueError):
        _interval([], (1.0, False), 0.90)


# bootstrap_speedup


def test_bootstrap_speedup_strategy_always_at_a_quarter_of_tau():
    baseline = [Run([(5.0 + i, 0.5 + 0.04 * i)], H) for i in range(10)]
    strategy = [Run([(10.0, 0.3), (25.0, 1.0)], H) for _ in range(6)]
    interval = bootstrap_speedup(baseline, strategy, 100.0, H, resamples=300, rng=np.random.default_rng(1))
    assert interval == Interval(4.0, 4.0, False, False, 4.0, False, 300)
    assert interval.format() == "4.0x [4.0-4.0]"
    at_half = bootstrap_speedup(baseline, [Run([(12.5, 1.0)], H)] * 4, 50.0, H, resamples=200)
    assert (at_half.low, at_half.high, at_half.point) == (4.0, 4.0, 4.0)


def test_bootstrap_speedup_minimised_metric():
    baseline = [Run([(5.0, 3.0), (60.0, 2.0 + 0.1 * i)], H) for i in range(8)]
    strategy = [Run([(1.0, 5.0), (25.0, 1.0)], H) for _ in range(5)]
    interval = bootstrap_speedup(baseline, strategy, 100.0, H, sign=-1, resamples=200, rng=np.random.default_rng(2))
    assert (interval.low, interval.high, interval.point) == (4.0, 4.0, 4.0)
    assert not (interval.low_is_bound or interval.high_is_bound or interval.point_is_bound)


def test_bootstrap_speedup_all_censored_is_an_upper_bound():
    baseline = [Run([(5.0, 0.6 + 0.02 * i)], H) for i in range(10)]
    strategy = [Run([(3.0, 0.2), (50.0, 0.5)], H) for _ in range(10)]
    interval = bootstrap_speedup(baseline, strategy, H, H, resamples=200, rng=np.random.default_rng(3))
    assert interval.high_is_bound and interval.high <= 1.0
    assert interval.low_is_bound and interval.point_is_bound
    assert interval.format() == "<=1.0x [<=1.0-<=1.0]"
    assert interval.contains(1.0) and interval.contains(0.1) and not interval.contains(1.01)


def test_bootstrap_speedup_censored_low_end_and_exact_high_end():
    baseline = [flat(10.0, 0.8) for _ in range(5)]  # the target is 0.8 in every resample
    strategy = [flat(50.0, 0.9), flat(5.0, 0.5)]  # reaches it at 50 s / never
    # replicates: both reaching 100/50 = 2 (1/4), one each <= 100/75 (1/2), neither <= 1 (1/4)
    interval = bootstrap_speedup(baseline, strategy, H, H, resamples=400, rng=np.random.default_rng(4))
    assert (interval.low, interval.low_is_bound) == (1.0, True)
    assert (interval.high, interval.high_is_bound) == (2.0, False)
    assert interval.point == pytest.approx(100.0 / 75.0) and interval.point_is_bound
    assert interval.format() == "<=1.3x [<=1.0-2.0]"


def test_bootstrap_speedup_skips_resamples_without_target():
    baseline = [Run([], H), flat(10.0, 0.6), flat(10.0, 0.7)]  # no target when the empty run is drawn twice or more
    strategy = [flat(20.0, 0.9)] * 3
    interval = bootstrap_speedup(baseline, strategy, H, H, resamples=400, rng=np.random.default_rng(5))
    assert 400 * 20 / 27 - 40 < interval.resamples_used < 400 * 20 / 27 + 40  # P(defined) = 20/27
    assert (interval.low, interval.high, interval.point) == (5.0, 5.0, 5.0)
    with pytest.raises(ValueError, match="no target"):
        bootstrap_speedup([Run([], H)] * 2 + [flat(10, 0.6)], strategy, H, H, resamples=50)


def test_bootstrap_speedup_default_rng_is_reproducible():
    rng = np.random.default_rng(11)
    baseline = [random_search(rng) for _ in range(10)]
    strategy = [random_search(rng) for _ in range(10)]
    first = bootstrap_speedup(baseline, strategy, H / 2, H, resamples=200)
    assert first == bootstrap_speedup(baseline, strategy, H / 2, H, resamples=200)
    assert first == bootstrap_speedup(baseline, strategy, H / 2, H, resamples=200, rng=np.random.default_rng(0))


def test_control_interval_contains_one_and_a_faster_strategy_does_not():
    rng = np.random.default_rng(2024)
    baseline = [random_search(rng) for _ in range(40)]
    control = [random_search(rng) for _ in range(40)]
    for tau in (H, H / 2):
        interval = bootstrap_speedup(baseline, control, tau, H, resamples=300, rng=np.random.default_rng(7))
        assert interval.contains(1.0), (tau, interval)
        assert interval.low < interval.high
    faster = [random_search(rng, speed=4.0) for _ in range(40)]
    interval = bootstrap_speedup(baseline, faster, H / 2, H, resamples=300, rng=np.random.default_rng(7))
    assert not interval.contains(1.0) and interval.low > 1.5, interval


# Interval


def test_interval_format_and_summary_line():
    interval = Interval(2.1, 5.0, False, False, 3.2, False, 2000)
    assert interval.format() == "3.2x [2.1-5.0]"
    assert Interval(1.0, 1.9, True, False, 1.0, True, 2000).format() == "<=1.0x [<=1.0-1.9]"
    assert interval.format(digits=2) == "3.20x [2.10-5.00]"
    assert summary_line("search_speedup", "digits", interval) == "search_speedup digits 3.2x [2.1-5.0]"
    assert summary_line("control", "wine", interval) == "control wine 3.2x [2.1-5.0]"


@pytest.mark.parametrize(
    "low_bound, high_bound, x, expected",
    [
        (False, False, 1.0, False),
        (False, False, 2.0, True),
        (False, False, 3.0, True),
        (False, False, 5.0, True),
        (False, False, 6.0, False),
        (True, False, 1.0, True),
        (True, False, 0.0, True),
        (True, False, 3.0, True),
        (True, False, 6.0, False),
        (False, True, 1.0, False),
        (False, True, 3.0, True),
        (False, True, 5.0, True),
        (False, True, 6.0, False),
        (True, True, 0.5, True),
        (True, True, 3.0, True),
        (True, True, 5.0, True),
        (True, True, 5.5, False),
    ],
)
def test_interval_contains(low_bound, high_bound, x, expected):
    assert Interval(2.0, 5.0, low_bound, high_bound, 3.0, False, 100).contains(x) is expected


# probability_before


def test_probability_before_with_censored_pairs():
    strategy = [flat(10.0, 0.9), flat(30.0, 0.9), flat(5.0, 0.5)]  # times 10, 30, censored
    baseline = [flat(30.0, 0.85), flat(5.0, 0.7), flat(50.0, 0.8)]  # times 30, censored, 50
    # 10: wins 3; 30: tie, win, win = 2.5; censored: loss, half, loss = 0.5 -> 6 of 9 pairs
    assert probability_before(strategy, baseline, 0.8, H) == pytest.approx(6 / 9)
    assert probability_before(baseline, strategy, 0.8, H) == pytest.approx(3 / 9)
    assert probability_before([flat(5.0, 0.1)], [flat(5.0, 0.1)] * 2, 0.8, H) == 0.5  # both censored
    assert probability_before([flat(99.0, 0.9)], [flat(5.0, 0.1)], 0.8, H) == 1.0
    # a time beyond the horizon was not observed within it: censored like a run that never got there
    assert probability_before([flat(150.0, 0.9)], [flat(5.0, 0.1)], 0.8, H) == 0.5
    assert probability_before([flat(150.0, 0.9)], [flat(90.0, 0.9)], 0.8, H) == 0.0


def test_probability_before_minimised():
    strategy = [flat(10.0, 1.0), flat(40.0, 3.0)]  # times 10, censored
    baseline = [flat(20.0, 1.5)]  # time 20
    assert probability_before(strategy, baseline, 2.0, H, sign=-1) == 0.5
    # as a maximised metric the times are censored, 40 / censored: (1/2 + 1) / 2
    assert probability_before(strategy, baseline, 2.0, H, sign=1) == 0.75


# anytime_area / area_ratio / bootstrap_ratio


def test_anytime_area_exact():
    run = Run([(10.0, 0.6), (30.0, 0.8)], end=H)
    assert anytime_area(run, H, 0.5) == pytest.approx(0.1 * 20 + 0.3 * 70)  # 23
    assert anytime_area(run, 20.0, 0.5) == pytest.approx(0.1 * 10)
    assert anytime_area(run, 30.0, 0.5) == pytest.approx(0.1 * 20)
    assert anytime_area(run, 5.0, 0.5) == 0.0
    assert anytime_area(Run([(0.0, 0.7)], 50.0), H, 0.5) == pytest.approx(20.0)  # held after end
    assert anytime_area(Run([], H), H, 0.5) == 0.0
    rmse = Run([(10.0, 3.0), (30.0, 2.0)], end=H)
    assert anytime_area(rmse, H, 4.0, sign=-1) == pytest.approx(1.0 * 20 + 2.0 * 70)  # 160


def test_area_ratio():
    strategy = [Run([(10.0, 0.6), (30.0, 0.8)], H), flat(0.0, 0.7)]  # areas 23, 20
    baseline = [flat(50.0, 0.6), flat(10.0, 0.6)]  # areas 5, 9
    assert area_ratio(strategy, baseline, H, 0.5) == pytest.approx(21.5 / 7)
    assert area_ratio(baseline, strategy, H, 0.5) == pytest.approx(7 / 21.5)
    assert area_ratio([flat(0.0, 0.5)], [flat(0.0, 0.5)], H, 0.5) == 1.0


def test_bootstrap_ratio():
    same = bootstrap_ratio([flat(0.0, 0.7)] * 2, [flat(0.0, 0.6)] * 3, H, 0.5, resamples=200)
    assert same == Interval(2.0, 2.0, False, False, 2.0, False, 200)
    spread = bootstrap_ratio(
        [flat(0.0, 0.6), flat(0.0, 0.8)], [flat(0.0, 0.6)] * 4, H, 0.5, resamples=400, rng=np.random.default_rng(6)
    )  # replicates 1 (1/4), 2 (1/2), 3 (1/4)
    assert (spread.low, spread.high, spread.point) == (pytest.approx(1.0), pytest.approx(3.0), pytest.approx(2.0))
    assert not (spread.low_is_bound or spread.high_is_bound or spread.point_is_bound)
    assert spread.format() == "2.0x [1.0-3.0]"
    rmse = bootstrap_ratio([flat(0.0, 2.0)], [flat(0.0, 3.0)], H, 4.0, sign=-1, resamples=50)
    assert (rmse.low, rmse.high, rmse.point) == (2.0, 2.0, 2.0)


# median_curve / range_curve


def test_median_and_range_curves():
    runs = [flat(10.0, 0.5), flat(20.0, 0.7), flat(30.0, 0.9)]
    grid = [5.0, 10.0, 20.0, 30.0]
    assert median_curve(runs, grid) == [None, None, 0.5, 0.7]
    assert median_curve(runs, grid, sign=-1) == [None, None, 0.7, 0.7]  # at 20: signed -inf, -0.7, -0.5
    assert range_curve(runs, grid) == [None, (0.5, 0.5), (0.5, 0.7), (0.5, 0.9)]
    assert median_curve(runs + [flat(1.0, 0.6)], [40.0]) == [pytest.approx(0.65)]
    assert median_curve([], [1.0]) == [None]
