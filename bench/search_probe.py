"""The search benchmark's fingerprints, behavioural where they can be: a saved run counts while what decides its
numbers behaves the same, so a change that moves code without changing results keeps hours of runs, and one that
changes results voids them.

- A task's fingerprint: its data file's sha256, its study template, and a training probe: three short
  deterministic trials of the study (random configurations, seed 0, 2 epochs) run through `automl run`; their
  parameters, per-epoch values and test metrics.
- A strategy's fingerprint: its sampler and pruner as the study file names them, and a search probe: `automl run`
  of a small study (built-in MNIST-1D, 300 training samples, 12 configurations, rungs at 1, 3 and 9 epochs) with
  that strategy; every trial's parameters, state, per-epoch values and rung records (paused, promoted).
- Both include the versions of torch, Lightning and Optuna and the processor (family, model, stepping and a digest
  of its feature flags: another processor computes other floats, and runs at another speed). Probes are re-run only
  when the source they depend on changed (a digest of orchestrator/, plugins/, the tasks and the strategies), and
  cached in probes.json.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from search_run import JOURNAL, Run, write_study

ROOT = Path(__file__).resolve().parent.parent
SOURCE = [
    "orchestrator",
    "plugins",
    "bench/search_tasks.py",
    "bench/search_tasks",
    "bench/search_probe.py",
    "bench/search_run.py",
    "bench/search_strategies.py",
]
PROBE_SECONDS = 600
STRATEGY_STUDY = """
name: search-probe
dataset: {name: mnist1d, train_samples: 300, val_fraction: 0.25}
objective: {metric: val_accuracy, direction: maximize}
budget: {trials: 12, max_epochs: 9}
checkpoints: {min_seconds: 0}
search:
  architecture: {mlp: {depth: [1, 2], width: {low: 16, high: 64, log: true}}}
  activation: [relu, tanh]
  loss: cross_entropy
  optimizer: {adam: {lr: {low: 0.0003, high: 0.03, log: true}}}
  batch_size: [32, 64]
"""


def processor() -> str:
    """The processor as far as results and speed go: family, model, stepping and a digest of its feature flags
    (/proc/cpuinfo; a cloud's "AMD EPYC" names several generations)."""
    from orchestrator.training.runtime import cpu_fields

    fields = cpu_fields()
    flags = hashlib.sha256(fields.get("flags", "").encode()).hexdigest()[:8]
    return (
        f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')} "
        f"stepping {fields.get('stepping', '?')} flags {flags}"
    )


def versions() -> str:
    import pytorch_lightning
    import torch

    return (
        f"torch {torch.__version__}, pytorch_lightning {pytorch_lightning.__version__}, optuna {optuna.__version__}"
        f", cpu {processor()}"
    )


def source_digest() -> str:
    """A digest of every source file the probes depend on (when it holds, the probes need not run again)."""
    digest = hashlib.sha256(versions().encode())
    for name in SOURCE:
        path = ROOT / name
        files = (
            sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".py", ".yaml"))
            if path.is_dir()
            else [path]
        )
        for file in files:
            digest.update(str(file.relative_to(ROOT)).encode() + file.read_bytes())
    return digest.hexdigest()[:16]


def _round(value: Any) -> Any:
    return float(f"{value:.6g}") if isinstance(value, float) else value


def behaviour(folder: Path, study_name: str) -> str:
    """A digest of what a finished probe's study holds: per trial its parameters, state, per-epoch values, test
    metrics and rung records."""
    study = optuna.load_study(study_name=study_name, storage=JournalStorage(JournalFileBackend(str(folder / JOURNAL))))
    rows = []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        attrs = {
            k: v
            for k, v in trial.user_attrs.items()
            if k in ("test_metrics", "rung_values", "paused_at_epoch", "promoted_from_epoch", "retry_of", "lineage")
        }
        rows.append(
            [
                trial.number,
                trial.state.name,
                {k: _round(v) for k, v in sorted(trial.params.items())},
                {str(k): _round(v) for k, v in sorted(trial.intermediate_values.items())},
                json.loads(json.dumps(attrs, sort_keys=True, default=str), parse_float=lambda s: _round(float(s))),
            ]
        )
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]


def _probe(study: Path, label: str, core: int | None) -> str:
    run = Run(study, core, PROBE_SECONDS, "test_accuracy", True, label)
    run.wait(PROBE_SECONDS)
    if run.process.returncode != 0:
        log = (study.parent / "run.log").read_text().splitlines()[-20:]
        run.kill()
        raise RuntimeError(f"probe {label} failed (exit {run.process.returncode}):\n" + "\n".join(log))
    digest = behaviour(study.parent, yaml.safe_load(study.read_text())["name"])
    run.kill()  # removes its folder
    return digest


def training_probe(template: Path, data_file: Path, core: int | None = None) -> str:
    folder = Path(tempfile.mkdtemp(prefix="automl-search-probe-"))
    study = write_study(template, data_file, folder, "random", "none", 0, PROBE_SECONDS, {"trials": 3, "max_epochs": 2})
    return _probe(study, f"training probe {template.stem}", core)


def strategy_probe(sampler: Any, pruner: Any, core: int | None = None) -> str:
    folder = Path(tempfile.mkdtemp(prefix="automl-search-probe-"))
    data = yaml.safe_load(STRATEGY_STUDY)
    data.update(sampler=sampler, pruner=pruner, seed=0)
    study = folder / "study.yaml"
    study.write_text(yaml.safe_dump(data, sort_keys=False))
    return _probe(study, f"search probe {json.dumps([sampler, pruner])}", core)


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps([versions(), *parts], sort_keys=True, default=str).encode()).hexdigest()[:16]


class Probes:
    """Probe digests cached by source digest in a JSON file; each is computed on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.source = source_digest()
        saved = json.loads(path.read_text()) if path.exists() else {}
        self.digests: dict[str, str] = saved.get("digests", {}) if saved.get("source") == self.source else {}

    def get(self, key: str, compute: Callable[[], str]) -> str:
        if key not in self.digests:
            print(f"probing {key} ...", flush=True)
            self.digests[key] = compute()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"source": self.source, "digests": self.digests}, indent=1) + "\n")
        return self.digests[key]
