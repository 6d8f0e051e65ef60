"""The conformance checks of optimizers (`OptimizerConformance`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from orchestrator import (
    Optimizer,
)
from orchestrator.testing.common import ComponentConformance, case, default_params, expect, make_context, total


class OptimizerConformance(ComponentConformance):
    """An Optimizer builds a torch.optim.Optimizer over exactly the parameters it is given (as a
    generator, like `model.parameters()`), whose step reduces a simple quadratic at its defaults and
    at every range end, that honours ctx.weight_decay (opt out: `uses_weight_decay = False`) and is
    deterministic."""

    kind = "optimizer"
    spec_type = Optimizer
    uses_weight_decay: ClassVar[bool] = True
    curvature: ClassVar[float] = 0.1  # loss = curvature / 2 * |w|^2: gentle enough for lr up to ~10

    @staticmethod
    def parameters() -> list[nn.Parameter]:
        return [nn.Parameter(torch.tensor([1.0, -2.0, 3.0, -1.5])), nn.Parameter(torch.tensor([[0.5, -0.5]]))]

    def build(
        self, spec: Optimizer, params: Mapping[str, Any], parameters: list[nn.Parameter], weight_decay: float = 0.0
    ) -> torch.optim.Optimizer:
        torch.manual_seed(self.seed)
        ctx = make_context("vector", "classification", weight_decay=weight_decay)
        optimizer = spec.build(dict(params), (p for p in parameters), ctx)
        expect(
            isinstance(optimizer, torch.optim.Optimizer),
            f"build returned {type(optimizer).__name__}, not a torch.optim.Optimizer",
        )
        return optimizer

    def quadratic(self, parameters: list[nn.Parameter]) -> torch.Tensor:
        return total(0.5 * self.curvature * p.pow(2).sum() for p in parameters)

    def steps(
        self,
        optimizer: torch.optim.Optimizer,
        parameters: list[nn.Parameter],
        loss_fn: Callable[[list[nn.Parameter]], torch.Tensor],
        n: int = 1,
    ) -> None:
        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = loss_fn(parameters)
            loss.backward()
            return loss

        for _ in range(n):
            optimizer.step(closure)  # type: ignore[arg-type]  # torch's stubs say float; its optimizers take a tensor

    def check_works(self, spec: Optimizer, params: Mapping[str, Any]) -> None:
        parameters = self.parameters()
        optimizer = self.build(spec, params, parameters)
        held = [p for group in optimizer.param_groups for p in group["params"]]
        expect(
            len(held) == len(parameters) and {id(p) for p in held} == {id(p) for p in parameters},
            f"the optimizer holds {len(held)} parameters, not exactly the {len(parameters)} it was given",
        )
        for group in optimizer.param_groups:
            lr = group.get("lr")
            expect(
                isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0,
                f"each param group needs a finite lr > 0 (schedules scale it), got {lr!r}",
            )
        with torch.no_grad():
            before = float(self.quadratic(parameters))
        self.steps(optimizer, parameters, self.quadratic)
        with torch.no_grad():
            after = float(self.quadratic(parameters))
        expect(
            math.isfinite(after) and after < before,
            f"one step did not reduce the quadratic loss: {before:.6g} -> {after:.6g}",
        )

    def test_step_reduces_a_quadratic(self, spec: Optimizer) -> None:
        self.check_at_defaults(spec, self.check_works)

    def test_respects_declared_ranges(self, spec: Optimizer) -> None:
        self.check_range_cases(spec, self.check_works)

    def test_honours_the_context_weight_decay(self, spec: Optimizer) -> None:
        """With a zero loss gradient, ctx.weight_decay = 0.1 shrinks the weights more than 0.0."""
        if not self.uses_weight_decay:
            pytest.skip("opted out: uses_weight_decay = False")
        with case(spec, "defaults, weight_decay 0.0 vs 0.1"):
            norms = []
            for weight_decay in (0.0, 0.1):
                parameters = self.parameters()
                optimizer = self.build(spec, default_params(spec.params), parameters, weight_decay)
                self.steps(optimizer, parameters, lambda ps: total((p * 0).sum() for p in ps), n=3)
                norms.append(float(sum(p.detach().pow(2).sum() for p in parameters)))
            expect(
                norms[1] < norms[0],
                f"ctx.weight_decay is ignored: |w|^2 is {norms[1]:.8g} with 0.1 and {norms[0]:.8g} with 0.0",
            )

    def test_deterministic_under_a_seed(self, spec: Optimizer) -> None:
        with case(spec, "defaults"):
            results = []
            for _ in range(2):
                parameters = self.parameters()
                self.steps(self.build(spec, default_params(spec.params), parameters), parameters, self.quadratic, n=3)
                results.append([p.detach().clone() for p in parameters])
            expect(all(torch.equal(a, b) for a, b in zip(*results)), "three steps give different weights")
