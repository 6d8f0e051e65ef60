"""Built-in activations."""

from torch import nn

from orchestrator import Activation, Float, hookimpl


@hookimpl
def register_activations(register):
    register(Activation("relu", "Rectified linear unit max(0, x).", build=lambda params: nn.ReLU()))
    register(Activation("sigmoid", "Logistic sigmoid 1 / (1 + e^-x).", build=lambda params: nn.Sigmoid()))
    register(Activation("tanh", "Hyperbolic tangent, in (-1, 1).", build=lambda params: nn.Tanh()))
    register(Activation("gelu", "Gaussian error linear unit x * Phi(x) (exact form).", build=lambda params: nn.GELU()))
    register(Activation("leaky_relu", "Leaky ReLU: x for x >= 0, negative_slope * x below.",
                        params={"negative_slope": Float(0.001, 0.5, default=0.01, log=True,
                                                        help="slope for negative inputs")},
                        build=lambda params: nn.LeakyReLU(negative_slope=params["negative_slope"])))
    register(Activation("silu", "SiLU (swish) x * sigmoid(x).", build=lambda params: nn.SiLU()))
    register(Activation("elu", "Exponential linear unit: x for x > 0, alpha * (e^x - 1) below.",
                        params={"alpha": Float(0.1, 3.0, default=1.0, help="value approached for very negative inputs "
                                                                           "(as -alpha)")},
                        build=lambda params: nn.ELU(alpha=params["alpha"])))
