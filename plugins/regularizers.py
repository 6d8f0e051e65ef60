"""Built-in regularizers, each acting where it belongs: structure, loss, optimizer or training."""

from orchestrator import Choice, Float, Int, Regularizer, RegularizerEffect, hookimpl

from . import deferred

# torch.nn code, imported when a trial builds it (see automl_plugins.layers)
weight_penalty = deferred("layers", "weight_penalty")
batch_norm = deferred("layers", "batch_norm")
layer_norm = deferred("layers", "layer_norm")


def build_l2(params) -> RegularizerEffect:
    if params["form"] == "decay":
        return RegularizerEffect(weight_decay=params["weight"])
    return RegularizerEffect(penalty=weight_penalty(params["weight"], 2))


@hookimpl
def register_regularizers(register):
    _register_model_regularizers(register)
    _register_training_regularizers(register)


def _register_model_regularizers(register) -> None:
    """Those that change the network (dropout, normalisation), its loss (a weight penalty) or the optimizer."""
    register(
        Regularizer(
            "dropout",
            "Dropout after each hidden layer.",
            params={"p": Float(0.0, 0.7, default=0.2, help="drop probability")},
            build=lambda params: RegularizerEffect(dropout=params["p"]),
        )
    )
    register(
        Regularizer(
            "l1",
            "L1 penalty on the weights, added to the loss (sparsity).",
            params={"weight": Float(1e-8, 1e-3, default=1e-5, log=True, help="penalty coefficient")},
            build=lambda params: RegularizerEffect(penalty=weight_penalty(params["weight"], 1)),
        )
    )
    register(
        Regularizer(
            "l2",
            "L2 on the weights: a loss penalty or the optimizer's weight decay.",
            params={
                "weight": Float(1e-7, 1e-1, default=1e-4, log=True, help="coefficient"),
                "form": Choice(
                    ("penalty", "decay"), default="penalty", help="added to the loss, or weight decay in the optimizer"
                ),
            },
            build=build_l2,
        )
    )
    register(
        Regularizer(
            "batchnorm",
            "Batch normalisation after each hidden layer.",
            build=lambda params: RegularizerEffect(norm=batch_norm),
        )
    )
    register(
        Regularizer(
            "layernorm",
            "Layer normalisation after each hidden layer.",
            build=lambda params: RegularizerEffect(norm=layer_norm),
        )
    )


def _register_training_regularizers(register) -> None:
    """Those that change the training loop: when it stops, how large a gradient step may be."""
    register(
        Regularizer(
            "early_stopping",
            "Stop when the objective has not improved for `patience` epochs.",
            params={"patience": Int(1, 50, default=5, help="epochs without improvement")},
            build=lambda params: RegularizerEffect(early_stopping_patience=params["patience"]),
        )
    )
    register(
        Regularizer(
            "grad_clip",
            "Clip the gradient norm before each optimizer step.",
            params={"max_norm": Float(0.01, 100.0, default=1.0, log=True, help="largest gradient norm")},
            build=lambda params: RegularizerEffect(grad_clip=params["max_norm"]),
        )
    )
