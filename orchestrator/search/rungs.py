"""The asha rung check inside a trial: record the objective at each rung, train on or pause (see promotion.py)."""

from __future__ import annotations

import math
from collections.abc import Callable

import optuna
import pytorch_lightning as pl

from orchestrator.records import RUNGS_ATTR
from orchestrator.search.promotion import SuccessiveHalving, rung_results, trains_on


class RungCallback(pl.Callback):
    """At the end of each rung but the last: record the trial's objective values there, then train on if its
    lineage is in the top 1/eta of the rung or leads it (`promotion.trains_on`), else ask `pause()` (the checkpoint
    callback writes the state and ends the trial)."""

    def __init__(
        self,
        trial: optuna.Trial,
        pruner: SuccessiveHalving,
        trial_lineage: int,
        values: Callable[[pl.Trainer, pl.LightningModule], list[float] | None],
        pause: Callable[[], None],
    ) -> None:
        self.trial = trial
        self.pruner = pruner
        self.lineage = trial_lineage
        self.values = values
        self.pause = pause
        self.rungs = pruner.rungs()[:-1]

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epochs = trainer.current_epoch + 1
        if epochs not in self.rungs or trainer.should_stop:
            return
        values = self.values(trainer, pl_module)
        if values is None or not all(math.isfinite(v) for v in values):
            return  # nothing to rank by: the trial goes on (and fails or completes on its own terms)
        recorded = dict(self.trial.user_attrs.get(RUNGS_ATTR) or {})
        recorded[str(epochs)] = values
        self.trial.set_user_attr(RUNGS_ATTR, recorded)
        study = self.trial.study
        trials = study.get_trials(deepcopy=False)
        at_rung = rung_results(trials).get(epochs, {})
        at_rung[self.lineage] = values
        incumbent = any(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        if not trains_on(self.lineage, at_rung, study.directions, self.pruner, incumbent):
            self.pause()
