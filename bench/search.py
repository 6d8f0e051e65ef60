"""Search benchmark (shared/BENCHMARKS.md, protocol in bench/search_protocol.md): how much sooner a search strategy
finds a model as good as the one random search finds in T, on tasks the default strategy was not chosen on.

For each task (bench/search_tasks.py) and strategy (bench/search_strategies.py), --seeds independent runs of
`automl run` (bench/search_run.py: one worker, one thread, pinned to one core, a fresh folder each). The baseline
(random search, every trial to max_epochs) runs T; its median incumbent quality at T and at T/2 are the targets.
Every other strategy, the control (random search again, other seeds) included, runs until its incumbent reaches
the highest target a bootstrap replicate can set (the best baseline quality at T and at T/2: a resample's median
is never above its best), or T; so every replicate's time to target is observed, not censored by the stop.
Each run is saved to bench/baselines/search/runs.json as it ends, with the fingerprints of its task and strategy
(bench/search_probe.py: behavioural), so an interrupted benchmark resumes where it stopped and a change that
alters results re-runs what it alters. Then the report (bench/search_report.py).

    .venv/bin/python bench/search.py [--tasks evaluation|development|all|NAME,...] [--strategies KEY,...]
                                     [--minutes 5] [--seeds 10] [--slots 2] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from search_probe import Probes, fingerprint, strategy_probe, training_probe, versions
from search_report import as_runs, report
from search_run import Run, run_folder, write_study
from search_stats import quality_at
from search_strategies import ABLATIONS, PRIMARY, Strategy, strategies
from search_tasks import TASKS, Task, data_digest, prepare

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "baselines" / "search"
CACHE = ROOT / "bench" / ".search-data"
POLL_SECONDS = 5


@dataclass
class TaskSetup:
    """A task ready to run: its data file, its study template, the objective's direction and its fingerprint."""

    task: Task
    data: Path
    template: Path
    maximize: bool
    fingerprint: str


def commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "orchestrator", "plugins", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    dirty = [line for line in dirty.splitlines() if "bench/baselines/" not in line]
    return head.stdout.strip() + ("+uncommitted" if dirty else "")


def machine() -> str:
    import platform

    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, {versions()}"


def load_runs(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["runs"] if path.exists() else []


def save_runs(path: Path, runs: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"runs": runs}, indent=None, separators=(",", ":")).replace("},{", "},\n{") + "\n")
    temporary.replace(path)


def set_up(
    tasks: list[Task], chosen: list[Strategy], probes: Probes, slots: int
) -> tuple[dict[str, TaskSetup], dict[str, str]]:
    """Prepare each task's data and compute (or read back) every fingerprint; probes run `slots` at a time."""
    setups: dict[str, TaskSetup] = {}
    jobs = []
    for task in tasks:
        data = prepare(task, CACHE)
        template = ROOT / "bench" / "search_tasks" / task.study
        study = yaml.safe_load(template.read_text())
        maximize = (study.get("objective") or {}).get("direction", "maximize") == "maximize"
        jobs.append((f"training {task.name} {data_digest(data)}", lambda t=template, d=data: training_probe(t, d)))
        setups[task.name] = TaskSetup(task, data, template, maximize, "")
    for strategy in chosen:
        jobs.append((_search_key(strategy), lambda s=strategy: strategy_probe(s.sampler, s.pruner)))
    with ThreadPoolExecutor(max_workers=slots) as pool:
        digests = dict(zip([k for k, _ in jobs], pool.map(lambda job: probes.get(*job), jobs)))
    for name, setup in setups.items():
        setup.fingerprint = fingerprint(
            data_digest(setup.data), setup.template.read_text(), digests[f"training {name} {data_digest(setup.data)}"]
        )
    strategy_prints = {s.key: fingerprint(s.sampler, s.pruner, digests[_search_key(s)]) for s in chosen}
    return setups, strategy_prints


