"""Search benchmark (shared/BENCHMARKS.md): time to reach 97% test accuracy on MNIST-1D, TPE + pruner
against random search without pruning, median over seeds (target >= 3x faster).

The workload: the search space of studies/mnist1d_search.yaml (every sequence-capable architecture,
activation, loss, optimizer, schedule and regularizer, up to 40 epochs per trial). Each strategy runs
the study file in a fresh folder, once per seed (the study's `seed:`, which seeds the sampler and each
trial's training):
  - `tpe+median` (default): the study file's own sampler and pruner (TPE, median pruning);
  - `random+none` (baseline): `sampler: random`, `pruner: none`.
`budget.trials` is raised to 1000 so the time decides, and `automl run study.yaml --no-tracking` runs as
a subprocess (tracking off: this measures the search, not MLflow). The Optuna journal is polled while
it runs; the time to target is the wall time from the subprocess start (imports, data and study set-up
included, alike on both sides) to the `datetime_complete` of the first finished trial (COMPLETE or
PRUNED) whose test accuracy (`test_metrics` user attribute) is >= --target. The run is then stopped
with SIGINT (exit 130, expected). A run that has not reached the target after --max-minutes is stopped
and counted as the cap, flagged censored (">="); a median that rests on a censored run is flagged too.

    .venv/bin/python bench/search.py [--target 0.97] [--seeds 0,1,2,3,4] [--max-minutes 30] [--workers 1]
                                     [--strategies tpe,random]

At most strategies x seeds x max-minutes of wall time (2 x 5 x 30 min = 5 h by default). Prints one line
per run, e.g. `time_to_97 tpe+median seed=0 312.4 s (trial 17, test_accuracy 0.973)`, the median per
strategy, and `search_speedup mnist1d 3.4x (median random+none / median tpe+median, 5 seeds)`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

ROOT = Path(__file__).resolve().parent.parent
STUDY_FILE = ROOT / "studies" / "mnist1d_search.yaml"
JOURNAL = "optuna.journal"
TRIALS = 1000  # far more than fit in the cap: the time decides
STOP_GRACE_SECONDS = 60  # after SIGINT, how long the run may take to mark its trials and exit
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class Strategy:
    label: str
    sampler: object | None  # None: the study file's own
    pruner: object | None


STRATEGIES = {
    "tpe": Strategy("tpe+median", None, None),
    "random": Strategy("random+none", "random", "none"),
}


@dataclass
class Outcome:
    strategy: str
    seed: int
    seconds: float
    censored: bool
    trial: int | None = None
    state: str | None = None
    accuracy: float | None = None
    trials: int = 0  # finished trials (COMPLETE, PRUNED, FAIL) up to the hit, or to the stop
    pruned: int = 0
    exit_code: int | None = None


def write_study(folder: Path, strategy: Strategy, seed: int, cap_seconds: float) -> Path:
    data = yaml.safe_load(STUDY_FILE.read_text())
    data["seed"] = seed
    if strategy.sampler is not None:
        data["sampler"] = strategy.sampler
    if strategy.pruner is not None:
        data["pruner"] = strategy.pruner
    # budget.timeout only as a safety net (no new trial after it), should this script die before its run
    data["budget"] = {**data["budget"], "trials": TRIALS, "timeout": int(cap_seconds) + 300}
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class JournalWatch:
    """Reads the run's Optuna study from its journal file as it grows (no lock: reads only)."""

    def __init__(self, path: Path, study_name: str) -> None:
        self.path = path
        self.study_name = study_name
        self.study: optuna.Study | None = None

    def trials(self) -> list[FrozenTrial]:
        if self.study is None:
            if not self.path.exists():
                return []
            try:
                storage = JournalStorage(JournalFileBackend(str(self.path)))
                self.study = optuna.load_study(study_name=self.study_name, storage=storage)
            except KeyError:  # the journal exists, the study not yet
                return []
        return self.study.get_trials(deepcopy=False)


def accuracy_of(trial: FrozenTrial) -> float | None:
    value = (trial.user_attrs.get("test_metrics") or {}).get("test_accuracy")
    return float(value) if value is not None else None


def first_hit(trials: list[FrozenTrial], target: float) -> FrozenTrial | None:
    hits = [t for t in trials if t.state in FINISHED and t.datetime_complete is not None
            and (accuracy_of(t) or 0.0) >= target]
    return min(hits, key=lambda t: t.datetime_complete) if hits else None


def count(trials: list[FrozenTrial], until: dt.datetime | None) -> tuple[int, int]:
    """(finished trials, pruned trials) completed by `until` (all, if None); interrupted trials excluded."""
    done = [t for t in trials if t.state in (*FINISHED, TrialState.FAIL) and t.datetime_complete is not None
            and t.user_attrs.get("reason") != "interrupted" and (until is None or t.datetime_complete <= until)]
    return len(done), sum(t.state == TrialState.PRUNED for t in done)


