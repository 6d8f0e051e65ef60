"""Train one configuration with Lightning: minimal Trainer, index batches, per-epoch metrics."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import optuna
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping
from pytorch_lightning.profilers import Profiler

from orchestrator.api.components import DataBundle
from orchestrator.api.registry import Registry
from orchestrator.search.stopping import OptunaPruning
from orchestrator.training.assembly import TrialModule, assemble, regularizer_effects
from orchestrator.training.batches import IndexBatches
from orchestrator.training.checkpoints import (
    Checkpointing,
    EpochCheckpoint,
    StopOnRequest,
    TrainingParts,
    start_at_epoch,
)
from orchestrator.training.devices import training_device
from orchestrator.training.streaming import StreamBatches, evaluation_batches
from orchestrator.training.tasks import TASK_METRICS

EpochListener = Callable[[int, dict[str, float]], None]


def split_source(data: DataBundle, split: str, device: str) -> tuple[Any, Any]:
    """What evaluation reads for `split`: its (inputs, targets) tensors, or (a DataLoader, None) when streamed."""
    if data.streaming:
        return evaluation_batches(data, split, device), None
    return getattr(data, f"x_{split}"), getattr(data, f"y_{split}")


def split_metrics(module: Any, data: DataBundle, split: str, source: tuple[Any, Any] | None = None) -> dict[str, float]:
    """Loss (where the task has one) and task metrics of the current model on `val` or `test` (read from
    `source`, default `split_source`)."""
    x, y = source or split_source(data, split, str(module.device.type))
    outputs, targets = module.evaluation_pair(x, y)
    loss = module.evaluation_loss(outputs, targets)
    metrics = {f"{split}_loss": loss} if loss is not None else {}
    for metric in TASK_METRICS[data.task]:
        scale = data.target_scale if metric.in_target_units else 1.0
        metrics[f"{split}_{metric.name}"] = float(metric.compute(outputs, targets)) * scale
    return metrics


class EpochEvaluator(pl.Callback):
    """After each training epoch: train loss, validation loss and metrics into `callback_metrics`.

    Stops training when the training loss is no longer finite (divergence).
    """

    def __init__(self, data: DataBundle, listeners: Sequence[EpochListener] = (), device: str = "cpu") -> None:
        self.data = data
        self.val_source = split_source(data, "val", device)
        self.listeners = list(listeners)
        self.history: list[dict[str, float]] = []
        self.diverged_at: int | None = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = {
            "train_loss": cast(TrialModule, pl_module).epoch_train_loss(),  # the module `assemble` built
            **split_metrics(pl_module, self.data, "val", self.val_source),
        }
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in metrics.items()})
        self.history.append(metrics)
        if not math.isfinite(metrics["train_loss"]):
            self.diverged_at = trainer.current_epoch
            trainer.should_stop = True
        for listener in self.listeners:
            listener(trainer.current_epoch, metrics)


class KeepBest(pl.Callback):
    """Remembers the network's weights at the best epoch of `monitor` and restores them when training
    ends, so that a run stopped early is judged (and tested) at its best epoch, not its last."""

    def __init__(self, monitor: str, direction: str) -> None:
        self.monitor = monitor
        self.sign = 1.0 if direction == "maximize" else -1.0
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        if self.best is None or self.sign * float(value) > self.sign * self.best:
            self.best, self.best_epoch = float(value), trainer.current_epoch
            self.state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.state is not None:
            pl_module.load_state_dict(self.state)


@dataclass
class TrainingResult:
    """What one training run produced: per-epoch history, final test metrics, how it stopped."""

    history: list[dict[str, float]] = field(default_factory=list)
    resumed_at: int | None = None  # the epoch training continued at, from a checkpoint
    test_metrics: dict[str, float] = field(default_factory=dict)
    pruned_at: int | None = None
    diverged_at: int | None = None
    best_epoch: int | None = None  # set when the best epoch's weights were restored (early stopping)
    model: pl.LightningModule | None = None

    @property
    def epochs(self) -> int:
        return len(self.history)

    def last(self, metric: str) -> float | None:
        return self.history[-1].get(metric) if self.history else None

    def final(self, metric: str) -> float | None:
        """The metric of the model training ended with: the restored best epoch's, else the last."""
        if self.best_epoch is not None and self.best_epoch < len(self.history):
            return self.history[self.best_epoch].get(metric)
        return self.last(metric)


class NoProfiler(Profiler):
    """Lightning's default profiler does nothing, but opens a generator-based context manager around each of
    the ~60 hook calls of a training step; this one hands back one shared no-op context (about 2% of a small
    model's training time on a CPU)."""

    _NOTHING = contextlib.nullcontext()

    def profile(self, action_name: str) -> Any:  # type: ignore[override]
        return self._NOTHING

    def start(self, action_name: str) -> None:
        pass

    def stop(self, action_name: str) -> None:
        pass