def _search_key(strategy: Strategy) -> str:
    """The probe cache's key of a strategy's search probe (strategies with the same sampler and pruner share it)."""
    return f"search {json.dumps([strategy.sampler, strategy.pruner], sort_keys=True)}"


class Plan:
    """The runs to do and the runs done, for the chosen tasks and strategies at this T and these fingerprints."""

    def __init__(
        self,
        setups: dict[str, TaskSetup],
        chosen: list[Strategy],
        prints: dict[str, str],
        seeds: int,
        seconds: float,
        out: Path,
    ) -> None:
        self.setups, self.chosen, self.prints, self.seeds, self.seconds = setups, chosen, prints, seeds, seconds
        self.runs_file = out / "runs.json"
        self.runs = load_runs(self.runs_file)
        self.stops: dict[str, float | None] = {}  # per task, once its baseline is complete

    def current(self, run: dict[str, Any]) -> bool:
        setup = self.setups.get(run["task"])
        return (
            setup is not None
            and run["strategy"] in self.prints
            and run["seconds"] == self.seconds
            and run["task_fingerprint"] == setup.fingerprint
            and run["strategy_fingerprint"] == self.prints[run["strategy"]]
        )

    def done(self, task: str, strategy: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.runs
            if r["task"] == task
            and r["strategy"] == strategy
            and self.current(r)
            and r["seed"] in {self.strategy(strategy).seed(i) for i in range(self.seeds)}
        ]

    def strategy(self, key: str) -> Strategy:
        return next(s for s in self.chosen if s.key == key)

    def stop_target(self, task: str) -> float | None:
        """Where a run other than the baseline's may stop, once every baseline seed of the task is done: the best
        baseline quality at T or at T/2, the highest target any bootstrap replicate of the baseline can set (a
        resample's median is never above its best). None (the run goes to T) before that, or if no baseline run
        has an incumbent by T/2. Computed once the baseline is complete, then kept (it is asked at every poll)."""
        if task in self.stops:
            return self.stops[task]
        baseline = self.done(task, "baseline")
        if len(baseline) < self.seeds:
            return None
        setup = self.setups[task]
        sign = setup.task.sign
        runs = as_runs(baseline, setup.maximize, self.seconds)
        known = [
            q
            for run in runs
            for q in (quality_at(run, self.seconds), quality_at(run, self.seconds / 2))
            if q is not None
        ]
        self.stops[task] = max(known, key=lambda q: sign * q) if known else None
        return self.stops[task]

    def pending(self) -> list[tuple[str, Strategy, int]]:
        jobs = []
        for task in self.setups:
            for strategy in self.chosen:  # the baseline first: the others need its targets
                seeds = {r["seed"] for r in self.done(task, strategy.key)}
                jobs += [(task, strategy, strategy.seed(i)) for i in range(self.seeds) if strategy.seed(i) not in seeds]
        return jobs

    def record(self, result: dict[str, Any]) -> None:
        self.runs.append(result)
        save_runs(self.runs_file, self.runs)


def start(plan: Plan, task: str, strategy: Strategy, seed: int, core: int) -> Run:
    setup = plan.setups[task]
    label = f"{task}-{strategy.key}-{seed}"
    study = write_study(
        setup.template, setup.data, run_folder(label), strategy.sampler, strategy.pruner, seed, plan.seconds
    )
    return Run(study, core, plan.seconds, setup.task.quality, setup.maximize, label)


