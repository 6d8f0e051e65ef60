"""Built-in regularizers, each acting where it belongs: structure, loss, optimizer or training."""

import torch
from torch import nn

from orchestrator import Choice, Float, Int, Regularizer, RegularizerEffect, hookimpl


def weight_penalty(weight: float, power: int):
    """A loss term `weight * sum |w|^power` over weight matrices (biases and norm parameters excluded)."""

    def penalty(model: nn.Module) -> torch.Tensor:
        terms = [p.abs().sum() if power == 1 else p.pow(2).sum() for p in model.parameters() if p.ndim > 1]
        return weight * torch.stack(terms).sum() if terms else torch.zeros(())

    return penalty



class ChannelsLast(nn.Module):
    """Applies a per-feature layer to (N, L, F) sequences by moving features to dim 1 and back."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x.transpose(1, 2)).transpose(1, 2)


def batch_norm(features: int, layout: str) -> nn.Module:
    """BatchNorm over the batch (and positions), per feature or channel."""
    if layout == "conv2d":
        return nn.BatchNorm2d(features)
    if layout == "sequence":
        return ChannelsLast(nn.BatchNorm1d(features))
    return nn.BatchNorm1d(features)


def layer_norm(features: int, layout: str) -> nn.Module:
    """LayerNorm over each sample's features (over channels and positions for conv maps)."""
    if layout in ("conv1d", "conv2d"):
        return nn.GroupNorm(1, features)
    return nn.LayerNorm(features)


def build_l2(params) -> RegularizerEffect:
    if params["form"] == "decay":
        return RegularizerEffect(weight_decay=params["weight"])
    return RegularizerEffect(penalty=weight_penalty(params["weight"], 2))


@hookimpl
def register_regularizers(register):
    register(Regularizer("dropout", "Dropout after each hidden layer.",
                         params={"p": Float(0.0, 0.7, default=0.2, help="drop probability")},
                         build=lambda params: RegularizerEffect(dropout=params["p"])))
    register(Regularizer("l1", "L1 penalty on the weights, added to the loss (sparsity).",
                         params={"weight": Float(1e-8, 1e-3, default=1e-5, log=True, help="penalty coefficient")},
                         build=lambda params: RegularizerEffect(penalty=weight_penalty(params["weight"], 1))))
    register(Regularizer("l2", "L2 on the weights: a loss penalty or the optimizer's weight decay.",
                         params={"weight": Float(1e-7, 1e-1, default=1e-4, log=True, help="coefficient"),
                                 "form": Choice(("penalty", "decay"), default="penalty",
                                                help="added to the loss, or weight decay in the optimizer")},
                         build=build_l2))
    register(Regularizer("batchnorm", "Batch normalisation after each hidden layer.",
                         build=lambda params: RegularizerEffect(norm=batch_norm)))
    register(Regularizer("layernorm", "Layer normalisation after each hidden layer.",
                         build=lambda params: RegularizerEffect(norm=layer_norm)))
    register(Regularizer("early_stopping", "Stop when the objective has not improved for `patience` epochs.",
                         params={"patience": Int(1, 50, default=5, help="epochs without improvement")},
                         build=lambda params: RegularizerEffect(early_stopping_patience=params["patience"])))
    register(Regularizer("grad_clip", "Clip the gradient norm before each optimizer step.",
                         params={"max_norm": Float(0.01, 100.0, default=1.0, log=True, help="largest gradient norm")},
                         build=lambda params: RegularizerEffect(grad_clip=params["max_norm"])))
