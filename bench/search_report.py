"""The search benchmark's report for one task: targets, each strategy's quality over time, time to target, speedups
with bootstrap 90% intervals at both targets, the probability of reaching the target before a baseline run, the
anytime area against the baseline's, whether the default has an incumbent early, and the anytime plot.

Summary lines (one each per task): `search_speedup TASK X.Xx [LO-HI]` (the default at the T target) and
`control TASK X.Xx [LO-HI]` (random search against random search); `<=` marks a bound where the median run was
censored (it had not reached the target when observation ended).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from search_run import quality_curve
from search_stats import (
    Run,
    anytime_area,
    bootstrap_ratio,
    bootstrap_speedup,
    censored_median,
    median_curve,
    probability_before,
    quality_at,
    range_curve,
    summary_line,
    target_at,
    time_to_target,
)

EARLY_FROM = 0.1  # the default's median incumbent must be at least random search's from T/10 on
GRID_POINTS = 200


def as_runs(saved: list[dict[str, Any]], maximize: bool, seconds: float) -> list[Run]:
    """The saved runs as the statistics see them: incumbent curves, observed until they stopped (or T)."""
    return [
        Run(quality_curve(r["trials"], maximize), min(float(r["end"]), seconds) if r["stop"] != "time" else seconds)
        for r in sorted(saved, key=lambda r: r["seed"])
    ]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _quality_marks(runs: list[Run], seconds: float, sign: int) -> str:
    marks = []
    for fraction, name in ((0.1, "T/10"), (0.5, "T/2"), (1.0, "T")):
        values = [quality_at(run, seconds * fraction) for run in runs]
        known = sorted((v for v in values if v is not None), key=lambda v: sign * v)
        median = median_curve(runs, [seconds * fraction], sign)[0]
        span = f"{_fmt(known[0])}-{_fmt(known[-1])}" if known else "-"
        missing = sum(v is None for v in values)
        marks.append(f"{name} {_fmt(median)} [{span}{f', {missing} without incumbent' if missing else ''}]")
    return "; ".join(marks)


def _floor(groups: dict[str, list[Run]], sign: int) -> float:
    """The anytime area's floor: the worst incumbent quality any run of the task showed."""
    return min((q for runs in groups.values() for run in runs for _, q in run.curve), key=lambda q: sign * q)


def early_incumbent(default: list[Run], baseline: list[Run], seconds: float, sign: int) -> str:
    """Whether the default's median incumbent is at least random search's at every moment from T/10 on."""
    grid = [seconds * (EARLY_FROM + (1 - EARLY_FROM) * i / GRID_POINTS) for i in range(GRID_POINTS + 1)]
    mine, theirs = median_curve(default, grid, sign), median_curve(baseline, grid, sign)
    behind = [t for t, a, b in zip(grid, mine, theirs) if b is not None and (a is None or sign * a < sign * b)]
    if not behind:
        return "met: from T/10 on the default's median incumbent is never below random search's"
    return (
        f"missed: the default's median incumbent is below random search's at {len(behind)} of {len(grid)} "
        f"moments from T/10 on, between {behind[0]:.0f} s and {behind[-1]:.0f} s"
    )