def execute(plan: Plan, slots: int, here: str, where: str) -> None:
    """Run the pending jobs, `slots` at a time, each pinned to its own core; save each as it ends."""
    pending = plan.pending()
    cores = sorted(os.sched_getaffinity(0))[:slots]
    active: dict[int, tuple[str, Strategy, int, Run]] = {}
    try:
        while pending or active:
            for core in cores:
                if core not in active and pending:
                    task, strategy, seed = pending.pop(0)
                    active[core] = (task, strategy, seed, start(plan, task, strategy, seed, core))
                    print(f"started {task} {strategy.key} seed={seed} on core {core}", flush=True)
            time.sleep(POLL_SECONDS)
            for core, (task, strategy, seed, run) in list(active.items()):
                stop = None if strategy.key == "baseline" else plan.stop_target(task)
                if not run.check(stop, plan.setups[task].task.sign):
                    continue
                result = {
                    "task": task,
                    "strategy": strategy.key,
                    "seed": seed,
                    "seconds": plan.seconds,
                    "task_fingerprint": plan.setups[task].fingerprint,
                    "strategy_fingerprint": plan.prints[strategy.key],
                    "sampler": strategy.sampler,
                    "pruner": strategy.pruner,
                    "commit": here,
                    "machine": where,
                    "core": core,
                    "stop_target": stop,
                    **run.finish(),
                }
                del active[core]
                plan.record(result)
                complete = sum(t["state"] == "COMPLETE" for t in result["trials"])
                print(
                    f"run {task} {strategy.key} seed={seed}: stopped ({result['stop']}) at {result['end']:.0f} s, "
                    f"{len(result['trials'])} finished trials ({complete} complete)",
                    flush=True,
                )
    except BaseException:
        for *_, run in active.values():
            run.kill()
        raise


def choose_tasks(spec: str) -> list[Task]:
    if spec in ("evaluation", "development", "all"):
        group = [t for t in TASKS.values() if spec in ("all", t.role)]
        for task in group:
            if task.unfit:
                print(f"left out: {task.name} ({task.unfit}); name it to run it anyway", flush=True)
        return [t for t in group if not t.unfit]
    unknown = [name for name in spec.split(",") if name not in TASKS]
    if unknown:
        sys.exit(f"--tasks: unknown {', '.join(unknown)}; choose from {', '.join(TASKS)}")
    return [TASKS[name] for name in spec.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="evaluation", help="evaluation, development, all, or names")
    parser.add_argument(
        "--strategies",
        default=",".join(PRIMARY),
        help=f"keys (baseline always included): {', '.join(PRIMARY + ABLATIONS)}",
    )
    parser.add_argument("--minutes", type=float, default=5.0, help="T: the length of a run")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per strategy and task")
    parser.add_argument("--slots", type=int, default=2, help="runs at once, each pinned to its own core")
    parser.add_argument("--report-only", action="store_true", help="report the saved runs; run nothing")
    parser.add_argument(
        "--out",
        type=Path,
        default=OUT,
        help="where runs.json, probes.json and the plots go (another folder for a trial of the harness)",
    )
    args = parser.parse_args()
    every = strategies()
    keys = ["baseline"] + [k for k in args.strategies.split(",") if k and k != "baseline"]
    unknown = [k for k in keys if k not in every]
    if unknown:
        parser.error(f"--strategies: unknown {', '.join(unknown)}; choose from {', '.join(every)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tasks, chosen = choose_tasks(args.tasks), [every[k] for k in keys]
    here, where = commit(), machine()
    probes = Probes(args.out / "probes.json")
    setups, prints = set_up(tasks, chosen, probes, args.slots)
    plan = Plan(setups, chosen, prints, args.seeds, args.minutes * 60, args.out)
    jobs = plan.pending()
    print(
        f"search benchmark: T = {args.minutes:g} min, {args.seeds} seeds, tasks {', '.join(setups)}, strategies "
        f"{', '.join(keys)}; {len(jobs)} run(s) to go on {args.slots} core(s) (at most "
        f"{len(jobs) * args.minutes / args.slots:.0f} min); commit {here}; {where}",
        flush=True,
    )
    if not args.report_only:
        execute(plan, args.slots, here, where)
    for name, setup in setups.items():
        report(
            setup.task,
            setup.maximize,
            {s.key: plan.done(name, s.key) for s in chosen},
            plan.seconds,
            plan.seeds,
            args.out,
        )


if __name__ == "__main__":
    main()
