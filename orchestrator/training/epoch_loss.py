"""The running mean of a training loss over one epoch, kept on the device (no per-step host sync)."""

from __future__ import annotations

import torch


class EpochLoss:
    """Sum of detached step losses and their count; read once per epoch with `mean()`."""

    def __init__(self) -> None:
        self.reset()

    def reset(self, device: torch.device | str = "cpu") -> None:
        self.total = torch.zeros((), device=device)
        self.steps = 0

    def add(self, loss: torch.Tensor) -> None:
        self.total += loss.detach()
        self.steps += 1

    def mean(self) -> float:
        return float(self.total) / max(self.steps, 1)
