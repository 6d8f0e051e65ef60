"""The limit: the overhead workload as a plain PyTorch loop over tensors with index batching, validation every
epoch, test at the end. One whole process: python bench/peers/bare_loop.py [--epochs 15]"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]
from workload import BATCH, CONFIGS, prepare, report  # noqa: E402


def train(data, width: int, lr: float, seed: int, epochs: int, on_epoch=None) -> float:
    """One configuration; returns the last epoch's validation accuracy (also handed to `on_epoch` after each)."""
    x_train, y_train = data.x_train.flatten(1), data.y_train
    x_val, y_val = data.x_val.flatten(1), data.y_val
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(40, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    val_acc = 0.0
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_acc = (model(x_val).argmax(1) == y_val).float().mean().item()
        if on_epoch is not None:
            on_epoch(val_acc)
    with torch.no_grad():
        (model(data.x_test.flatten(1)).argmax(1) == data.y_test).float().mean().item()
    return val_acc


def main() -> None:
    epochs, data = prepare()
    start = time.perf_counter()
    accuracies = [train(data, width, lr, i, epochs) for i, (width, lr) in enumerate(CONFIGS)]
    report(start, accuracies, epochs=[epochs] * len(CONFIGS))


if __name__ == "__main__":
    main()
