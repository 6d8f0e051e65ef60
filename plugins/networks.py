"""The torch side of the built-in architectures: the networks each one builds (imported when a trial builds
one, never by `automl plugins` or `automl validate`)."""

import math

import torch
from torch import nn

from orchestrator import BuildContext

from .layers import batch_norm


def build_mlp(params, ctx: BuildContext) -> nn.Module:
    """Flatten, then `depth` hidden Linear layers of `width` units, each with the chosen
    normalisation, activation and dropout, then a Linear head."""
    in_features = 1
    for size in ctx.input_shape:
        in_features *= size
    layers: list[nn.Module] = [nn.Flatten()]
    for _ in range(params["depth"]):
        layers.append(nn.Linear(in_features, params["width"]))
        if ctx.norm is not None:
            layers.append(ctx.norm(params["width"], "vector"))
        layers.append(ctx.activation())
        if ctx.dropout > 0:
            layers.append(nn.Dropout(ctx.dropout))
        in_features = params["width"]
    layers.append(nn.Linear(in_features, ctx.output_size))
    return nn.Sequential(*layers)


class SequenceToChannels(nn.Module):
    """(N, L, C) sequences to (N, C, L) maps for 1-D convolutions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


class GlobalAveragePool(nn.Module):
    """(N, C, *positions) to (N, C): the mean over all positions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).mean(-1)


MAX_CHANNELS = 512  # where `growth` stops: 5 layers of 256 x 2 ** i channels would hold ~400M weights
CONV = {1: nn.Conv1d, 2: nn.Conv2d}
POOL = {("max", 1): nn.MaxPool1d, ("max", 2): nn.MaxPool2d, ("avg", 1): nn.AvgPool1d, ("avg", 2): nn.AvgPool2d}


def build_cnn(params, ctx: BuildContext) -> nn.Module:
    """`depth` conv blocks (conv, norm, activation, dropout; a stride-2 pool between blocks while
    the maps allow it), global average pooling, Linear head; 1-D over sequences, 2-D over images.
    The norm is the regularizers' (`ctx.norm`) if they chose one, else the network's own `norm`: batch
    norm by default (a trial logged before `norm` existed has none and trained without)."""
    if ctx.input_kind == "sequence":
        length, channels = ctx.input_shape
        dims, size, layers = 1, [length], [SequenceToChannels()]
    else:
        channels, *size = ctx.input_shape
        dims, layers = 2, []
    kernel = params["kernel_size"]
    norm = ctx.norm or (batch_norm if params.get("norm", "none") == "batch" else None)
    for i in range(params["depth"]):
        width = min(round(params["channels"] * params["growth"] ** i), MAX_CHANNELS)
        layers.append(CONV[dims](channels, width, kernel, padding=kernel // 2))
        if norm is not None:
            layers.append(norm(width, f"conv{dims}d"))
        layers.append(ctx.activation())
        if ctx.dropout > 0:
            layers.append(nn.Dropout(ctx.dropout))
        if params["pooling"] != "none" and i < params["depth"] - 1 and min(size) >= 2:
            layers.append(POOL[params["pooling"], dims](2))
            size = [s // 2 for s in size]
        channels = width
    layers += [GlobalAveragePool(), nn.Linear(channels, ctx.output_size)]
    return nn.Sequential(*layers)


class RecurrentNet(nn.Module):
    """A recurrent layer stack over (N, L, F) sequences, read out at the end or averaged over time."""

    def __init__(self, recurrent: nn.RNNBase, readout: str, head: nn.Module) -> None:
        super().__init__()
        self.recurrent, self.readout, self.head = recurrent, readout, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.recurrent(x)
        if self.readout == "mean":
            return self.head(outputs.mean(1))
        # Each direction's final state: the forward one at the last step, the backward one at the first.
        hidden = self.recurrent.hidden_size
        return self.head(torch.cat([outputs[:, -1, :hidden], outputs[:, 0, hidden:]], dim=1))


def recurrent_builder(rnn_class: type[nn.RNNBase]):
    """A build function for one torch recurrent class (nn.RNN, nn.LSTM or nn.GRU)."""

    def build(params, ctx: BuildContext) -> nn.Module:
        """The recurrent stack (its gates keep their own non-linearities), then a readout head: a
        hidden Linear layer with the chosen norm, activation and dropout, and a Linear output."""
        recurrent = rnn_class(
            ctx.input_shape[-1],
            params["hidden_size"],
            num_layers=params["layers"],
            batch_first=True,
            bidirectional=params["bidirectional"],
            dropout=ctx.dropout if params["layers"] > 1 else 0.0,
        )
        features = params["hidden_size"] * (2 if params["bidirectional"] else 1)
        head: list[nn.Module] = [nn.Linear(features, features)]
        if ctx.norm is not None:
            head.append(ctx.norm(features, "vector"))
        head.append(ctx.activation())
        if ctx.dropout > 0:
            head.append(nn.Dropout(ctx.dropout))
        head.append(nn.Linear(features, ctx.output_size))
        return RecurrentNet(recurrent, params["readout"], nn.Sequential(*head))

    return build


def sinusoidal_positions(tokens: int, d_model: int) -> torch.Tensor:
    """Vaswani et al.'s fixed (tokens, d_model) encoding: sin on even features, cos on odd ones."""
    position = torch.arange(tokens, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(tokens, d_model + d_model % 2)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table[:, :d_model]


class TransformerNet(nn.Module):
    """Tokens projected to d_model, plus positions, through an encoder, mean-pooled, Linear head."""

    def __init__(
        self, tokens: int, features: int, patch: int, d_model: int, positional: str, encoder: nn.Module, head: nn.Module
    ) -> None:
        super().__init__()
        self.patch = patch
        tokens = -(-tokens // patch)
        self.embed = nn.Linear(features * patch, d_model)
        if positional == "learned":
            self.positions = nn.Parameter(0.02 * torch.randn(tokens, d_model))
        else:
            self.register_buffer("positions", sinusoidal_positions(tokens, d_model))
        self.encoder, self.head = encoder, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:  # an image (N, C, H, W): each row is a token of C * W features
            x = x.permute(0, 2, 1, 3).flatten(2)
        x = nn.functional.pad(x, (0, 0, 0, -x.shape[1] % self.patch))  # zeros to a whole number of patches
        x = x.reshape(x.shape[0], -1, self.patch * x.shape[2])
        return self.head(self.encoder(self.embed(x) + self.positions).mean(1))


def build_transformer(params, ctx: BuildContext) -> nn.Module:
    """A pre-norm Transformer encoder of `layers` layers over the sequence's steps (an image's rows)."""
    if ctx.input_kind == "image":
        channels, tokens, width = ctx.input_shape
        features = channels * width
    else:
        tokens, features = ctx.input_shape
    d_model = params["heads"] * params["head_dim"]
    layer = nn.TransformerEncoderLayer(
        d_model,
        params["heads"],
        params["ff_width"],
        dropout=ctx.dropout,
        activation=ctx.activation(),
        batch_first=True,
        norm_first=True,
    )
    final_norm = ctx.norm(d_model, "sequence") if ctx.norm is not None else None
    encoder = nn.TransformerEncoder(layer, params["layers"], norm=final_norm, enable_nested_tensor=False)
    return TransformerNet(
        tokens, features, params["patch"], d_model, params["positional"], encoder, nn.Linear(d_model, ctx.output_size)
    )


build_rnn = recurrent_builder(nn.RNN)
build_lstm = recurrent_builder(nn.LSTM)
build_gru = recurrent_builder(nn.GRU)
