"""Overhead benchmark (shared/BENCHMARKS.md): the user's `automl run` against a bare PyTorch loop and the
tutorial stack, each as one whole process started in a fresh folder, side by side in one invocation.

The workload (bench/peers/workload.py): MNIST-1D (3600 train / 400 validation, seed 0), MLP 40->w->w->10 with
ReLU, Adam, batch 100, 15 epochs, 10 fixed (width, lr) configurations (enqueued in the study file, no pruning),
trial i seeded with i, one CPU thread (`--threads 1`).

Sides, in an order that rotates every round (--rounds, at least 3; medians):
- `bare`: bench/peers/bare_loop.py, tensors and index batching (the limit);
- `automl`: `automl run overhead.yaml --threads 1` (tracking on: mlflow.db in the folder, 1 worker);
- `automl-no-tracking`: the same with `--no-tracking`;
- `tutorial`: bench/peers/tutorial_stack.py (Optuna + Lightning + DataLoader + MLFlowLogger, as documented);
- `lightning`: bench/peers/lightning_loop.py, the bare loop's training through a plain LightningModule and Trainer
  (no Optuna, no tracking): Lightning's own floor, so the report can say what is Lightning's and what is ours;
- `ray`, `ray-2`: bench/peers/ray_tune.py, Ray Tune as documented, one or two trials at a time (only where
  `ray[tune]` is installed: it is not a dependency; the report says when it was left out).

Two times per side: the whole process (interpreter, imports, data, study, tracking, exit: what a user waits
for) and the training window (from after imports and data to the end of the last trial; study creation,
tracking and storage included). The bare loop and the tutorial report their window; for `automl` the window
starts when its worker's data is ready (the worker prints the time under AUTOML_TIMINGS=1) and ends at the last
trial's completion time in the Optuna journal. Every `automl` run is checked: 10 complete trials of 15 epochs.

The fixed cost per trial is the part of a trial's extra time (automl's window minus the bare loop's, per trial)
that does not grow with training: `--fixed-rounds` more rounds of `bare` and `automl` at 1 epoch give the extra
time at 1 epoch; the line through it and the extra time at `--epochs` gives the fixed cost (its value at 0
epochs) and the extra cost of each epoch. The whole extra time per trial is printed beside it (`trial_gap_ms`;
before 2026-12-01 this script printed that figure as trial_fixed_cost_ms).

    .venv/bin/python bench/overhead.py [--rounds 3] [--epochs 15] [--sides bare,automl,...] [--fixed-rounds 3]
                                       [--checkpoint-rounds 0] [--fresh]

Each run is saved as it finishes (a JSON line in the temporary folder, named by the commit): started again on the
same commit, the script resumes where it stopped (`--fresh` starts over).

Checkpointing on vs off (`--checkpoint-rounds N`): the same `automl run` with checkpoints off
(`every_epochs: 0`), with the default policy and with a checkpoint at every epoch (`min_seconds: 0`),
alternating, whole process each; `checkpoint_ratio` = default / off (target <= 1.05).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench" / "peers"))
from workload import BATCH, CONFIGS, EPOCHS  # noqa: E402

PYTHON = sys.executable
AUTOML = str(Path(sys.executable).with_name("automl"))

STUDY = """
name: overhead
dataset: {{name: mnist1d, val_fraction: 0.1}}
objective: {{metric: val_accuracy, direction: maximize}}
budget: {{trials: {trials}, max_epochs: {epochs}}}
sampler: random
pruner: none
seed: 0
search:
  architecture:
    mlp: {{depth: 2, width: {{low: 16, high: 1024}}}}
  activation: relu
  loss: cross_entropy
  optimizer:
    adam: {{lr: {{low: 0.0001, high: 0.1, log: true}}, beta1: 0.9, beta2: 0.999}}
  batch_size: {batch}
enqueue:
{enqueue}
{extra}"""

DATA_READY = re.compile(r"timing: data ready at ([0-9.]+)")
READY = re.compile(r"ready after ([0-9.]+) s \(imports and data ([0-9.]+) s, study set-up ([0-9.]+) s\)")
SIDES = ("bare", "automl", "automl-no-tracking", "tutorial", "lightning", "ray", "ray-2")
PEERS = {
    "bare": ["bare_loop.py"],
    "tutorial": ["tutorial_stack.py"],
    "lightning": ["lightning_loop.py"],
    "ray": ["ray_tune.py", "--concurrent", "1"],
    "ray-2": ["ray_tune.py", "--concurrent", "2"],
}
CHECKPOINT_POLICIES = {
    "off": "checkpoints: {every_epochs: 0}\n",
    "default": "",
    "every epoch": "checkpoints: {min_seconds: 0}\n",
}


@dataclass
class Run:
    whole: float
    window: float
    accuracies: list[float]
    startup: tuple[float, float] | None = None  # automl's worker: imports and data, study set-up (s)


@dataclass
class Side:
    runs: list[Run] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(r, attribute) for r in self.runs)


def study_text(epochs: int, extra: str = "", configs: list[tuple[int, float]] = CONFIGS) -> str:
    """The workload's study file, `configs` (width, lr) enqueued."""
    enqueue = "\n".join(f"  - {{architecture.mlp.width: {w}, optimizer.adam.lr: {lr}}}" for w, lr in configs)
    return textwrap.dedent(STUDY).format(trials=len(configs), epochs=epochs, batch=BATCH, enqueue=enqueue, extra=extra)


