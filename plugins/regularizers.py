"""Built-in regularizers."""

import torch

from orchestrator import Float, Regularizer, RegularizerEffect, hookimpl


def l2_penalty(weight: float):
    """A loss term `weight * sum of squared weights` (biases and norm parameters excluded)."""

    def penalty(model: torch.nn.Module) -> torch.Tensor:
        squares = [p.pow(2).sum() for p in model.parameters() if p.ndim > 1]
        return weight * torch.stack(squares).sum() if squares else torch.zeros(())

    return penalty


@hookimpl
def register_regularizers(register):
    register(Regularizer("dropout", "Dropout after each hidden layer.",
                         params={"p": Float(0.0, 0.7, default=0.2, help="drop probability")},
                         build=lambda params: RegularizerEffect(dropout=params["p"])))
    register(Regularizer("l2", "L2 penalty on the weights, added to the loss.",
                         params={"weight": Float(1e-7, 1e-2, default=1e-4, log=True, help="penalty coefficient")},
                         build=lambda params: RegularizerEffect(penalty=l2_penalty(params["weight"]))))
