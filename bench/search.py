"""Search benchmark (shared/BENCHMARKS.md): how much sooner each search strategy finds a model as good as the one
random search finds in T = 20 minutes, on the search space of studies/mnist1d_search.yaml.

Select by validation, report by test: at each moment of a run the incumbent is the COMPLETE trial with the best
validation objective (val_accuracy) so far, and the run's quality is the incumbent's test accuracy (the
`test_metrics` user attribute, never used to pick). A run's quality curve steps at each new incumbent.

- Baseline: `sampler: random`, `pruner: none`, --seeds seeds (1000, 1001, ...) x T. The target is the median over
  seeds of the baseline's quality at T. Its curves are saved in bench/baselines/search-baseline.json with the commit
  they ran on, a note of the machine and a fingerprint of the training code (see TRAINING_CODE); they are reused
  while that fingerprint holds (--rerun-baseline runs them again).
- Strategies (--strategies, all in one invocation by default): random+none, tpe+median (the old default: TPE with
  10 start-up trials, median pruning after 6 epochs), tpe+hyperband (Optuna's stopping successive halving), and
  tpe+asha and bohb+asha (pause-and-resume successive halving with the project's TPE, 5 start-up trials, or with
  BOHB's model); the one that is the project's
  default (studyfile.DEFAULT_SAMPLER/PRUNER) gives `search_speedup mnist1d`. Each runs --seeds independent seeds (100 k + i for the k-th strategy: no start-up trials
  shared with the baseline or with each other) and is stopped as soon as its quality reaches the target, or at T
  (censored: counted as T and flagged). search_speedup = T / the default's median time to target.

Execution, alike for every run: `automl run study.yaml --no-tracking --workers 1 --threads 1` in a fresh folder,
pinned to one CPU core; --slots runs go at once, each on its own core (2 on this 2-core machine). The time of a
trial is the wall time from the process start (interpreter, imports, data, study set-up included) to the trial's
`datetime_complete`. Each run's finished trials are saved as soon as the run ends (bench/baselines/search-runs.json,
keyed by a fingerprint of the code and the study file), so an interrupted benchmark resumes where it stopped; a run
that was in flight starts again.

    .venv/bin/python bench/search.py [--minutes 20] [--seeds 3] [--slots 2] [--strategies random,tpe-median,...]
                                     [--rerun-baseline] [--report-only]

Prints one line per run, then per strategy its quality at T/4, T/2 and T and its median time to target, and
`search_speedup mnist1d X.Xx` for the default (`speedup KEY` for the others); draws bench/baselines/search-anytime.png (median and range of the
quality over seeds, every strategy).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import inspect
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parent.parent
STUDY_FILE = ROOT / "studies" / "mnist1d_search.yaml"
OUT = ROOT / "bench" / "baselines"
BASELINE_FILE = OUT / "search-baseline.json"
RUNS_FILE = OUT / "search-runs.json"
PLOT_FILE = OUT / "search-anytime.png"
JOURNAL = "optuna.journal"
STOP_GRACE_SECONDS = 60
# What decides how long a trial takes and how good it gets: a change here re-runs the baseline. The search
# machinery (sampling, pruning, promotion, workers) is left out on purpose: the baseline does not use it.
# The strategies' runs are kept while nothing in SEARCH_CODE changes, nor the code that starts a run (RUN_CODE);
# the project's default strategy (studyfile.DEFAULT_SAMPLER/PRUNER) is left out: every run names its strategy, and
# the report calls the one that is the default the default.
TRAINING_CODE = ["orchestrator/training.py", "orchestrator/model.py", "orchestrator/batches.py",
                 "orchestrator/epoch_loss.py", "orchestrator/components.py", "orchestrator/params.py",
                 "orchestrator/space.py", "plugins", "studies/mnist1d_search.yaml"]
SEARCH_CODE = ["orchestrator", "plugins", "studies/mnist1d_search.yaml"]
DEFAULTS_LINE = "DEFAULT_SAMPLER, DEFAULT_PRUNER = "


@dataclass(frozen=True)
class Strategy:
    key: str
    label: str
    sampler: Any
    pruner: Any
    seed_base: int


# The old default, as studies/mnist1d_search.yaml had it before the default was chosen by this benchmark
OLD_SAMPLER = {"name": "tpe", "n_startup_trials": 10}
OLD_PRUNER = {"name": "median", "n_startup_trials": 5, "n_warmup_steps": 6}
BASELINE = Strategy("baseline", "random+none (baseline)", "random", "none", 1000)
STRATEGIES = {s.key: s for s in [
    Strategy("random", "random+none", "random", "none", 100),
    Strategy("tpe-median", "tpe+median", OLD_SAMPLER, OLD_PRUNER, 200),
    Strategy("tpe-hyperband", "tpe+hyperband", OLD_SAMPLER, "hyperband", 300),
    Strategy("bohb-asha", "bohb+asha", "bohb", "asha", 400),
    Strategy("tpe-asha", "tpe+asha", "tpe", "asha", 500),
]}
# the order runs go in: the default first, the strategies the issue asks for next, the other model last
ORDER = ["tpe-asha", "tpe-hyperband", "tpe-median", "random", "bohb-asha"]


def name_of(choice: Any) -> str:
    return choice["name"] if isinstance(choice, dict) else choice


def default_strategy() -> str | None:
    """The key of the strategy that is the project's default for one objective (None if none of them is)."""
    from orchestrator.studyfile import DEFAULT_PRUNER, DEFAULT_SAMPLER

    return next((s.key for s in STRATEGIES.values() if (name_of(s.sampler), name_of(s.pruner)) ==
                 (DEFAULT_SAMPLER, DEFAULT_PRUNER) and not isinstance(s.sampler, dict)), None)


