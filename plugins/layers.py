"""The torch side of the built-in losses and regularizers: loss modules, weight penalties and normalisation
layers (imported when a trial builds them, never by `automl plugins` or `automl validate`)."""

import torch
from torch import nn
from torch.nn import functional as F


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


def build_loss(params, ctx, name: str) -> nn.Module:
    """The built-in loss `name` with its parameters."""
    if name == "cross_entropy":
        return nn.CrossEntropyLoss()
    if name == "label_smoothing":
        return nn.CrossEntropyLoss(label_smoothing=params["smoothing"])
    if name == "nll":
        return LogSoftmaxNLL()
    if name == "mse":
        return nn.MSELoss()
    if name == "mae":
        return ShapedRegressionLoss(nn.L1Loss())
    if name == "huber":
        return ShapedRegressionLoss(nn.HuberLoss(delta=params["delta"]))
    raise KeyError(f"no built-in loss {name!r}")


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
