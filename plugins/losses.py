"""Built-in losses.

Classification losses take logits (N, classes) and int64 class indices (N,); regression losses take
outputs (N, outputs) and float targets of the same shape (a flat (N,) target is viewed as the outputs).
"""

from orchestrator import Float, Loss, hookimpl

from . import deferred

build_loss = deferred("layers", "build_loss")  # torch.nn, imported when a trial builds its loss


def loss(name: str):
    return lambda params, ctx: build_loss(params, ctx, name)


@hookimpl
def register_losses(register):
    register(
        Loss(
            "cross_entropy",
            "Softmax cross-entropy over class logits.",
            build=loss("cross_entropy"),
            tasks=("classification",),
        )
    )
    register(
        Loss(
            "label_smoothing",
            "Cross-entropy against smoothed one-hot targets.",
            params={"smoothing": Float(0.0, 0.3, default=0.1, help="probability mass spread over all classes")},
            build=loss("label_smoothing"),
            tasks=("classification",),
        )
    )
    register(
        Loss(
            "nll",
            "Negative log-likelihood of log-softmax over class logits.",
            build=loss("nll"),
            tasks=("classification",),
        )
    )
    register(Loss("mse", "Mean squared error.", build=loss("mse"), tasks=("regression",)))
    register(
        Loss("mae", "Mean absolute error (L1): robust to outlying targets.", build=loss("mae"), tasks=("regression",))
    )
    register(
        Loss(
            "huber",
            "Huber: squared error within `delta` of the target, absolute error beyond.",
            params={
                "delta": Float(
                    0.01,
                    10.0,
                    default=1.0,
                    log=True,
                    help="error where it turns linear, in the targets' units as trained "
                    "(the built-in data sets standardise them)",
                )
            },
            build=loss("huber"),
            tasks=("regression",),
        )
    )