def fingerprint(paths: list[str]) -> str:
    digest = hashlib.sha256()
    for name in paths:
        path = ROOT / name
        files = sorted(p for p in path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(ROOT)).encode())
            if file == STUDY_FILE:  # its sampler, pruner and seed are set by each run
                study = {k: v for k, v in yaml.safe_load(file.read_text()).items()
                         if k not in ("sampler", "pruner", "seed")}
                digest.update(json.dumps(study, sort_keys=True).encode())
            else:  # the default strategy's line aside (see SEARCH_CODE)
                digest.update("".join(line for line in file.read_text().splitlines(keepends=True)
                                      if not line.startswith(DEFAULTS_LINE)).encode())
    import pytorch_lightning
    import torch

    digest.update(f"{torch.__version__} {pytorch_lightning.__version__} {optuna.__version__}".encode())
    return digest.hexdigest()[:16]


def commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", *SEARCH_CODE], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return head.stdout.strip() + ("+uncommitted" if dirty else "")


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return (f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


# -- one run ----------------------------------------------------------------------------------------------------

def write_study(folder: Path, strategy: Strategy, seed: int, seconds: float) -> Path:
    data = yaml.safe_load(STUDY_FILE.read_text())
    data["seed"] = seed
    for key in ("sampler", "pruner"):
        data[key] = getattr(strategy, key)
    # the time decides; budget.timeout is only a safety net should this script die before its run
    data["budget"] = {**data["budget"], "trials": 100000, "timeout": int(seconds) + 300}
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def finished_trials(journal: Path, study_name: str, started: dt.datetime) -> list[dict[str, Any]]:
    """Every finished trial of the run's journal: number, state, validation value, test accuracy, seconds."""
    if not journal.exists():
        return []
    try:
        study = optuna.load_study(study_name=study_name, storage=JournalStorage(JournalFileBackend(str(journal))))
    except KeyError:
        return []
    rows = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)):
        if trial.datetime_complete is None:
            continue
        test = (trial.user_attrs.get("test_metrics") or {}).get("test_accuracy")
        rows.append({"number": trial.number, "state": trial.state.name,
                     "value": trial.values[0] if trial.state == TrialState.COMPLETE and trial.values else None,
                     "test_accuracy": None if test is None else float(test),
                     "seconds": round((trial.datetime_complete - started).total_seconds(), 2),
                     "epochs": len(trial.intermediate_values)})
    return sorted(rows, key=lambda r: r["seconds"])


