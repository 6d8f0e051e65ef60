"""Built-in architectures."""

from torch import nn

from orchestrator import Architecture, BuildContext, Int, hookimpl


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


@hookimpl
def register_architectures(register):
    register(Architecture(
        "mlp", "Feedforward network: Flatten, hidden Linear layers, Linear head.",
        params={
            "depth": Int(1, 4, default=2, help="number of hidden layers"),
            "width": Int(16, 1024, default=128, log=True, help="units per hidden layer"),
        },
        build=build_mlp,
        input_kinds=("vector", "sequence", "image"),
        tasks=("classification", "regression"),
    ))
