"""Trial checkpoints: a trial's whole training state at the end of an epoch, written atomically, loaded with
`torch.load(weights_only=True)` only, so that a retry continues at the next epoch with identical state.

The state: network, optimizers, LR schedules, epochs done, per-epoch history, every RNG state (torch, CUDA,
NumPy, Python, the batch-order generator), the early-stopping and keep-best state, and the values already
reported to Optuna (the history's objective).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint

from orchestrator.errors import RunError
from orchestrator.flow import FlowSignal
from orchestrator.preemption import STOP, TrialInterrupted
from orchestrator.records import live_lineages

FORMAT = 1


class TrialPaused(FlowSignal):
    """The trial stopped at the end of epoch `epochs` (a rung) with its state written, to be continued later."""

    def __init__(self, epochs: int) -> None:
        super().__init__(f"paused after epoch {epochs}")
        self.epochs = epochs


class CheckpointError(RunError):
    """A checkpoint that cannot be used (unreadable, truncated, another configuration); the message says why."""


@dataclass(frozen=True)
class CheckpointPolicy:
    """How often and where a study's trials checkpoint. `every_epochs` 0 turns checkpoints off."""

    folder: Path
    every_epochs: int = 1
    min_seconds: float = 5.0
    keep: bool = False

    @property
    def enabled(self) -> bool:
        return self.every_epochs > 0

    def path(self, study_name: str, lineage: int) -> Path:
        """The checkpoint of a lineage of attempts (a trial and its retries share it)."""
        return self.folder / study_name / f"trial-{lineage}.pt"


def config_key(config: Mapping[str, Any]) -> str:
    """The configuration as a canonical string: a checkpoint only resumes the configuration that wrote it."""
    return json.dumps(dict(config), sort_keys=True, default=str)


def save_atomic(state: Mapping[str, Any], path: Path) -> None:
    """Write `state` to a temporary file beside `path`, then rename it over `path` (never a half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(dict(state), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read(path: Path) -> Any:
    """The object in a checkpoint file, loaded with weights_only=True; CheckpointError when unreadable."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, corrupt, or holding objects that weights_only refuses
        raise CheckpointError(
            f"checkpoint {path} is unreadable: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
        ) from None


def load(path: Path, config: Mapping[str, Any], max_epochs: int) -> dict[str, Any] | None:
    """The checkpoint at `path` for this configuration and epoch budget; None when there is none;
    CheckpointError when it cannot be used."""
    if not path.exists():
        return None
    state = _read(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a trial checkpoint of format {FORMAT}")
    missing = {"epoch", "config", "module", "optimizers", "schedulers", "history", "rng"} - set(state)
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(sorted(missing))}")
    if state["config"] != config_key(config):
        raise CheckpointError(f"checkpoint {path} was written by another configuration")
    if state.get("max_epochs") != max_epochs:  # schedules and early stopping depend on it
        raise CheckpointError(
            f"checkpoint {path} was written for max_epochs {state.get('max_epochs')}, the study now trains {max_epochs}"
        )
    return state


def saved_epoch(path: Path) -> int | None:
    """The epoch a checkpoint resumes at, or None when there is no readable one."""
    try:
        return int(_read(path)["epoch"])
    except (CheckpointError, OSError, KeyError, TypeError, ValueError):
        return None


def delete(path: Path) -> None:
    path.unlink(missing_ok=True)


def sweep(policy: CheckpointPolicy, study_name: str, live: set[int]) -> int:
    """Delete the study's checkpoints whose lineage has no trial waiting or running (`live`), and the study's
    folder once it is empty; returns how many files were deleted."""
    folder = policy.folder / study_name
    removed = 0
    for path in folder.glob("trial-*.pt"):
        number = path.stem.removeprefix("trial-")
        if number.isdigit() and int(number) not in live:
            delete(path)
            removed += 1
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return removed


def sweep_study(policy: CheckpointPolicy, study: Any) -> int:
    """At a study's end: delete the checkpoints no waiting or running trial needs, unless the policy keeps them."""
    return 0 if policy.keep else sweep(policy, study.study_name, live_lineages(study))


