"""The tutorial stack on the overhead workload, written as the libraries' documentation shows it: Optuna's study
(random sampler, the 10 configurations enqueued) calls an objective that builds a LightningModule, a DataLoader
over a TensorDataset (batch 100, shuffled) and a Trainer with Lightning's `MLFlowLogger` (SQLite store in the
working folder, one run per trial); the validation accuracy is logged with `self.log` and read from
`trainer.callback_metrics`. One whole process: python bench/peers/tutorial_stack.py [--epochs 15]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import optuna
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import MLFlowLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]
from workload import BATCH, CONFIGS, prepare, report  # noqa: E402


class LitMLP(pl.LightningModule):
    def __init__(self, width: int, lr: float) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = nn.Sequential(
            nn.Linear(40, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
        )

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main() -> None:
    epochs, data = prepare()
    start = time.perf_counter()
    train = TensorDataset(data.x_train.flatten(1), data.y_train)
    val = TensorDataset(data.x_val.flatten(1), data.y_val)
    test = TensorDataset(data.x_test.flatten(1), data.y_test)

    def objective(trial: optuna.Trial) -> float:
        width = trial.suggest_int("width", 16, 1024)
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        pl.seed_everything(trial.number)
        model = LitMLP(width, lr)
        logger = MLFlowLogger(
            experiment_name="tutorial", tracking_uri="sqlite:///mlflow.db", run_name=f"trial-{trial.number}"
        )
        trainer = pl.Trainer(
            max_epochs=epochs, logger=logger, enable_checkpointing=False, accelerator="auto", devices=1
        )
        trainer.fit(model, DataLoader(train, batch_size=BATCH, shuffle=True), DataLoader(val, batch_size=BATCH))
        accuracy = trainer.callback_metrics["val_acc"].item()
        trainer.test(model, DataLoader(test, batch_size=BATCH))
        return accuracy

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for width, lr in CONFIGS:
        study.enqueue_trial({"width": width, "lr": lr})
    study.optimize(objective, n_trials=len(CONFIGS))
    trials = sorted(study.trials, key=lambda t: t.number)
    report(start, [t.value for t in trials], epochs=[epochs] * len(trials))


if __name__ == "__main__":
    main()