def train(
    config: Mapping[str, Any],
    registry: Registry,
    data: DataBundle,
    *,
    max_epochs: int,
    seed: int,
    trial: optuna.trial.BaseTrial | None = None,
    monitor: str = "val_loss",
    direction: str = "minimize",
    listeners: Sequence[EpochListener] = (),
    callbacks: Sequence[pl.Callback] = (),
    checkpointing: Checkpointing | None = None,
) -> TrainingResult:
    """Build the configuration's model and train it; `data` must already be on the training device.

    `monitor`/`direction` (the objective) drive pruning and the early-stopping regularizer. With
    `checkpointing`, the run writes its state at epoch ends and, given a state to resume, continues from it:
    the epochs already done are replayed to the listeners and reported to `trial` (not trained again). A
    state that cannot be restored raises CheckpointError before any epoch is trained or replayed. A stop
    request (preemption) raises TrialInterrupted.
    """
    torch.manual_seed(seed)
    batches, device = _training_batches(data, int(config.get("batch_size", 100)), seed)
    effects = regularizer_effects(config, registry)
    module = assemble(
        config, registry, data, max_epochs=max_epochs, steps_per_epoch=len(batches), seed=seed, effects=effects
    )
    evaluator = EpochEvaluator(data, listeners, device)
    pruning = OptunaPruning(trial, monitor) if trial is not None else None
    keep_best, early_stopping = _early_stopping(effects["early_stopping_patience"], monitor, direction)
    own: list[pl.Callback] = [evaluator, *([pruning] if pruning else [])]
    own += [keep_best, early_stopping] if keep_best and early_stopping else []
    if checkpointing is not None and not checkpointing.policy.enabled:
        checkpointing = None
    parts = TrainingParts(evaluator, batches, keep_best, early_stopping)
    saver = EpochCheckpoint(checkpointing, parts, config, _replay(pruning, evaluator)) if checkpointing else None
    own += [StopOnRequest(saver), *([saver] if saver else [])]
    # A manually optimized module (the GAN) clips its own gradients.
    grad_clip = effects["grad_clip"] if module.automatic_optimization else None
    trainer = _trainer(max_epochs, device, saver is not None, grad_clip, [*own, *callbacks])
    resumed_at = int(checkpointing.resume["epoch"]) if checkpointing and checkpointing.resume else None
    if resumed_at is not None:
        start_at_epoch(trainer, resumed_at)
    with batches.cpu_share() if data.streaming else contextlib.nullcontext():
        trainer.fit(module, train_dataloaders=batches)
    return _result(module, data, evaluator, pruning, keep_best, resumed_at)


def _training_batches(data: DataBundle, batch_size: int, seed: int) -> tuple[Any, str]:
    """The training batches (streamed, or drawn from the tensors by index) and the device type they train on."""
    if data.streaming:
        device = training_device()
        return StreamBatches(data, batch_size, seed, device), device
    return IndexBatches(data.x_train, data.y_train, batch_size, seed), data.x_train.device.type


def _early_stopping(patience: int | None, monitor: str, direction: str) -> tuple[KeepBest | None, EarlyStopping | None]:
    """The early-stopping regularizer's callbacks (none without a patience): keep the best epoch's weights, and
    stop after `patience` epochs without improvement of `monitor`."""
    if patience is None:
        return None, None
    keep_best = KeepBest(monitor, direction)
    early_stopping = EarlyStopping(
        monitor=monitor,
        mode="max" if direction == "maximize" else "min",
        patience=patience,
        check_on_train_epoch_end=True,
    )
    return keep_best, early_stopping


def _replay(pruning: OptunaPruning | None, evaluator: EpochEvaluator) -> Callable[[list[dict[str, float]]], None]:
    """How a resumed run replays its epochs."""

    def replay(history: list[dict[str, float]]) -> None:
        """The resumed epochs, once more, to the pruner (Optuna's intermediate values) and the listeners."""
        for epoch, metrics in enumerate(history):
            if pruning:
                pruning.report(epoch, metrics)
            for listener in evaluator.listeners:
                listener(epoch, metrics)

    return replay


def _trainer(
    max_epochs: int, device: str, checkpoints: bool, grad_clip: float | None, callbacks: list[pl.Callback]
) -> pl.Trainer:
    """A minimal Trainer on one device: no logger, progress bar, summary, sanity or validation loop of its own."""
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        logger=False,
        enable_checkpointing=checkpoints,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        log_every_n_steps=1_000_000,
        profiler=NoProfiler(),
        gradient_clip_val=grad_clip,
        callbacks=callbacks,
    )
    # Stop requests are ours to handle (finish the epoch, checkpoint): keep Lightning's SIGTERM handler out.
    trainer._signal_connector.register_signal_handlers = lambda: None  # type: ignore[method-assign]
    return trainer


def _result(
    module: pl.LightningModule,
    data: DataBundle,
    evaluator: EpochEvaluator,
    pruning: OptunaPruning | None,
    keep_best: KeepBest | None,
    resumed_at: int | None,
) -> TrainingResult:
    """What the run produced; the test split's metrics unless it diverged."""
    result = TrainingResult(
        history=evaluator.history,
        pruned_at=pruning.pruned_at if pruning else None,
        diverged_at=evaluator.diverged_at,
        model=module,
        resumed_at=resumed_at,
        best_epoch=keep_best.best_epoch if keep_best and evaluator.diverged_at is None else None,
    )
    if result.diverged_at is None:
        result.test_metrics = split_metrics(module, data, "test")
    return result
