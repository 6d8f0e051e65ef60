"""Built-in optimizers (torch.optim, imported when one is built)."""

from orchestrator import Choice, Float, Optimizer, hookimpl


def build_sgd(params, parameters, ctx):
    """Mini-batch SGD with (optionally Nesterov) momentum."""
    import torch

    return torch.optim.SGD(
        parameters,
        lr=params["lr"],
        momentum=params["momentum"],
        nesterov=params["nesterov"] and params["momentum"] > 0,
        weight_decay=ctx.weight_decay,
    )


def build_adam(params, parameters, ctx):
    """Adam with the chosen betas (weight decay coupled into the gradient)."""
    import torch

    return torch.optim.Adam(
        parameters, lr=params["lr"], betas=(params["beta1"], params["beta2"]), weight_decay=ctx.weight_decay
    )


def build_adamw(params, parameters, ctx):
    """AdamW: Adam with decoupled weight decay (its own `weight_decay` plus any regularizer's)."""
    import torch

    return torch.optim.AdamW(
        parameters,
        lr=params["lr"],
        betas=(params["beta1"], params["beta2"]),
        weight_decay=params["weight_decay"] + ctx.weight_decay,
    )


def build_rmsprop(params, parameters, ctx):
    """RMSprop with momentum."""
    import torch

    return torch.optim.RMSprop(
        parameters, lr=params["lr"], alpha=params["alpha"], momentum=params["momentum"], weight_decay=ctx.weight_decay
    )


def adam_betas():
    return {
        "beta1": Float(0.5, 0.99, default=0.9, help="first-moment decay"),
        "beta2": Float(0.9, 0.9999, default=0.999, help="second-moment decay"),
    }


def _adam_params() -> dict:
    """What Adam and AdamW both search: the learning rate and the moment decays."""
    return {"lr": Float(1e-5, 1e-1, default=1e-3, log=True, help="learning rate"), **adam_betas()}


@hookimpl
def register_optimizers(register):
    register(
        Optimizer(
            "sgd",
            "Stochastic gradient descent on mini-batches, with momentum.",
            params={
                "lr": Float(1e-4, 1.0, default=0.05, log=True, help="learning rate"),
                "momentum": Float(0.0, 0.99, default=0.9, help="momentum factor"),
                "nesterov": Choice((True, False), default=True, help="Nesterov momentum"),
            },
            build=build_sgd,
        )
    )
    register(Optimizer("adam", "Adam: adaptive moment estimation.", params=_adam_params(), build=build_adam))
    register(
        Optimizer(
            "adamw",
            "AdamW: Adam with decoupled weight decay.",
            params={**_adam_params(), "weight_decay": Float(0.0, 0.3, default=0.01, help="decoupled weight decay")},
            build=build_adamw,
        )
    )
    register(
        Optimizer(
            "rmsprop",
            "RMSprop: gradients scaled by a running RMS.",
            params={
                "lr": Float(1e-5, 1e-1, default=1e-3, log=True, help="learning rate"),
                "alpha": Float(0.8, 0.999, default=0.99, help="smoothing constant"),
                "momentum": Float(0.0, 0.99, default=0.0, help="momentum factor"),
            },
            build=build_rmsprop,
        )
    )