def stop(process: subprocess.Popen) -> int:
    """SIGINT (the run marks its running trials FAIL and exits 130); the whole group killed if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    return process.wait()


def run_once(strategy: Strategy, seed: int, target: float, cap_seconds: float, workers: int, poll: float,
             keep: bool) -> Outcome:
    folder = Path(tempfile.mkdtemp(prefix=f"automl-search-{strategy.label}-{seed}-"))
    study_path = write_study(folder, strategy, seed, cap_seconds)
    watch = JournalWatch(folder / JOURNAL, yaml.safe_load(study_path.read_text())["name"])
    command = [str(Path(sys.executable).with_name("automl")), "run", study_path.name, "--no-tracking",
               "--workers", str(workers)]
    log_path = folder / "run.log"
    with open(log_path, "w") as log:
        started = dt.datetime.now()
        began = time.monotonic()
        process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        hit = None
        try:
            while True:
                hit = first_hit(watch.trials(), target)
                if hit is not None or process.poll() is not None or time.monotonic() - began >= cap_seconds:
                    break
                time.sleep(min(poll, max(0.1, cap_seconds - (time.monotonic() - began))))
        finally:
            code = stop(process)
    trials = watch.trials()
    hit = hit or first_hit(trials, target)  # one may have finished while the run stopped
    seconds = (hit.datetime_complete - started).total_seconds() if hit is not None else None
    if hit is not None and seconds is not None and seconds <= cap_seconds:
        done, pruned = count(trials, hit.datetime_complete)
        outcome = Outcome(strategy.label, seed, seconds, False, hit.number, hit.state.name, accuracy_of(hit),
                          done, pruned, code)
    else:
        done, pruned = count(trials, None)
        outcome = Outcome(strategy.label, seed, cap_seconds, True, trials=done, pruned=pruned, exit_code=code)
    if code not in (0, 130) or not trials:
        tail = "\n".join(log_path.read_text().splitlines()[-30:])
        print(f"warning: {strategy.label} seed={seed}: automl run exited {code} with {len(trials)} trial(s) "
              f"in the journal; the end of its output ({log_path}):\n{tail}", file=sys.stderr)
        keep = True
    if keep:
        print(f"  (run folder kept: {folder})")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return outcome


def describe(outcome: Outcome, target: float) -> str:
    name = f"time_to_{round(target * 100):g} {outcome.strategy} seed={outcome.seed}"
    counts = f"{outcome.trials} trials, {outcome.pruned} pruned"
    if outcome.censored:
        return f"{name} >= {outcome.seconds:.1f} s (censored: target not reached; {counts}, exit {outcome.exit_code})"
    state = "" if outcome.state == "COMPLETE" else f", {outcome.state}"
    return (f"{name} {outcome.seconds:.1f} s (trial {outcome.trial}, test_accuracy {outcome.accuracy:.3f}{state}; "
            f"{counts} by then)")


def median_of(outcomes: list[Outcome]) -> tuple[float, bool]:
    """The median time (censored runs count as the cap) and whether it rests on a censored run."""
    ranked = sorted(outcomes, key=lambda o: (o.seconds, o.censored))
    n = len(ranked)
    middle = ranked[(n - 1) // 2:n // 2 + 1]
    return statistics.median(o.seconds for o in ranked), any(o.censored for o in middle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=float, default=0.97, help="test accuracy to reach")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated study seeds (at least 5 for the figure)")
    parser.add_argument("--max-minutes", type=float, default=30.0, help="per-run cap; not reached: censored")
    parser.add_argument("--workers", type=int, default=1, help="`automl run --workers`")
    parser.add_argument("--strategies", default="tpe,random",
                        help="comma-separated: tpe (the study file's TPE + pruner), random (no pruning)")
    parser.add_argument("--poll", type=float, default=3.0, help="seconds between reads of the journal")
    parser.add_argument("--keep", action="store_true", help="keep each run's folder (study, journal, run.log)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    names = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or not names or not seeds:
        parser.error(f"--strategies: choose from {', '.join(STRATEGIES)}; --seeds: at least one integer")
    cap = args.max_minutes * 60
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"search benchmark: {STUDY_FILE.relative_to(ROOT)}, target test_accuracy {args.target}, seeds {seeds}, "
          f"cap {args.max_minutes:g} min per run, {args.workers} worker(s); at most "
          f"{len(names) * len(seeds) * args.max_minutes:g} min", flush=True)

    results: dict[str, list[Outcome]] = {STRATEGIES[n].label: [] for n in names}
    for seed in seeds:  # the strategies alternate, so drift on a shared machine hits both alike
        for name in names:
            outcome = run_once(STRATEGIES[name], seed, args.target, cap, args.workers, args.poll, args.keep)
            results[outcome.strategy].append(outcome)
            print(describe(outcome, args.target), flush=True)

    tag = f"time_to_{round(args.target * 100):g}"
    medians = {}
    for label, outcomes in results.items():
        median, censored = median_of(outcomes)
        medians[label] = (median, censored)
        reached = sum(not o.censored for o in outcomes)
        trials, pruned = (statistics.median(o.trials for o in outcomes), statistics.median(o.pruned for o in outcomes))
        print(f"{tag}_median {label} {'>= ' if censored else ''}{median:.1f} s (median of {len(outcomes)} seeds, "
              f"{reached} reached the target, {len(outcomes) - reached} censored at {cap:.0f} s; median "
              f"{trials:g} trials, {pruned:g} pruned)")
    if len(medians) == 2:
        (fast, fast_censored), (slow, slow_censored) = medians["tpe+median"], medians["random+none"]
        # A censored baseline median makes the ratio a lower bound, a censored TPE median an upper bound.
        bound, note = {(False, False): ("", ""),
                       (False, True): (">= ", "; the random+none median is censored: a lower bound"),
                       (True, False): ("<= ", "; the tpe+median median is censored: an upper bound"),
                       (True, True): ("", "; both medians censored: undetermined, raise --max-minutes")}[
                           (fast_censored, slow_censored)]
        print(f"search_speedup mnist1d {bound}{slow / fast:.1f}x (median random+none / median tpe+median, "
              f"{len(seeds)} seeds, target {args.target}{note})")


if __name__ == "__main__":
    main()
