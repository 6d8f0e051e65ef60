"""Built-in losses."""

from torch import nn

from orchestrator import Float, Loss, hookimpl


@hookimpl
def register_losses(register):
    register(Loss("cross_entropy", "Softmax cross-entropy over class logits.",
                  build=lambda params, ctx: nn.CrossEntropyLoss(), tasks=("classification",)))
    register(Loss("label_smoothing", "Cross-entropy against smoothed one-hot targets.",
                  params={"smoothing": Float(0.0, 0.3, default=0.1, help="probability mass spread over all classes")},
                  build=lambda params, ctx: nn.CrossEntropyLoss(label_smoothing=params["smoothing"]),
                  tasks=("classification",)))
    register(Loss("mse", "Mean squared error.", build=lambda params, ctx: nn.MSELoss(), tasks=("regression",)))
