"""Our own Lightning pruning callback (optuna-integration's imports the other Lightning namespace)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import optuna
import pytorch_lightning as pl


class OptunaPruning(pl.Callback):
    """Reports `monitor` to the trial after each epoch and stops training when Optuna says prune.

    Reads `trainer.callback_metrics[monitor]`, so it must come after the callback that computes it.
    Stopping (rather than raising) lets the epoch's metrics be recorded before the trial ends.
    """

    def __init__(self, trial: optuna.trial.BaseTrial, monitor: str) -> None:
        self.trial = trial
        self.monitor = monitor
        self.pruned_at: int | None = None

    def report(self, epoch: int, metrics: Mapping[str, Any]) -> bool:
        """Report `monitor` of `epoch` to the trial (a resumed trial replays its epochs so); False when the
        value is missing or not finite (nothing reported)."""
        value = metrics.get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return False
        self.trial.report(float(value), step=epoch)
        return True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        if not self.report(epoch, trainer.callback_metrics):
            return
        if self.trial.should_prune():
            self.pruned_at = epoch
            trainer.should_stop = True