def report(
    task: Any, maximize: bool, saved: dict[str, list[dict[str, Any]]], seconds: float, seeds: int, out: Path
) -> None:
    sign = task.sign
    print(f"\n== {task.name} ({task.role}): {task.description}")
    groups = {key: as_runs(runs, maximize, seconds) for key, runs in saved.items() if runs}
    baseline = groups.get("baseline", [])
    if len(baseline) < seeds:
        print(f"baseline: {len(baseline)} of {seeds} seeds done: no target yet")
        return
    try:
        targets = {
            "T": (seconds, target_at(baseline, seconds, sign)),
            "T/2": (seconds / 2, target_at(baseline, seconds / 2, sign)),
        }
    except ValueError as exc:
        print(f"{exc}: T is too short for this task")
        return
    best = max((q for runs in groups.values() for run in runs for _, q in run.curve), key=lambda q: sign * q)
    print(
        f"targets ({task.quality}, median of {len(baseline)} baseline runs): at T = {seconds / 60:g} min "
        f"{targets['T'][1]:.4f}, at T/2 {targets['T/2'][1]:.4f}; best incumbent of any run on this task "
        f"{best:.4f}{_standard_error(task, targets['T'][1])}"
    )
    floor = _floor(groups, sign)
    lines = []
    for key, runs in groups.items():
        done = f"{len(runs)} of {seeds} seeds" + ("" if len(runs) >= seeds else ": incomplete")
        print(f"-- {key} ({done})\n   quality {_quality_marks(runs, seconds, sign)}")
        if key == "baseline":
            continue
        for name, (tau, target) in targets.items():
            times = [time_to_target(run, target, sign) for run in runs]
            median, censored = censored_median(times, seconds)
            each = ", ".join(">=T" if t is None else f"{t:.0f}" for t in times)
            interval = bootstrap_speedup(baseline, runs, tau, seconds, sign)
            before = probability_before(runs, baseline, target, seconds, sign)
            print(
                f"   {name} target {target:.4f}: time {'>= ' if censored else ''}{median:.0f} s [{each}]; "
                f"speedup {interval.format()}; P(before a baseline run) {before:.2f}"
            )
            if name == "T" and key in ("default", "control") and len(runs) >= seeds:
                lines.append(summary_line("search_speedup" if key == "default" else "control", task.name, interval))
        area = bootstrap_ratio(runs, baseline, seconds, floor, sign)
        mean_area = statistics.mean(anytime_area(run, seconds, floor, sign) for run in runs)
        print(f"   anytime area / the baseline's: {area.format()} (mean area {mean_area:.1f}, floor {floor:.4f})")
        early = [r for r in saved[key] if r["stop"] == "target" and "stop_target" not in r]
        if early:
            print(
                f"   note: {len(early)} run(s) stopped at the point target (the harness before stop_target): a "
                f"replicate with a higher target counts them as not reaching it, so the intervals' low ends are "
                f"conservative"
            )
    if "default" in groups:
        print(f"incumbent_early {task.name} {early_incumbent(groups['default'], baseline, seconds, sign)}")
    for line in lines:
        print(line)
    plot(task, groups, targets, seconds, out / f"anytime-{task.name}.png")


def _standard_error(task: Any, target: float) -> str:
    n = getattr(task, "test_samples", None)
    if not n or task.quality != "test_accuracy":
        return ""
    se = (target * (1 - target) / n) ** 0.5
    return f"; test split {n} samples: standard error at the target {se:.4f}, (1 - target) = {(1 - target) / se:.1f} SE"


def plot(
    task: Any, groups: dict[str, list[Run]], targets: dict[str, tuple[float, float]], seconds: float, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = [seconds * i / GRID_POINTS for i in range(GRID_POINTS + 1)]
    figure, axes = plt.subplots(figsize=(9, 5.5))
    shown = []
    for key, runs in groups.items():
        medians, ranges = median_curve(runs, grid, sign=task.sign), range_curve(runs, grid)
        points = [(t / 60, m, r) for t, m, r in zip(grid, medians, ranges) if m is not None and r is not None]
        if not points:
            continue
        xs = [p[0] for p in points]
        line = axes.plot(xs, [p[1] for p in points], label=f"{key} ({len(runs)} seeds)")
        axes.fill_between(
            xs, [p[2][0] for p in points], [p[2][1] for p in points], color=line[0].get_color(), alpha=0.12
        )
        shown += [p[1] for p in points]
    for name, (_, target) in targets.items():
        axes.axhline(
            target,
            color="grey",
            linestyle="--" if name == "T" else ":",
            linewidth=1,
            label=f"target at {name} {target:.4f}",
        )
    axes.set_xlabel("minutes since the run started (1 worker, 1 core)")
    axes.set_ylabel(f"{task.quality} of the incumbent (best by validation)")
    axes.set_title(f"{task.name}: incumbent quality over time, median and range over seeds")
    axes.set_xlim(0, seconds / 60)
    if shown:
        low, high = min(shown), max(shown)
        pad = (high - low) * 0.15 or 0.01
        axes.set_ylim(low - pad, high + pad)
    if task.sign < 0:
        axes.invert_yaxis()
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right" if task.sign > 0 else "upper right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    print(f"anytime plot: {path}")
