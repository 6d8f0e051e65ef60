"""Built-in losses.

Classification losses take logits (N, classes) and int64 class indices (N,); regression losses take
outputs (N, outputs) and float targets of the same shape (a flat (N,) target is viewed as the outputs).
"""

import torch
from torch import nn
from torch.nn import functional as F

from orchestrator import Float, Loss, hookimpl


class LogSoftmaxNLL(nn.Module):
    """Negative log-likelihood of the target class under log-softmax of the logits."""

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.nll_loss(F.log_softmax(outputs, dim=1), targets)


class ShapedRegressionLoss(nn.Module):
    """A regression loss with the targets viewed as the outputs' shape (no silent broadcasting)."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(outputs, targets.view_as(outputs))


@hookimpl
def register_losses(register):
    register(Loss("cross_entropy", "Softmax cross-entropy over class logits.",
                  build=lambda params, ctx: nn.CrossEntropyLoss(), tasks=("classification",)))
    register(Loss("label_smoothing", "Cross-entropy against smoothed one-hot targets.",
                  params={"smoothing": Float(0.0, 0.3, default=0.1, help="probability mass spread over all classes")},
                  build=lambda params, ctx: nn.CrossEntropyLoss(label_smoothing=params["smoothing"]),
                  tasks=("classification",)))
    register(Loss("nll", "Negative log-likelihood of log-softmax over class logits.",
                  build=lambda params, ctx: LogSoftmaxNLL(), tasks=("classification",)))
    register(Loss("mse", "Mean squared error.", build=lambda params, ctx: nn.MSELoss(), tasks=("regression",)))
    register(Loss("mae", "Mean absolute error (L1): robust to outlying targets.",
                  build=lambda params, ctx: ShapedRegressionLoss(nn.L1Loss()), tasks=("regression",)))
    register(Loss("huber", "Huber: squared error within `delta` of the target, absolute error beyond.",
                  params={"delta": Float(0.01, 10.0, default=1.0, log=True,
                                         help="error where it turns linear, in the targets' units as trained "
                                              "(the built-in data sets standardise them)")},
                  build=lambda params, ctx: ShapedRegressionLoss(nn.HuberLoss(delta=params["delta"])),
                  tasks=("regression",)))
