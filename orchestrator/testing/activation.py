"""The conformance checks of activations (`ActivationConformance`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from orchestrator import (
    Activation,
)
from orchestrator.testing.common import (
    BATCH_SIZE,
    ComponentConformance,
    case,
    default_params,
    expect,
    finite,
    gradient,
    sample_input,
)


class ActivationConformance(ComponentConformance):
    """An Activation builds a fresh nn.Module per call that keeps its input's shape, gives finite
    values and gradients, is non-linear (opt out: `nonlinear = False`), respects its declared ranges
    and is deterministic under a seed."""

    kind = "activation"
    spec_type = Activation
    nonlinear: ClassVar[bool] = True
    shapes: ClassVar[tuple[tuple[int, ...], ...]] = ((BATCH_SIZE, 5), (2, 3, 4, 4), (2, 7, 3))

    def build(self, spec: Activation, params: Mapping[str, Any]) -> nn.Module:
        torch.manual_seed(self.seed)
        module = spec.build(dict(params))
        expect(isinstance(module, nn.Module), f"build returned {type(module).__name__}, not an nn.Module")
        return module

    def check_works(self, spec: Activation, params: Mapping[str, Any]) -> None:
        module = self.build(spec, params)
        for shape in self.shapes:
            x = (3 * sample_input(shape[1:], n=shape[0])).requires_grad_()
            y = module(x)
            expect(
                isinstance(y, torch.Tensor) and tuple(y.shape) == shape,
                f"output shape {tuple(getattr(y, 'shape', ()))} differs from the input's {shape}",
            )
            finite(y, f"output on {shape}")
            y.sum().backward()
            grad = gradient(x, f"input on {shape}")
            expect(grad.abs().sum() > 0, f"the gradient through it is zero everywhere on {shape}")
        big = torch.tensor([-1e4, -50.0, 0.0, 50.0, 1e4])
        finite(module(big), "output on large inputs")

    def test_works_for_every_shape(self, spec: Activation) -> None:
        self.check_at_defaults(spec, self.check_works)

    def test_returns_a_fresh_module_per_call(self, spec: Activation) -> None:
        """build is called once per layer: layers must not share one module (or its parameters)."""
        params = default_params(spec.params)
        with case(spec, "defaults"):
            first, second = self.build(spec, params), self.build(spec, params)
            expect(first is not second, "build returned the same module twice (layers would share it)")
            shared = {id(p) for p in first.parameters()} & {id(p) for p in second.parameters()}
            expect(not shared, "two built modules share parameters")

    def test_is_nonlinear(self, spec: Activation) -> None:
        if not self.nonlinear:
            pytest.skip("opted out: nonlinear = False")
        with case(spec, "defaults"):
            module = self.build(spec, default_params(spec.params)).eval()
            x, y = 3 * sample_input((64,), n=1, seed=1), 3 * sample_input((64,), n=1, seed=2)
            with torch.no_grad():
                expect(
                    not torch.allclose(module(x + y), module(x) + module(y), atol=1e-4),
                    "f(x + y) == f(x) + f(y): the activation is linear",
                )

    def test_respects_declared_ranges(self, spec: Activation) -> None:
        self.check_range_cases(spec, self.check_works)

    def test_deterministic_under_a_seed(self, spec: Activation) -> None:
        with case(spec, "defaults"):
            x = 3 * sample_input((5,))
            outputs = []
            for _ in range(2):
                module = self.build(spec, default_params(spec.params))
                torch.manual_seed(self.seed)
                outputs.append(module(x))
            expect(torch.equal(outputs[0], outputs[1]), "outputs differ under the same seed")
