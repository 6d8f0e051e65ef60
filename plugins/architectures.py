"""Built-in architectures (their networks are in automl_plugins.networks, imported when a trial builds one)."""

from orchestrator import Architecture, Choice, Float, Int, hookimpl

from . import deferred


@hookimpl
def register_architectures(register):
    register(_mlp_architecture())
    register(_cnn_architecture())
    recurrent_params = {
        "hidden_size": Int(16, 512, default=128, log=True, help="hidden units per direction"),
        "layers": Int(1, 3, default=1, help="stacked recurrent layers (dropout between them)"),
        "bidirectional": Choice((False, True), default=False, help="also read the sequence backwards"),
        "readout": Choice(("last", "mean"), default="last", help="final state, or the mean over time steps"),
    }
    for name, description in (
        ("rnn", "Elman recurrent network (tanh)"),
        ("lstm", "Long short-term memory network"),
        ("gru", "Gated recurrent unit network"),
    ):
        register(
            Architecture(
                name,
                f"{description} over sequences, its readout to a Linear head.",
                params=dict(recurrent_params),
                build=deferred("networks", f"build_{name}"),
                input_kinds=("sequence",),
                tasks=("classification", "regression"),
            )
        )
    register(_transformer_architecture())


def _mlp_architecture() -> Architecture:
    return Architecture(
        "mlp",
        "Feedforward network: Flatten, hidden Linear layers, Linear head.",
        params={
            "depth": Int(1, 4, default=2, help="number of hidden layers"),
            "width": Int(16, 1024, default=128, log=True, help="units per hidden layer"),
        },
        build=deferred("networks", "build_mlp"),
        input_kinds=("vector", "sequence", "image"),
        tasks=("classification", "regression"),
    )


def _cnn_architecture() -> Architecture:
    return Architecture(
        "cnn",
        "Convolutional network: 1-D over sequences, 2-D over images; global average pooling, Linear head.",
        params={
            "channels": Int(8, 256, default=32, log=True, help="channels of the first conv layer"),
            "growth": Float(1.0, 2.0, default=1.5, help="channel multiplier per conv layer (widths capped at 512)"),
            "kernel_size": Choice((3, 5, 7), default=5, help="kernel width (odd: 'same' padding)"),
            "depth": Int(1, 5, default=3, help="number of conv layers"),
            "pooling": Choice(
                ("max", "avg", "none"),
                default="max",
                help="stride-2 pool between conv layers while the maps allow it",
            ),
            "norm": Choice(
                ("batch", "none"),
                default="batch",
                help="normalisation in each conv block; a normalisation regularizer (batchnorm, layernorm) replaces it",
            ),
        },
        build=deferred("networks", "build_cnn"),
        input_kinds=("sequence", "image"),
        tasks=("classification", "regression"),
    )


def _transformer_architecture() -> Architecture:
    return Architecture(
        "transformer",
        "Transformer encoder over sequence steps (image rows), mean-pooled, Linear head.",
        params={
            "heads": Choice((1, 2, 4, 8), default=4, help="attention heads (d_model = heads x head_dim)"),
            "head_dim": Int(8, 64, default=16, log=True, help="features per attention head"),
            "patch": Int(1, 8, default=4, help="consecutive steps (image rows) per token"),
            "layers": Int(1, 6, default=2, help="encoder layers"),
            "ff_width": Int(32, 1024, default=128, log=True, help="units of each feed-forward block"),
            "positional": Choice(("learned", "sinusoidal"), default="learned", help="position encoding"),
        },
        build=deferred("networks", "build_transformer"),
        input_kinds=("sequence", "image"),
        tasks=("classification", "regression"),
    )