def quality_curve(trials: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(seconds, test accuracy of the incumbent) at each change of incumbent (best validation, COMPLETE)."""
    curve: list[tuple[float, float]] = []
    best = None
    for row in sorted(trials, key=lambda r: r["seconds"]):
        if row["state"] != "COMPLETE" or row["value"] is None or row["test_accuracy"] is None:
            continue
        if best is None or row["value"] > best:
            best = row["value"]
            curve.append((row["seconds"], row["test_accuracy"]))
    return curve


def quality_at(curve: list[tuple[float, float]], seconds: float) -> float | None:
    value = None
    for at, quality in curve:
        if at > seconds:
            break
        value = quality
    return value


def time_to(curve: list[tuple[float, float]], target: float) -> float | None:
    return next((at for at, quality in curve if quality >= target), None)


class Run:
    """One `automl run` process in its own folder, pinned to one core."""

    def __init__(self, strategy: Strategy, seed: int, core: int, seconds: float) -> None:
        self.strategy, self.seed, self.core, self.seconds = strategy, seed, core, seconds
        self.folder = Path(tempfile.mkdtemp(prefix=f"automl-search-{strategy.key}-{seed}-"))
        study_path = write_study(self.folder, strategy, seed, seconds)
        self.study_name = yaml.safe_load(study_path.read_text())["name"]
        command = [str(Path(sys.executable).with_name("automl")), "run", study_path.name, "--no-tracking",
                   "--workers", "1", "--threads", "1"]
        self.log = open(self.folder / "run.log", "w")
        self.started = dt.datetime.now()
        self.began = time.monotonic()
        self.process = subprocess.Popen(command, cwd=self.folder, stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True,
                                        preexec_fn=lambda: os.sched_setaffinity(0, {core}))
        self.stop_reason: str | None = None

    def trials(self) -> list[dict[str, Any]]:
        return finished_trials(self.folder / JOURNAL, self.study_name, self.started)

    def check(self, target: float | None) -> bool:
        """True when the run should stop: its time is up, it reached the target, or its process ended."""
        if self.process.poll() is not None:
            self.stop_reason = f"exited {self.process.returncode}"
        elif time.monotonic() - self.began >= self.seconds:
            self.stop_reason = "time"
        elif target is not None and time_to(quality_curve(self.trials()), target) is not None:
            self.stop_reason = "target"
        return self.stop_reason is not None

    def finish(self) -> dict[str, Any]:
        """Stop the process (SIGINT: it marks its running trial and exits 130) and return the run's record."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        trials = [t for t in self.trials() if t["seconds"] <= self.seconds]
        code = self.process.returncode
        if code not in (0, 130) or not trials:
            tail = "\n".join((self.folder / "run.log").read_text().splitlines()[-30:])
            print(f"warning: {self.strategy.key} seed={self.seed}: automl run exited {code} with {len(trials)} "
                  f"finished trial(s); its output ends ({self.folder}):\n{tail}", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(self.folder, ignore_errors=True)
        return {"strategy": self.strategy.key, "seed": self.seed, "core": self.core, "stop": self.stop_reason,
                "exit_code": code, "seconds": self.seconds, "trials": trials}

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def run_code() -> str:
    """The source of what starts and watches a run: a change to it re-runs the strategies."""
    return inspect.getsource(write_study) + inspect.getsource(finished_trials) + inspect.getsource(Run)


# -- saved results ----------------------------------------------------------------------------------------------

def load(path: Path, key: str, value: str) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return data if data.get(key) == value else None


def save(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=1) + "\n")
    temporary.replace(path)


@dataclass
class Plan:
    baseline: dict[str, Any]
    runs: dict[str, Any]
    seconds: float
    seeds: int
    strategies: list[Strategy]
    jobs: list[tuple[Strategy, int]] = field(default_factory=list)

    def target(self) -> float | None:
        runs = self.baseline["runs"]
        if len(runs) < self.seeds:
            return None
        return statistics.median(quality_at(quality_curve(r["trials"]), self.seconds) or 0.0 for r in runs)

    def pending(self) -> list[tuple[Strategy, int]]:
        done = {(r["strategy"], r["seed"]) for r in self.baseline["runs"]}
        done |= {(r["strategy"], r["seed"]) for r in self.runs["runs"]}
        jobs = [(BASELINE, BASELINE.seed_base + i) for i in range(self.seeds)]
        for strategy in self.strategies:
            jobs += [(strategy, strategy.seed_base + i) for i in range(self.seeds)]
        return [(s, seed) for s, seed in jobs if (s.key, seed) not in done]

    def record(self, result: dict[str, Any]) -> None:
        if result["strategy"] == BASELINE.key:
            self.baseline["runs"].append(result)
            save(BASELINE_FILE, self.baseline)
        else:
            self.runs["runs"].append(result)
            save(RUNS_FILE, self.runs)


def execute(plan: Plan, slots: int) -> None:
    """Run the pending jobs, `slots` at a time, each pinned to its own core; save each as it ends."""
    pending = plan.pending()
    cores = sorted(os.sched_getaffinity(0))[:slots]
    active: dict[int, Run] = {}
    try:
        while pending or active:
            for core in cores:
                if core not in active and pending:
                    strategy, seed = pending.pop(0)  # a run started before the target is known checks it later
                    active[core] = Run(strategy, seed, core, plan.seconds)
                    print(f"started {strategy.key} seed={seed} on core {core}", flush=True)
            time.sleep(5)
            for core, run in list(active.items()):
                if run.check(None if run.strategy is BASELINE else plan.target()):
                    result = run.finish()
                    del active[core]
                    plan.record(result)
                    print(describe(result, plan.target(), plan.seconds), flush=True)
    except BaseException:
        for run in active.values():
            run.kill()
        raise


# -- report -----------------------------------------------------------------------------------------------------

def describe(result: dict[str, Any], target: float | None, seconds: float) -> str:
    curve = quality_curve(result["trials"])
    final = quality_at(curve, seconds)
    hit = time_to(curve, target) if target is not None else None
    complete = sum(t["state"] == "COMPLETE" for t in result["trials"])
    reached = f"; target {target:.4f} reached at {hit:.0f} s" if hit is not None else ""
    return (f"run {result['strategy']} seed={result['seed']}: {len(result['trials'])} finished trials "
            f"({complete} complete), incumbent test_accuracy {final if final is None else round(final, 4)} when "
            f"stopped ({result['stop']}){reached}")


def strategy_report(label: str, results: list[dict[str, Any]], target: float, seconds: float) -> tuple[float, bool]:
    curves = [quality_curve(r["trials"]) for r in results]
    marks = []
    for fraction, name in ((0.25, "T/4"), (0.5, "T/2"), (1.0, "T")):
        values = [quality_at(c, seconds * fraction) for c in curves]
        stopped = [r["stop"] == "target" and time_to(c, target) is not None and time_to(c, target) < seconds * fraction
                   for r, c in zip(results, curves)]
        shown = "/".join("-" if v is None else f"{v:.4f}" + ("*" if s else "") for v, s in zip(values, stopped))
        median = statistics.median(v if v is not None else 0.0 for v in values)
        marks.append(f"{name} {median:.4f} [{shown}]")
    times = [time_to(c, target) for c in curves]
    censored = [t is None for t in times]
    ranked = sorted((t if t is not None else seconds, c) for t, c in zip(times, censored))
    n = len(ranked)
    median = statistics.median(t for t, _ in ranked)
    middle_censored = any(c for _, c in ranked[(n - 1) // 2:n // 2 + 1])
    each = ", ".join(f">={seconds:.0f}" if t is None else f"{t:.0f}" for t in times)
    print(f"quality {label}: {'; '.join(marks)}")
    print(f"time_to_target {label} {'>= ' if middle_censored else ''}{median:.0f} s (seeds: {each} s; "
          f"{sum(censored)} censored)")
    return median, middle_censored


def report(plan: Plan) -> None:
    target = plan.target()
    if target is None:
        print("the baseline is not complete: no target yet")
        return
    seconds = plan.seconds
    base = [quality_at(quality_curve(r["trials"]), seconds) for r in plan.baseline["runs"]]
    print(f"target test_accuracy {target:.4f} = median over {len(base)} baseline seeds of the random+none "
          f"incumbent at T = {seconds / 60:g} min ({', '.join(f'{b:.4f}' for b in base if b is not None)}; "
          f"baseline of commit {plan.baseline['commit']})")
    strategy_report(BASELINE.label, plan.baseline["runs"], target, seconds)
    medians = {}
    default = default_strategy()
    for strategy in plan.strategies:
        results = [r for r in plan.runs["runs"] if r["strategy"] == strategy.key]
        label = strategy.label + (" (the default)" if strategy.key == default else "")
        if len(results) < plan.seeds:
            print(f"{label}: {len(results)} of {plan.seeds} seeds done"
                  + "".join(f"\n  {describe(r, target, seconds)}" for r in results))
            continue
        medians[strategy.key] = strategy_report(label, results, target, seconds)
    for key, (median, censored) in medians.items():
        note = " (the median run was censored at T: an upper bound)" if censored else ""
        name = "search_speedup mnist1d" if key == default_strategy() else f"speedup {key}"
        print(f"{name} {'<= ' if censored else ''}{seconds / median:.1f}x (T {seconds / 60:g} min / median time "
              f"to target {median:.0f} s, {plan.seeds} seeds){note}")
    plot(plan, target)


def plot(plan: Plan, target: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = plan.seconds
    grid = [seconds * i / 240 for i in range(241)]
    figure, axes = plt.subplots(figsize=(9, 5.5))
    groups = [(BASELINE.label, plan.baseline["runs"])]
    groups += [(s.label, [r for r in plan.runs["runs"] if r["strategy"] == s.key]) for s in plan.strategies]
    for label, results in groups:
        if not results:
            continue
        curves = [quality_curve(r["trials"]) for r in results]
        # a run stopped at the target holds its last incumbent (it is not known beyond)
        values = [[quality_at(c, t) for c in curves] for t in grid]
        present = [(t, [v for v in row if v is not None]) for t, row in zip(grid, values)]
        present = [(t, row) for t, row in present if len(row) == len(curves)]
        if not present:
            continue
        xs = [t / 60 for t, _ in present]
        line = axes.plot(xs, [statistics.median(row) for _, row in present], label=f"{label} ({len(results)} seeds)")
        axes.fill_between(xs, [min(row) for _, row in present], [max(row) for _, row in present],
                          color=line[0].get_color(), alpha=0.15)
    axes.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:.4f}")
    axes.set_xlabel("minutes since the run started (1 worker, 1 core)")
    axes.set_ylabel("test accuracy of the incumbent (best by validation)")
    axes.set_title("MNIST-1D search: quality over time, median and range over seeds")
    axes.set_xlim(0, seconds / 60)
    axes.set_ylim(max(0.5, target - 0.15), 1.0)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(PLOT_FILE, dpi=110)
    print(f"anytime plot: {PLOT_FILE.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0, help="T: the length of a run")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per strategy and for the baseline")
    parser.add_argument("--slots", type=int, default=2, help="runs at once, each pinned to its own core")
    parser.add_argument("--strategies", default=",".join(ORDER),
                        help=f"from {', '.join(STRATEGIES)} (empty: the baseline only)")
    parser.add_argument("--rerun-baseline", action="store_true", help="run the baseline again even if it is current")
    parser.add_argument("--report-only", action="store_true", help="print the report of the saved runs")
    args = parser.parse_args()
    keys = [k for k in args.strategies.split(",") if k]  # "": the baseline only
    unknown = [k for k in keys if k not in STRATEGIES]
    if unknown:
        parser.error(f"--strategies: unknown {', '.join(unknown)}; choose from {', '.join(STRATEGIES)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seconds = args.minutes * 60
    training, here = fingerprint(TRAINING_CODE), commit()
    search = fingerprint(SEARCH_CODE) + "-" + hashlib.sha256(run_code().encode()).hexdigest()[:8]
    baseline = None if args.rerun_baseline else load(BASELINE_FILE, "training_code", training)
    if baseline is not None and baseline["seconds"] != seconds:
        baseline = None
    baseline = baseline or {"training_code": training, "commit": here, "machine": machine(), "seconds": seconds,
                            "runs": []}
    runs = load(RUNS_FILE, "code", search)
    if runs is None or runs["seconds"] != seconds or args.rerun_baseline:
        runs = {"code": search, "commit": here, "baseline_commit": baseline["commit"], "machine": machine(),
                "seconds": seconds, "runs": []}
    plan = Plan(baseline, runs, seconds, args.seeds, [STRATEGIES[k] for k in keys])
    if not args.report_only:
        jobs = plan.pending()
        print(f"search benchmark: {STUDY_FILE.relative_to(ROOT)}, T = {args.minutes:g} min, {args.seeds} seeds, "
              f"{len(jobs)} run(s) to go on {args.slots} core(s) (at most {len(jobs) * args.minutes / args.slots:.0f} "
              f"min); commit {here}; {machine()}", flush=True)
        execute(plan, args.slots)
    report(plan)


if __name__ == "__main__":
    main()
