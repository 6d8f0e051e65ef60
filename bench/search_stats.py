"""The statistics of the search benchmark: targets, time to target, speedups with bootstrap intervals, P(before),
anytime areas and the median curves of the anytime plot.

Definitions
- A run is `Run(curve, end)`: `curve` = (seconds, quality) at each change of incumbent, ascending in seconds;
  `end` = the seconds at which the run stopped being observed (it ran to T, or stopped early on reaching the
  benchmark's highest target). After its last point (and after `end`) a run's quality is held. The curve is taken
  as given: points are not cut at `end`.
- Qualities are compared "signed", larger is better: `sign=+1` for a maximised metric (accuracy), `sign=-1` for a
  minimised one (RMSE); comparisons use `sign * quality`. Qualities are returned unsigned (as given).
- quality_at(run, t): the quality of the last curve point with seconds <= t; None before the first incumbent.
- time_to_target(run, target): the first seconds at which sign*quality >= sign*target; None if the curve never
  gets there: the time is censored (the run reached it at some unknown time > run.end, if ever).
- Signed median: a run with no incumbent counts as the worst possible (-inf signed). The values are ordered by
  signed quality; n odd: the middle one; n even: the mean of the two middle ones. It is undefined when a middle
  value is a missing incumbent. target_at raises ValueError then; median_curve gives None.
- target_at(baseline, tau): the signed median over the baseline runs of quality_at(run, tau).
- censored_median(times, horizon): the censored times (None, or a known time above `horizon`) are known only to be
  >= horizon; they take the value `horizon` and are ordered last. n odd: the middle; if censored, (horizon, True)
  meaning ">= horizon". n even: the mean of the two middle ones; if the upper middle is censored the mean is a
  lower bound, (mean of the lower middle (or horizon if censored too) and horizon, True).
- speedup(tau, times, horizon) = tau / censored_median; flagged as an upper bound ("<=") exactly when the median is
  censored. A median time of 0 gives an infinite speedup.
- bootstrap_speedup: seeds are resampled with replacement on both sides; each replicate recomputes the target from
  its baseline resample (a resample with no target is skipped and not counted in `resamples_used`), the strategy's
  times to it, and the speedup. Replicates are ordered by value, a censored one ("<= value") below every
  uncensored one of the same value. The interval is the percentile interval by the nearest-rank rule: the
  q-quantile is the ceil(q * n)-th smallest of the n replicates, q = (1 - level) / 2 and 1 - (1 - level) / 2.
  The point estimate uses the full samples.
- P(before): over all (strategy run, baseline run) pairs: 1 if the strategy's time is known and smaller than the
  baseline's (a censored baseline time is beyond the horizon, so any known strategy time beats it), 0 if the
  baseline's is known and smaller, 1/2 for exact ties and for pairs where both are censored; the mean over pairs.
- anytime_area(run, horizon, floor): the integral from 0 to horizon of sign * (q(t) - floor) dt, q(t) = floor
  before the first incumbent, held after the last point. area_ratio: the strategy's mean area / the baseline's
  (> 1: better than the baseline; both means 0 gives 1.0, only the baseline's 0 gives inf). bootstrap_ratio
  resamples both sides like bootstrap_speedup, with no censoring.
- median_curve(runs, grid): per grid time the signed median of quality_at over the runs (None where undefined).
  range_curve(runs, grid): per grid time (min, max) of quality_at over the runs that have an incumbent (None when
  none has).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Interval",
    "Run",
    "anytime_area",
    "area_ratio",
    "bootstrap_ratio",
    "bootstrap_speedup",
    "censored_median",
    "median_curve",
    "probability_before",
    "quality_at",
    "range_curve",
    "speedup",
    "summary_line",
    "target_at",
    "time_to_target",
]


@dataclass(frozen=True)
class Run:
    """One seed's incumbent curve, (seconds, quality) ascending, observed until `end` seconds."""

    curve: list[tuple[float, float]]
    end: float


@dataclass(frozen=True)
class Interval:
    """A bootstrap percentile interval with its point estimate; `*_is_bound` marks an upper bound ("<= value")."""

    low: float
    high: float
    low_is_bound: bool
    high_is_bound: bool
    point: float
    point_is_bound: bool
    resamples_used: int

    def format(self, digits: int = 1) -> str:
        """E.g. `3.2x [2.1-5.0]`, or `<=1.0x [<=1.0-1.9]` with bounds."""

        def show(value: float, bound: bool) -> str:
            return f"{'<=' if bound else ''}{value:.{digits}f}"

        return (
            f"{show(self.point, self.point_is_bound)}x "
            f"[{show(self.low, self.low_is_bound)}-{show(self.high, self.high_is_bound)}]"
        )

    def contains(self, x: float) -> bool:
        """Whether the true interval could contain x. A bound end means the true end is <= the shown value: a bound
        low end may lie anywhere below, so it excludes nothing; the high end (bound or not) excludes x > high."""
        return (self.low_is_bound or self.low <= x) and x <= self.high