def run_process(command: list[str], folder: Path) -> tuple[float, str]:
    """Run one whole process in `folder`; returns its wall seconds and its output (failing loudly)."""
    env = {**os.environ, "AUTOML_TIMINGS": "1", "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=1800)
    whole = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {proc.returncode}:\n{output[-4000:]}")
    return whole, output


def peer(script: str, epochs: int, folder: Path, *flags: str) -> Run:
    whole, output = run_process(
        [PYTHON, str(REPO / "bench" / "peers" / script), "--epochs", str(epochs), *flags], folder
    )
    result = json.loads(output[output.rindex("RESULT ") + len("RESULT ") :].splitlines()[0])
    return Run(whole, result["window"], result["accuracies"])


def automl(epochs: int, folder: Path, *flags: str, extra: str = "") -> Run:
    (folder / "overhead.yaml").write_text(study_text(epochs, extra))
    whole, output = run_process([AUTOML, "run", "overhead.yaml", "--threads", "1", *flags], folder)
    ready = DATA_READY.search(output)
    assert ready, f"no data-ready time in the output:\n{output[-3000:]}"
    ends, accuracies = completed_trials(folder / "optuna.journal", epochs)
    startup = READY.search(output)
    return Run(
        whole,
        max(ends) - float(ready.group(1)),
        accuracies,
        (float(startup.group(2)), float(startup.group(3))) if startup else None,
    )


def completed_trials(journal: Path, epochs: int, count: int = len(CONFIGS)) -> tuple[list[float], list[float]]:
    """The run did what the workload says (every configuration complete after `epochs` epochs); returns each
    trial's completion time (unix) and validation accuracy, in trial order."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name="overhead",
        storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal))),
    )
    trials = sorted(study.trials, key=lambda t: t.number)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == len(trials) == count, f"{len(complete)} of {count} trials completed"
    assert all(len(t.intermediate_values) == epochs for t in complete), "a trial did not train every epoch"
    return [t.datetime_complete.timestamp() for t in complete], [t.value for t in complete]


class Results:
    """Each finished run, saved as it finishes (a JSON line per run, in the temporary folder, per commit): a run of
    this script that stopped resumes where it stopped on the same commit; `--fresh` starts over."""

    def __init__(self, fresh: bool) -> None:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
            ).stdout.strip()
            or "unknown"
        )
        self.path = Path(tempfile.gettempdir()) / f"automl-bench-overhead-{commit}.jsonl"
        if fresh:
            self.path.unlink(missing_ok=True)
        self.done: dict[str, Run] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                record = json.loads(line)
                startup = record["run"].pop("startup")
                self.done[record["key"]] = Run(**record["run"], startup=tuple(startup) if startup else None)
            print(f"resuming: {len(self.done)} run(s) of this commit already done ({self.path})", flush=True)

    def get(self, key: str, make: Callable[[], Run]) -> Run:
        if key not in self.done:
            self.done[key] = make()
            with self.path.open("a") as file:
                file.write(json.dumps({"key": key, "run": asdict(self.done[key])}) + "\n")
        return self.done[key]


RESULTS: Results | None = None  # set by main()


def run_side(name: str, epochs: int, round_: int) -> Run:
    assert RESULTS is not None
    return RESULTS.get(f"{epochs}/{name}/{round_}", lambda: _run_side(name, epochs))


def _run_side(name: str, epochs: int) -> Run:
    with tempfile.TemporaryDirectory(prefix=f"automl-bench-{name}-") as tmp:
        folder = Path(tmp)
        if name in PEERS:
            return peer(PEERS[name][0], epochs, folder, *PEERS[name][1:])
        return automl(epochs, folder, *(["--no-tracking"] if name == "automl-no-tracking" else []))


def checkpoint_run(epochs: int, policy: str) -> Run:
    with tempfile.TemporaryDirectory(prefix="automl-bench-") as tmp:
        run = automl(epochs, Path(tmp), extra=CHECKPOINT_POLICIES[policy])
        left = list((Path(tmp) / "checkpoints").rglob("*.pt"))
        assert not left, f"checkpoints left behind: {left}"
    return run


def checkpoint_rounds(rounds: int, epochs: int) -> dict[str, list[float]]:
    """Whole `automl run` seconds per checkpoint policy, in alternating order (a fresh folder each run)."""
    times: dict[str, list[float]] = {name: [] for name in CHECKPOINT_POLICIES}
    for round_ in range(rounds):
        order = list(CHECKPOINT_POLICIES)[round_ % 3 :] + list(CHECKPOINT_POLICIES)[: round_ % 3]
        for name in order:
            assert RESULTS is not None
            run = RESULTS.get(f"checkpoints/{epochs}/{name}/{round_}", lambda name=name: checkpoint_run(epochs, name))
            times[name].append(run.whole)
        print(
            f"checkpoint round {round_}: " + ", ".join(f"{name} {times[name][-1]:.2f} s" for name in times), flush=True
        )
    return times


def fixed_rounds(rounds: int) -> tuple[float, float]:
    """`bare` and `automl` at 1 epoch, alternating; the medians of their windows (s)."""
    sides = {"bare": Side(), "automl": Side()}
    for round_ in range(rounds):
        for name in ["bare", "automl"] if round_ % 2 == 0 else ["automl", "bare"]:
            sides[name].runs.append(run_side(name, 1, round_))
        print(
            f"1-epoch round {round_}: bare window {sides['bare'].runs[-1].window:.2f} s, automl window "
            f"{sides['automl'].runs[-1].window:.2f} s",
            flush=True,
        )
    return sides["bare"].median("window"), sides["automl"].median("window")


def print_fixed_cost(one_epoch: tuple[float, float], gap: float, epochs: int) -> None:
    """The extra time per trial at 1 epoch and at `epochs` (s) -> the fixed part and the part per epoch."""
    n = len(CONFIGS)
    gap_1 = (one_epoch[1] - one_epoch[0]) / n
    per_epoch = (gap - gap_1) / (epochs - 1)
    steps = -(-3600 // BATCH)
    print(
        f"trial_fixed_cost_ms mnist1d-mlp {(gap_1 - per_epoch) * 1000:.0f} (the extra time per trial at 0 epochs, "
        f"from {gap_1 * 1000:.0f} ms at 1 epoch and {gap * 1000:.0f} ms at {epochs}; target <= 100)"
    )
    print(
        f"trial_gap_ms mnist1d-mlp {gap * 1000:.0f} (automl's trial minus the bare loop's, {epochs} epochs: the "
        f"fixed cost + {per_epoch * 1000:.1f} ms per epoch, {per_epoch / steps * 1000:.2f} ms per step of {steps})"
    )


def report(sides: dict[str, Side], epochs: int, rounds: int, fixed: tuple[float, float] | None = None) -> None:
    n = len(CONFIGS)
    for name, side in sides.items():
        accuracies = [statistics.median(values) for values in zip(*(r.accuracies for r in side.runs))]
        print(
            f"{name:<19} whole process {side.median('whole'):6.2f} s, training window {side.median('window'):6.2f} s"
            f" (medians of {len(side.runs)}); val_accuracy of the 10 configurations: "
            + " ".join(f"{a:.3f}" for a in accuracies)
        )
    if "automl" in sides and sides["automl"].runs[0].startup:
        imports = statistics.median(r.startup[0] for r in sides["automl"].runs if r.startup)
        study = statistics.median(r.startup[1] for r in sides["automl"].runs if r.startup)
        print(f"automl worker start-up: imports and data {imports:.2f} s, study set-up {study:.2f} s")
    what = f"{n} trials, {epochs} epochs, median of {rounds} rounds"
    if "bare" in sides and "automl" in sides:
        bare, ours = sides["bare"], sides["automl"]
        print(
            f"whole_run_ratio mnist1d-mlp {ours.median('whole') / bare.median('whole'):.2f} (automl run "
            f"{ours.median('whole'):.1f} s / bare loop process {bare.median('whole'):.1f} s, {what}; target <= 1.5)"
        )
        print(
            f"overhead_ratio mnist1d-mlp {ours.median('window') / bare.median('window'):.2f} (training window: "
            f"automl {ours.median('window'):.1f} s / bare loop {bare.median('window'):.1f} s; target <= 1.3)"
        )
        gap = ours.median("window") / n - bare.median("window") / n
        if fixed is not None:
            print_fixed_cost(fixed, gap, epochs)
        else:
            print(
                f"trial_gap_ms mnist1d-mlp {gap * 1000:.0f} (automl's trial minus the bare loop's, {epochs} epochs; "
                "no 1-epoch rounds: the fixed part is not separated)"
            )
    if "automl" in sides and "automl-no-tracking" in sides:
        on, off = sides["automl"], sides["automl-no-tracking"]
        print(
            f"tracking_ratio mnist1d-mlp {on.median('whole') / off.median('whole'):.3f} (whole process: tracking on "
            f"{on.median('whole'):.1f} s / off {off.median('whole'):.1f} s; training window "
            f"{on.median('window') / off.median('window'):.3f}; target <= 1.05)"
        )
    if "tutorial" in sides and "automl" in sides:
        tutorial, ours = sides["tutorial"], sides["automl"]
        print(
            f"tutorial_ratio mnist1d-mlp {tutorial.median('whole') / ours.median('whole'):.2f} (the tutorial stack's "
            f"whole process {tutorial.median('whole'):.1f} s / automl run {ours.median('whole'):.1f} s; training "
            f"window {tutorial.median('window') / ours.median('window'):.2f}; target >= 1.8)"
        )
    if "tutorial" in sides and "bare" in sides:
        print(
            f"tutorial_vs_bare mnist1d-mlp {sides['tutorial'].median('whole') / sides['bare'].median('whole'):.2f}"
            " (whole process)"
        )
    if "lightning" in sides and "bare" in sides:
        floor, bare = sides["lightning"], sides["bare"]
        line = (
            f"lightning_floor_ratio mnist1d-mlp {floor.median('window') / bare.median('window'):.2f} (training "
            f"window: a plain LightningModule and Trainer {floor.median('window'):.1f} s / bare loop "
            f"{bare.median('window'):.1f} s"
        )
        if "automl" in sides:
            line += f"; automl / this floor {sides['automl'].median('window') / floor.median('window'):.2f}"
        print(line + ")")
    for name, what in (("ray", "one trial at a time"), ("ray-2", "two trials at a time")):
        if name in sides and "automl" in sides:
            ray, ours = sides[name], sides["automl"]
            print(
                f"ray_tune_ratio{'_2' if name == 'ray-2' else ''} mnist1d-mlp "
                f"{ray.median('whole') / ours.median('whole'):.2f} (Ray Tune, {what}: whole process "
                f"{ray.median('whole'):.1f} s / automl run {ours.median('whole'):.1f} s; training window "
                f"{ray.median('window') / ours.median('window'):.2f}; target >= 4)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every side, order rotating (>= 3)")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated, of: {', '.join(SIDES)}")
    parser.add_argument(
        "--fixed-rounds",
        type=int,
        default=3,
        help="rounds of bare and automl at 1 epoch, for the fixed cost per trial (0 skips them)",
    )
    parser.add_argument(
        "--checkpoint-rounds",
        type=int,
        default=0,
        help="alternating rounds of checkpointing off / default / every epoch (0 skips them)",
    )
    parser.add_argument("--fresh", action="store_true", help="start over (else the runs saved on this commit count)")
    args = parser.parse_args()
    global RESULTS
    RESULTS = Results(args.fresh)
    names = [s.strip() for s in args.sides.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SIDES))
    if unknown or args.rounds < 1:
        parser.error(f"unknown side(s) {unknown}" if unknown else "--rounds must be >= 1")
    if importlib.util.find_spec("ray") is None and {"ray", "ray-2"} & set(names):
        print("ray, ray-2: left out: Ray Tune is not installed (pip install 'ray[tune]'; not a dependency)")
        names = [n for n in names if n not in ("ray", "ray-2")]
    sides = {name: Side() for name in names}
    for round_ in range(args.rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            sides[name].runs.append(run_side(name, args.epochs, round_))
        print(
            f"round {round_} ({' -> '.join(order)}): "
            + ", ".join(
                f"{name} {sides[name].runs[-1].whole:.2f} s (window {sides[name].runs[-1].window:.2f} s)"
                for name in names
            ),
            flush=True,
        )
    fixed = (
        fixed_rounds(args.fixed_rounds)
        if args.fixed_rounds and args.epochs > 1 and {"bare", "automl"} <= set(names)
        else None
    )
    report(sides, args.epochs, args.rounds, fixed)
    if args.checkpoint_rounds:
        times = {
            name: statistics.median(values)
            for name, values in checkpoint_rounds(args.checkpoint_rounds, args.epochs).items()
        }
        print(
            f"checkpoint_ratio mnist1d-mlp {times['default'] / times['off']:.3f} (default policy "
            f"{times['default']:.1f} s / checkpoints off {times['off']:.1f} s, whole automl run, median of "
            f"{args.checkpoint_rounds}; target <= 1.05)"
        )
        print(
            f"checkpoint_every_epoch_ratio mnist1d-mlp {times['every epoch'] / times['off']:.3f} "
            f"(a checkpoint after each of the {args.epochs} epochs of every trial: {times['every epoch']:.1f} s)"
        )


if __name__ == "__main__":
    main()
