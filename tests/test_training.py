"""Training behaviour the engine adds around Lightning: early stopping keeps the best epoch."""

from __future__ import annotations

import pytest

from orchestrator.api.registry import load_registry
from orchestrator.training.fit import split_metrics, train


def test_early_stopping_restores_and_reports_the_best_epoch():
    registry = load_registry()
    data = registry.get("dataset", "digits").spec.build({"test_fraction": 0.25, "val_fraction": 0.15}, 0)
    config = {
        "architecture": "mlp",
        "architecture.mlp.depth": 1,
        "architecture.mlp.width": 64,
        "activation": "relu",
        "loss": "cross_entropy",
        "optimizer": "sgd",
        "optimizer.sgd.lr": 0.9,
        "optimizer.sgd.momentum": 0.9,
        "optimizer.sgd.nesterov": False,
        "schedule": "constant",
        "regularizer.early_stopping": True,
        "regularizer.early_stopping.patience": 2,
        "batch_size": 32,
    }
    result = train(config, registry, data, max_epochs=40, seed=0, monitor="val_loss", direction="minimize")
    losses = [epoch["val_loss"] for epoch in result.history]
    assert len(losses) < 40, "this noisy configuration was expected to stop early"
    assert result.best_epoch == losses.index(min(losses)) == len(losses) - 3
    assert result.final("val_loss") == min(losses) < result.last("val_loss")
    # the model handed back is the best epoch's: its validation loss is the recorded best
    assert split_metrics(result.model, data, "val")["val_loss"] == pytest.approx(min(losses), rel=1e-5)


def test_index_batches_cover_every_sample_once_and_never_leave_a_single_row():
    import torch

    from orchestrator.training.batches import IndexBatches

    x, y = torch.arange(25).float().unsqueeze(1), torch.arange(25)
    batches = IndexBatches(x, y, batch_size=8, seed=0)
    sizes = [len(yb) for _, yb in batches]
    assert sizes == [8, 8, 9] and len(batches) == 3
    seen = torch.cat([yb for _, yb in batches])
    assert sorted(seen.tolist()) == list(range(25))
    assert [len(yb) for _, yb in IndexBatches(x[:24], y[:24], 8, 0)] == [8, 8, 8]
    first, second = [yb.tolist() for _, yb in batches], [yb.tolist() for _, yb in batches]
    assert first != second  # a fresh permutation every epoch