@dataclass
class Checkpointing:
    """What one training run needs to checkpoint: the policy, its file, the state to resume from (if any),
    what to record beside the state, and whom to tell of a failed write."""

    policy: CheckpointPolicy
    path: Path
    resume: Mapping[str, Any] | None = None
    meta: Mapping[str, Any] | None = None
    on_write_error: Callable[[str], None] | None = None
    pause_requested: bool = False  # set by a rung: write the state at this epoch's end and pause

    def request_pause(self) -> None:
        self.pause_requested = True


# -- capturing and restoring the state ---------------------------------------------------------------------


def _rng_state(batches_generator: torch.Generator) -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "batches": batches_generator.get_state(),
    }


def _restore_rng(rng: Mapping[str, Any], batches_generator: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])
    numpy = rng["numpy"]
    np.random.set_state(
        (numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"], numpy["gauss"])
    )
    python = rng["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))
    batches_generator.set_state(rng["batches"])


@dataclass(frozen=True)
class TrainingParts:
    """The pieces of one training run whose state a checkpoint holds (set by `train`)."""

    evaluator: Any
    batches: Any
    keep_best: Any = None
    early_stopping: Any = None


def capture(
    trainer: pl.Trainer,
    module: pl.LightningModule,
    parts: TrainingParts,
    config: Mapping[str, Any],
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    """The whole state after `trainer.current_epoch`'s training and evaluation. Lightning has stepped the
    schedules already, except plateau ones (stepped after the epoch-end hooks: `restore` takes that step)."""
    keep_best = parts.keep_best
    return {
        "format": FORMAT,
        **meta,
        "epoch": trainer.current_epoch + 1,
        "max_epochs": trainer.max_epochs,
        "config": config_key(config),
        "module": module.state_dict(),
        "optimizers": [optimizer.state_dict() for optimizer in trainer.optimizers],
        "schedulers": [
            {"state": c.scheduler.state_dict(), "plateau": bool(c.reduce_on_plateau), "monitor": c.monitor or ""}
            for c in trainer.lr_scheduler_configs
        ],
        "history": [dict(epoch) for epoch in parts.evaluator.history],
        "rng": _rng_state(parts.batches.generator),
        "keep_best": None
        if keep_best is None
        else {"best": keep_best.best, "best_epoch": keep_best.best_epoch, "state": keep_best.state},
        "early_stopping": None if parts.early_stopping is None else parts.early_stopping.state_dict(),
    }


def restore(state: Mapping[str, Any], trainer: pl.Trainer, module: pl.LightningModule, parts: TrainingParts) -> None:
    """Put a captured state back into a freshly built run whose optimizers and schedules exist (on_train_start)."""
    module.load_state_dict(state["module"])
    optimizers, schedulers = trainer.optimizers, trainer.lr_scheduler_configs
    if len(state["optimizers"]) != len(optimizers) or len(state["schedulers"]) != len(schedulers):
        raise CheckpointError("the checkpoint's optimizers or schedules do not match this configuration")
    for optimizer, saved in zip(optimizers, state["optimizers"]):
        optimizer.load_state_dict(saved)
    last = state["history"][-1] if state["history"] else {}
    for config, saved in zip(schedulers, state["schedulers"]):
        config.scheduler.load_state_dict(saved["state"])
        if saved["plateau"] and saved["monitor"] in last:  # Lightning steps these after the checkpoint hook
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                config.scheduler.step(last[saved["monitor"]])
    parts.evaluator.history[:] = [dict(epoch) for epoch in state["history"]]
    if parts.keep_best is not None and state.get("keep_best"):
        saved = state["keep_best"]
        parts.keep_best.best, parts.keep_best.best_epoch = saved["best"], saved["best_epoch"]
        parts.keep_best.state = saved["state"]
    if parts.early_stopping is not None and state.get("early_stopping"):
        parts.early_stopping.load_state_dict(state["early_stopping"])
    _restore_rng(state["rng"], parts.batches.generator)


def start_at_epoch(trainer: pl.Trainer, epoch: int) -> None:
    """Make the trainer's first epoch number `epoch`, as Lightning's own resume does (its progress counters)."""
    for progress in (trainer.fit_loop.epoch_progress.current, trainer.fit_loop.epoch_progress.total):
        progress.ready = progress.started = progress.processed = progress.completed = epoch  # type: ignore[attr-defined]


# -- the callbacks -------------------------------------------------------------------------------------------


class EpochCheckpoint(Checkpoint):
    """Writes the trial's state at epoch ends (every `every_epochs`, at most every `min_seconds`, always when
    a stop or a pause was requested: a pause then ends training with TrialPaused), and restores a loaded state
    when training starts.

    A `Checkpoint` subclass, so Lightning runs it after every other epoch-end hook (early stopping included).
    A failed write lets training go on; `on_write_error` hears of it.
    """

    def __init__(
        self,
        checkpointing: Checkpointing,
        parts: TrainingParts,
        config: Mapping[str, Any],
        on_resumed: Callable[[list[dict[str, float]]], None],
    ) -> None:
        self.settings = checkpointing
        self.policy = checkpointing.policy
        self.parts = parts
        self.config = config
        self.on_resumed = on_resumed
        self.last_write = time.monotonic()
        self.written_epochs: int | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.last_write = time.monotonic()
        resume = self.settings.resume
        if resume is None:
            return
        try:
            restore(resume, trainer, pl_module, self.parts)
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(
                f"checkpoint {self.settings.path} does not fit this configuration: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            ) from None
        self.written_epochs = int(resume["epoch"])
        self.on_resumed(self.parts.evaluator.history)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epochs = trainer.current_epoch + 1
        if trainer.should_stop or epochs >= (trainer.max_epochs or 0):
            return  # the trial ends with this epoch: nothing to resume
        due = epochs % self.policy.every_epochs == 0 and time.monotonic() - self.last_write >= self.policy.min_seconds
        if due or STOP.requested or self.settings.pause_requested:
            self._write(trainer, pl_module, epochs)
        if self.settings.pause_requested:
            self.settings.pause_requested = False
            if self.written_epochs == epochs:
                raise TrialPaused(epochs)  # else the write failed (reported): the trial trains on instead
        if STOP.requested:
            raise TrialInterrupted(self.written_epochs or 0, self.written_epochs is not None)

    def _write(self, trainer: pl.Trainer, module: pl.LightningModule, epochs: int) -> None:
        try:
            save_atomic(capture(trainer, module, self.parts, self.config, self.settings.meta or {}), self.settings.path)
        except Exception as exc:  # disk full, no permission: the trial goes on without this checkpoint
            if self.settings.on_write_error:
                self.settings.on_write_error(f"{type(exc).__name__}: {exc}")
            return
        self.written_epochs = epochs
        self.last_write = time.monotonic()


class StopOnRequest(pl.Callback):
    """Ends training at the end of a step when a stop was requested and the epoch in progress cannot finish
    (and be checkpointed) within the grace period; `checkpoint` is the run's EpochCheckpoint, if any."""

    def __init__(self, checkpoint: EpochCheckpoint | None) -> None:
        self.checkpoint = checkpoint
        self.epoch_started = time.monotonic()
        self.epoch_seconds: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epoch_started = time.monotonic()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epoch_seconds = time.monotonic() - self.epoch_started

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not STOP.requested:
            return
        now = time.monotonic()
        elapsed = now - self.epoch_started
        estimate = self.epoch_seconds or elapsed / (batch_idx + 1) * max(trainer.num_training_batches, 1)
        if self.checkpoint is None or now + (estimate - elapsed) * 1.2 > STOP.training_deadline():
            written = self.checkpoint.written_epochs if self.checkpoint else None
            raise TrialInterrupted(written or 0, written is not None)


def warn_once(out: Any = None) -> Callable[[str], None]:
    """A write-error reporter that prints its first message only."""
    said: list[str] = []

    def report(message: str) -> None:
        if not said:
            said.append(message)
            print(
                f"warning: a checkpoint could not be written ({message}); the trial goes on without it "
                "(further failures are not reported)",
                file=out or sys.stderr,
                flush=True,
            )

    return report
