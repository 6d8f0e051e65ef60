"""Built-in activations."""

from torch import nn

from orchestrator import Activation, hookimpl


@hookimpl
def register_activations(register):
    register(Activation("relu", "Rectified linear unit max(0, x).", build=lambda params: nn.ReLU()))
    register(Activation("sigmoid", "Logistic sigmoid 1 / (1 + e^-x).", build=lambda params: nn.Sigmoid()))
