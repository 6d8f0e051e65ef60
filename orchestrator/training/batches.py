"""Mini-batches by index over tensors already on the training device (no per-sample DataLoader)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch


def batch_starts(size: int, batch_size: int) -> list[int]:
    """Where each mini-batch of an epoch starts. A lone trailing sample joins the previous batch: batch norm
    cannot train on one row."""
    starts = list(range(0, size, batch_size))
    if len(starts) > 1 and size - starts[-1] == 1:
        starts.pop()
    return starts


class IndexBatches:
    """An epoch-wise iterable of `(x[idx], y[idx])` over a fresh seeded permutation each epoch."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> None:
        self.x, self.y = x, y
        self.batch_size = max(1, min(batch_size, len(x)))
        self.generator = torch.Generator().manual_seed(seed)

    def _starts(self) -> list[int]:
        return batch_starts(len(self.x), self.batch_size)

    def __len__(self) -> int:
        return len(self._starts())

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.x), generator=self.generator).to(self.x.device)
        starts = self._starts()
        for start, end in zip(starts, starts[1:] + [len(order)]):
            idx = order[start:end]
            yield self.x[idx], self.y[idx]


def predict(model: torch.nn.Module, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Outputs of `model` on `x` in eval mode, in chunks, without gradients."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        outputs = torch.cat([model(x[i : i + chunk]) for i in range(0, len(x), chunk)])
    model.train(was_training)
    return outputs


def predict_batches(
    model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs of `model` (eval mode, no gradients) over streamed `(inputs, targets)` batches, and the targets,
    each concatenated on `device`."""
    was_training = model.training
    model.eval()
    outputs, targets = [], []
    with torch.no_grad():
        for x, y in batches:
            outputs.append(model(x.to(device, non_blocking=True)))
            targets.append(y.to(device, non_blocking=True))
    model.train(was_training)
    return torch.cat(outputs), torch.cat(targets)