def quality_at(run: Run, t: float) -> float | None:
    """The incumbent quality at time t (held after the last point and after `end`); None before the first."""
    quality = None
    for seconds, value in run.curve:
        if seconds > t:
            break
        quality = value
    return quality


def time_to_target(run: Run, target: float, sign: int = 1) -> float | None:
    """The first seconds at which sign * quality >= sign * target; None (censored) if the curve never gets there."""
    for seconds, value in run.curve:
        if sign * value >= sign * target:
            return seconds
    return None


def _signed_median(values: list[float | None], sign: int) -> float | None:
    """The median in signed order, a None being the worst value; None when a middle value is None (or no values)."""
    n = len(values)
    if n == 0:
        return None
    ordered = sorted(-math.inf if v is None else sign * v for v in values)
    middle = ordered[(n - 1) // 2 : n // 2 + 1]  # one value (n odd) or two (n even)
    if -math.inf in middle:
        return None
    return sign * (sum(middle) / len(middle))


def target_at(baseline_runs: list[Run], tau: float, sign: int = 1) -> float:
    """The target: the signed median over the baseline runs of their quality at tau."""
    target = _signed_median([quality_at(run, tau) for run in baseline_runs], sign)
    if target is None:
        raise ValueError(
            f"no target: the median of {len(baseline_runs)} baseline run(s) at {tau:g} s falls on a run "
            f"without an incumbent"
        )
    return target


def censored_median(times: list[float | None], horizon: float) -> tuple[float, bool]:
    """The median time and whether it is censored (then the value is a lower bound: ">= value")."""
    n = len(times)
    if n == 0:
        raise ValueError("censored_median of no times")
    known = sorted(t for t in times if t is not None and t <= horizon)
    ordered: list[tuple[float, bool]] = [(t, False) for t in known] + [(horizon, True)] * (n - len(known))
    if n % 2:
        return ordered[n // 2]
    (lower, _), (upper, upper_censored) = ordered[n // 2 - 1], ordered[n // 2]
    return (lower + upper) / 2, upper_censored


def speedup(tau: float, strategy_times: list[float | None], horizon: float) -> tuple[float, bool]:
    """tau / the strategy's median time to target, and whether it is an upper bound (the median was censored)."""
    median, censored = censored_median(strategy_times, horizon)
    return (tau / median if median > 0 else math.inf), censored


def _ordered(replicates: list[tuple[float, bool]]) -> list[tuple[float, bool]]:
    """Replicates by value; a censored one ("<= value") below the uncensored ones of the same value."""
    return sorted(replicates, key=lambda r: (r[0], not r[1]))


def _nearest_rank(n: int, q: float) -> int:
    """The 0-based index of the q-quantile of n sorted values by the nearest-rank rule: the ceil(q * n)-th."""
    return min(n, max(1, math.ceil(q * n - 1e-9))) - 1


def _interval(replicates: list[tuple[float, bool]], point: tuple[float, bool], level: float) -> Interval:
    if not replicates:
        raise ValueError("no bootstrap replicate could be computed")
    ordered = _ordered(replicates)
    tail = (1 - level) / 2
    (low, low_bound), (high, high_bound) = (ordered[_nearest_rank(len(ordered), q)] for q in (tail, 1 - tail))
    return Interval(low, high, low_bound, high_bound, point[0], point[1], len(ordered))


def _resampled(n: int, rng: np.random.Generator) -> list[int]:
    return rng.integers(0, n, size=n).tolist()


def _bootstrap(
    baseline_n: int,
    strategy_n: int,
    replicate: Callable[[list[int], list[int]], tuple[float, bool] | None],
    resamples: int,
    rng: np.random.Generator | None,
) -> list[tuple[float, bool]]:
    """The replicates over `resamples` resamples of both sides' seeds (baseline first); None ones are skipped."""
    rng = np.random.default_rng(0) if rng is None else rng
    values = []
    for _ in range(resamples):
        baseline, strategy = _resampled(baseline_n, rng), _resampled(strategy_n, rng)
        value = replicate(baseline, strategy)
        if value is not None:
            values.append(value)
    return values


def bootstrap_speedup(
    baseline_runs: list[Run],
    strategy_runs: list[Run],
    tau: float,
    horizon: float,
    sign: int = 1,
    resamples: int = 2000,
    level: float = 0.90,
    rng: np.random.Generator | None = None,
) -> Interval:
    """The speedup at the target defined at tau, with a bootstrap percentile interval (both sides resampled)."""
    at_tau = [quality_at(run, tau) for run in baseline_runs]
    cache: dict[float, list[float | None]] = {}

    def times(target: float) -> list[float | None]:
        if target not in cache:
            cache[target] = [time_to_target(run, target, sign) for run in strategy_runs]
        return cache[target]

    def replicate(baseline: list[int], strategy: list[int]) -> tuple[float, bool] | None:
        target = _signed_median([at_tau[i] for i in baseline], sign)
        if target is None:
            return None
        all_times = times(target)
        return speedup(tau, [all_times[i] for i in strategy], horizon)

    point = speedup(tau, times(target_at(baseline_runs, tau, sign)), horizon)
    return _interval(_bootstrap(len(baseline_runs), len(strategy_runs), replicate, resamples, rng), point, level)


def probability_before(
    strategy_runs: list[Run], baseline_runs: list[Run], target: float, horizon: float, sign: int = 1
) -> float:
    """P(a strategy run reaches the target before a baseline run), over all pairs; ties and both censored: 1/2."""

    def observed(run: Run) -> float | None:
        t = time_to_target(run, target, sign)
        return t if t is not None and t <= horizon else None

    mine, theirs = [observed(r) for r in strategy_runs], [observed(r) for r in baseline_runs]
    if not mine or not theirs:
        raise ValueError("probability_before needs runs on both sides")
    return sum(_win(a, b) for a in mine for b in theirs) / (len(mine) * len(theirs))


def _win(mine: float | None, theirs: float | None) -> float:
    """1 if `mine` is earlier, 0 if later, 1/2 if tied; None is censored (later than any known time)."""
    if mine is None or theirs is None:
        return 0.5 if mine is None and theirs is None else float(mine is not None)
    return 1.0 if mine < theirs else 0.0 if mine > theirs else 0.5


def anytime_area(run: Run, horizon: float, floor: float, sign: int = 1) -> float:
    """The integral over [0, horizon] of sign * (quality - floor), quality = floor before the first incumbent."""
    area, since, value = 0.0, 0.0, floor
    for seconds, quality in run.curve:
        if seconds >= horizon:
            break
        start = max(seconds, 0.0)
        area += sign * (value - floor) * (start - since)
        since, value = start, quality
    return area + sign * (value - floor) * (horizon - since)


def _ratio(mine: float, theirs: float) -> float:
    if theirs == 0:
        return 1.0 if mine == 0 else math.copysign(math.inf, mine)
    return mine / theirs


def area_ratio(
    strategy_runs: list[Run], baseline_runs: list[Run], horizon: float, floor: float, sign: int = 1
) -> float:
    """The strategy's mean anytime area / the baseline's (> 1: better than the baseline)."""
    mine = [anytime_area(run, horizon, floor, sign) for run in strategy_runs]
    theirs = [anytime_area(run, horizon, floor, sign) for run in baseline_runs]
    return _ratio(sum(mine) / len(mine), sum(theirs) / len(theirs))


def bootstrap_ratio(
    strategy_runs: list[Run],
    baseline_runs: list[Run],
    horizon: float,
    floor: float,
    sign: int = 1,
    resamples: int = 2000,
    level: float = 0.90,
    rng: np.random.Generator | None = None,
) -> Interval:
    """The area ratio with a bootstrap percentile interval (both sides resampled; nothing censored)."""
    mine = [anytime_area(run, horizon, floor, sign) for run in strategy_runs]
    theirs = [anytime_area(run, horizon, floor, sign) for run in baseline_runs]

    def replicate(baseline: list[int], strategy: list[int]) -> tuple[float, bool]:
        return _ratio(
            sum(mine[i] for i in strategy) / len(strategy), sum(theirs[i] for i in baseline) / len(baseline)
        ), False

    point = (area_ratio(strategy_runs, baseline_runs, horizon, floor, sign), False)
    return _interval(_bootstrap(len(baseline_runs), len(strategy_runs), replicate, resamples, rng), point, level)


def median_curve(runs: list[Run], grid: list[float], sign: int = 1) -> list[float | None]:
    """Per grid time, the signed median of the runs' qualities (None where a missing incumbent makes it undefined)."""
    return [_signed_median([quality_at(run, t) for run in runs], sign) for t in grid]


def range_curve(runs: list[Run], grid: list[float]) -> list[tuple[float, float] | None]:
    """Per grid time, (min, max) of the qualities of the runs that have an incumbent (None when none has)."""
    result: list[tuple[float, float] | None] = []
    for t in grid:
        known = [q for q in (quality_at(run, t) for run in runs) if q is not None]
        result.append((min(known), max(known)) if known else None)
    return result


def summary_line(kind: str, task: str, interval: Interval) -> str:
    """The per-task summary line, e.g. `search_speedup digits 3.2x [2.1-5.0]` (kind: search_speedup or control)."""
    return f"{kind} {task} {interval.format()}"
