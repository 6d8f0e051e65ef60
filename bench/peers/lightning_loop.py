"""Lightning's own floor on the overhead workload: the bare loop's model, data order and validation, trained by a
plain LightningModule and a Trainer with everything optional off (no logger, checkpoints, progress bar, model
summary, validation loop or profiler), with no Optuna and no tracking. What `automl run` costs beyond this is
ours; what this costs beyond the bare loop is Lightning's per-step loop.
One whole process: python bench/peers/lightning_loop.py [--epochs 15]"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.profilers import PassThroughProfiler
from torch import nn

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]
from workload import BATCH, CONFIGS, prepare, report  # noqa: E402


class IndexBatches:
    """The bare loop's batches: a seeded permutation per epoch, cut into slices of BATCH."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, seed: int) -> None:
        self.x, self.y = x, y
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.x) // BATCH)

    def __iter__(self):
        order = torch.randperm(len(self.x), generator=self.generator)
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            yield self.x[idx], self.y[idx]


class PlainMLP(pl.LightningModule):
    def __init__(self, width: int, lr: float, x_val: torch.Tensor, y_val: torch.Tensor) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Linear(40, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
        )
        self.lr, self.x_val, self.y_val = lr, x_val, y_val
        self.loss_fn = nn.CrossEntropyLoss()
        self.val_accuracy = 0.0

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self.model(x), y)

    def on_train_epoch_end(self) -> None:
        self.model.eval()
        with torch.no_grad():
            self.val_accuracy = (self.model(self.x_val).argmax(1) == self.y_val).float().mean().item()
        self.model.train()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def main() -> None:
    epochs, data = prepare()
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    x_train, x_val, x_test = data.x_train.flatten(1), data.x_val.flatten(1), data.x_test.flatten(1)
    start = time.perf_counter()
    accuracies = []
    for seed, (width, lr) in enumerate(CONFIGS):
        torch.manual_seed(seed)
        model = PlainMLP(width, lr, x_val, data.y_val)
        trainer = pl.Trainer(
            max_epochs=epochs,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
            profiler=PassThroughProfiler(),
        )
        trainer.fit(model, train_dataloaders=IndexBatches(x_train, data.y_train, seed))
        with torch.no_grad():
            (model.model(x_test).argmax(1) == data.y_test).float().mean().item()
        accuracies.append(model.val_accuracy)
    report(start, accuracies, epochs=[epochs] * len(CONFIGS))


if __name__ == "__main__":
    main()
