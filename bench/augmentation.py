"""Augmentation benchmark: does switching an augmentation on measurably help a fixed configuration?

Fixed configurations, trained through `orchestrator.training.fit.train` (the trial's own training loop) on MNIST-1D
(3600 training / 400 validation samples of the official training set, the official 1000-sample test set, data split
seed 0), with and without augmentation, for the same training seeds (0, 1, ...): everything else (network,
optimizer, epochs, batches, initialisation) is identical between the two sides of a seed. Printed: the test accuracy
(after the last epoch; no early stopping, no model selection) of every run, each side's mean and standard deviation,
and the paired difference.

The augmentation is `shift` with `mode: roll` and `max_shift: 8` (a fifth of the length): MNIST-1D's generator
itself translates each signal circularly (before shear and noise), so a rolled sample is a plausible sample of the
same class. The configurations are set as a user would set them, not tuned here (both: ReLU, Adam with lr 0.003,
cross-entropy, batch 100, a constant learning rate), each trained for 20 and for 60 epochs (both sides alike):

- `cnn`: the built-in 1-D CNN at what were its declared defaults when this ran (3 conv layers of 32, 48 and 72
  channels, kernel 5, max pooling, global average pooling; no norm: the configuration names none, as before batch
  norm became the CNN's default). This was the setting chosen first. Its convolutions and pooling already make
  it nearly insensitive to where a pattern sits, so a shift teaches it little: +0.001 test accuracy at 20 epochs,
  +0.008 at 60 (better on 3 of 5 seeds; bench/baselines/augmentation-e19574a.txt).
- `mlp`: the built-in MLP, 2 hidden layers of 256 (the quickstart's and the overhead workload's kind of network),
  added after the CNN's result: a network with no built-in translation invariance, where shifting is expected to
  help (+0.012 at 20 epochs, +0.107 at 60, better on 5 of 5 seeds). Both are printed.

    .venv/bin/python bench/augmentation.py [--configs cnn,mlp] [--seeds 5] [--epochs 20,60] [--fresh]

Each run's result is saved as it finishes (a JSON line in the temporary folder, named by the commit): started again
on the same commit, the script resumes where it stopped (`--fresh` starts over). On 2 idle cores the CNN takes about
5 s per 20 epochs, the MLP about 1.5 s: about 4 minutes in all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATASET = "mnist1d"
COMMON: dict[str, Any] = {
    "activation": "relu",
    "loss": "cross_entropy",
    "optimizer": "adam",
    "optimizer.adam.lr": 0.003,
    "optimizer.adam.beta1": 0.9,
    "optimizer.adam.beta2": 0.999,
    "schedule": "constant",
    "batch_size": 100,
}
CONFIGS: dict[str, dict[str, Any]] = {
    "cnn": {
        "architecture": "cnn",
        "architecture.cnn.channels": 32,
        "architecture.cnn.growth": 1.5,
        "architecture.cnn.kernel_size": 5,
        "architecture.cnn.depth": 3,
        "architecture.cnn.pooling": "max",
        **COMMON,
    },
    "mlp": {"architecture": "mlp", "architecture.mlp.depth": 2, "architecture.mlp.width": 256, **COMMON},
}
AUGMENTED: dict[str, Any] = {
    "augmentation.shift": True,
    "augmentation.shift.max_shift": 8,
    "augmentation.shift.mode": "roll",
}
SIDES: dict[str, dict[str, Any]] = {"without": {}, "with shift": AUGMENTED}


def commit() -> str:
    return (
        subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        or "unknown"
    )


def machine() -> str:
    model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    return (
        f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}"
    )


def builtin_registry() -> Any:
    """The built-in components only: loaded from an empty folder, with the plugin environment variables cleared."""
    from orchestrator.api.registry import DISABLE_AUTOLOAD_ENV, LOAD_ONLY_ENV, load_registry

    saved_cwd = Path.cwd()
    saved_env = {k: os.environ.pop(k) for k in (DISABLE_AUTOLOAD_ENV, LOAD_ONLY_ENV) if k in os.environ}
    with tempfile.TemporaryDirectory() as empty:
        os.chdir(empty)
        try:
            registry = load_registry()
        finally:
            os.chdir(saved_cwd)
            os.environ.update(saved_env)
    if registry.errors:
        raise SystemExit(f"plugins failed to load: {registry.errors}")
    return registry


class Results:
    """Each finished run, saved as it finishes (a JSON line per run, in the temporary folder, per commit)."""

    def __init__(self, fresh: bool) -> None:
        self.path = Path(tempfile.gettempdir()) / f"automl-bench-augmentation-{commit()}.jsonl"
        if fresh:
            self.path.unlink(missing_ok=True)
        self.done: dict[tuple[str, str], dict[str, float]] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                record = json.loads(line)
                self.done[record["fingerprint"], record["key"]] = record["run"]
            print(f"resuming: {len(self.done)} run(s) of this commit already done ({self.path})", flush=True)

    def get(self, fingerprint: str, key: str, make: Callable[[], dict[str, float]]) -> dict[str, float]:
        """The run saved under (fingerprint: what was trained, key: epochs/side/seed), or `make()` it and save it."""
        if (fingerprint, key) not in self.done:
            self.done[fingerprint, key] = make()
            with self.path.open("a") as file:
                file.write(
                    json.dumps({"key": key, "fingerprint": fingerprint, "run": self.done[fingerprint, key]}) + "\n"
                )
        return self.done[fingerprint, key]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of: {', '.join(CONFIGS)}")
    parser.add_argument("--seeds", type=int, default=5, help="training seeds 0..N-1, each trained with and without")
    parser.add_argument("--epochs", default="20,60", help="comma-separated training lengths, each measured")
    parser.add_argument("--fresh", action="store_true", help="start over (else the runs saved on this commit count)")
    args = parser.parse_args()
    lengths = [int(e) for e in args.epochs.split(",") if e.strip()]
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    if set(names) - set(CONFIGS):
        parser.error(f"unknown configuration(s) {sorted(set(names) - set(CONFIGS))}; known: {', '.join(CONFIGS)}")

    from orchestrator.quiet import quiet_libraries
    from orchestrator.training.fit import train

    quiet_libraries()
    results = Results(args.fresh)
    print(f"augmentation benchmark: {DATASET}, commit {commit()}; {machine()}", flush=True)
    print(f"augmented side: {', '.join(f'{k}={v}' for k, v in AUGMENTED.items())}", flush=True)
    registry = data = None
    begun = time.perf_counter()

    def run(config: dict[str, Any], side: str, seed: int, epochs: int) -> dict[str, float]:
        nonlocal registry, data
        if registry is None:
            registry = builtin_registry()
            spec = registry.get("dataset", DATASET).spec
            data = spec.build({name: param.default for name, param in spec.params.items()}, 0)
        started = time.perf_counter()
        result = train(
            {**config, **SIDES[side]},
            registry,
            data,
            max_epochs=epochs,
            seed=seed,
            monitor="val_accuracy",
            direction="maximize",
        )
        if result.diverged_at is not None or result.epochs != epochs:
            raise SystemExit(f"{side}, seed {seed}: trained {result.epochs} epochs (diverged at {result.diverged_at})")
        return {
            "test_accuracy": result.test_metrics["test_accuracy"],
            "val_accuracy": result.last("val_accuracy"),
            "train_loss": result.history[-1]["train_loss"],
            "seconds": time.perf_counter() - started,
        }

    def spread(values: list[float], sign: str = "") -> str:
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"mean {statistics.mean(values):{sign}.4f} std {std:.4f}"

    for name in names:
        config = CONFIGS[name]
        fingerprint = json.dumps([DATASET, config, SIDES], sort_keys=True)
        print(f"== {name}: {', '.join(f'{k}={v}' for k, v in config.items())}", flush=True)
        for epochs in lengths:
            print(f"-- {name}, {epochs} epochs, seeds 0..{args.seeds - 1}", flush=True)
            accuracies: dict[str, list[float]] = {side: [] for side in SIDES}
            for seed in range(args.seeds):
                runs = {
                    side: results.get(
                        fingerprint,
                        f"{epochs}/{side}/{seed}",
                        lambda side=side, seed=seed, config=config, epochs=epochs: run(config, side, seed, epochs),
                    )
                    for side in SIDES
                }
                for side, record in runs.items():
                    accuracies[side].append(record["test_accuracy"])
                without, augmented = (runs[side]["test_accuracy"] for side in SIDES)
                print(
                    f"seed {seed}: "
                    + ", ".join(
                        f"{side} test_accuracy {r['test_accuracy']:.4f} (val {r['val_accuracy']:.4f}, final train_loss "
                        f"{r['train_loss']:.3f}, {r['seconds']:.1f} s)"
                        for side, r in runs.items()
                    )
                    + f"; difference {augmented - without:+.4f}",
                    flush=True,
                )
            for side, values in accuracies.items():
                print(
                    f"{name}, {epochs} epochs, {side}: test_accuracy {spread(values)} over {len(values)} seeds "
                    f"[{', '.join(f'{v:.4f}' for v in values)}]"
                )
            differences = [b - a for a, b in zip(*accuracies.values())]
            print(
                f"augmentation_gain {DATASET}-{name} shift {epochs} epochs: {statistics.mean(differences):+.4f} "
                f"test accuracy (with - without, paired by seed: {spread(differences, '+')}; better on "
                f"{sum(d > 0 for d in differences)} of {len(differences)} seeds)",
                flush=True,
            )
    print(f"total {time.perf_counter() - begun:.0f} s (runs done in this invocation)")


if __name__ == "__main__":
    main()
