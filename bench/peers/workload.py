"""The overhead workload of shared/BENCHMARKS.md, shared by the peers: MNIST-1D (3600 train / 400 validation by
the project's fixed split, seed 0; the 1000 official test samples), 10 fixed (width, lr) configurations of an MLP
40->w->w->10 with ReLU, Adam, batch 100, 15 epochs, trial i seeded with i, one CPU thread.

Each peer is one whole process; at its end it prints one line `RESULT {json}` with `window` (seconds from after
imports and data to the end of the last trial) and the validation accuracy of each configuration.
"""

from __future__ import annotations

import argparse
import json
import time

CONFIGS = [
    (64, 1e-3),
    (128, 1e-3),
    (256, 1e-3),
    (512, 1e-3),
    (100, 2e-3),
    (64, 3e-3),
    (128, 3e-3),
    (256, 5e-3),
    (512, 5e-3),
    (100, 1e-2),
]
BATCH = 100
EPOCHS = 15


def mnist1d():
    """The same tensors `automl` trains on (`dataset: {name: mnist1d, val_fraction: 0.1}`, seed 0)."""
    from plugins.datasets import build_mnist1d

    return build_mnist1d({"val_fraction": 0.1, "train_samples": 3800}, 0)


def prepare():
    """A peer's start: its `--epochs` argument, one CPU thread, the data; returns (epochs, data)."""
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    epochs = parser.parse_args().epochs
    torch.set_num_threads(1)
    # An import, so before the window: the first optimizer step imports TorchDynamo lazily (about 0.7 s). Lightning
    # imports it with itself, so without this the bare loop alone would pay it inside its window.
    import torch._dynamo  # noqa: F401

    return epochs, mnist1d()


def report(window_start: float, accuracies: list[float], **extra) -> None:
    """Print the peer's result line (the window ends now)."""
    print(
        "RESULT " + json.dumps({"window": time.perf_counter() - window_start, "accuracies": accuracies, **extra}),
        flush=True,
    )
