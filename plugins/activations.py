"""Built-in activations (torch.nn modules, imported when one is built)."""

from orchestrator import Activation, Float, hookimpl


def _nn():
    from torch import nn

    return nn


@hookimpl
def register_activations(register):
    register(Activation("relu", "Rectified linear unit max(0, x).", build=lambda params: _nn().ReLU()))
    register(Activation("sigmoid", "Logistic sigmoid 1 / (1 + e^-x).", build=lambda params: _nn().Sigmoid()))
    register(Activation("tanh", "Hyperbolic tangent, in (-1, 1).", build=lambda params: _nn().Tanh()))
    register(
        Activation("gelu", "Gaussian error linear unit x * Phi(x) (exact form).", build=lambda params: _nn().GELU())
    )
    register(
        Activation(
            "leaky_relu",
            "Leaky ReLU: x for x >= 0, negative_slope * x below.",
            params={"negative_slope": Float(0.001, 0.5, default=0.01, log=True, help="slope for negative inputs")},
            build=lambda params: _nn().LeakyReLU(negative_slope=params["negative_slope"]),
        )
    )
    register(Activation("silu", "SiLU (swish) x * sigmoid(x).", build=lambda params: _nn().SiLU()))
    register(
        Activation(
            "elu",
            "Exponential linear unit: x for x > 0, alpha * (e^x - 1) below.",
            params={
                "alpha": Float(0.1, 3.0, default=1.0, help="value approached for very negative inputs (as -alpha)")
            },
            build=lambda params: _nn().ELU(alpha=params["alpha"]),
        )
    )
