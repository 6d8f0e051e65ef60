"""The conformance checks of losses (`LossConformance`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from orchestrator import (
    AdversarialLoss,
    Loss,
)
from orchestrator.api.components import TASKS
from orchestrator.testing.common import (
    OUTPUT_SIZES,
    ComponentConformance,
    case,
    default_params,
    expect,
    finite,
    gradient,
    make_context,
    range_cases,
    total,
)


class LossConformance(ComponentConformance):
    """A Loss, for every declared task, gives a finite scalar that backpropagates to the outputs,
    is lower for correct than for wrong predictions (opt out: `prefers_correct = False`), respects
    its declared ranges and is deterministic. For `generative` it builds an AdversarialLoss."""

    kind = "loss"
    spec_type = Loss
    prefers_correct: ClassVar[bool] = True
    n: ClassVar[int] = 6

    def build(self, spec: Loss, params: Mapping[str, Any], task: str) -> Any:
        torch.manual_seed(self.seed)
        fn = spec.build(dict(params), make_context("vector", task))
        if task == "generative":
            expect(
                isinstance(fn, AdversarialLoss),
                f"for the generative task build must return an AdversarialLoss, got {type(fn).__name__}",
            )
            expect(callable(fn.discriminator) and callable(fn.generator), "AdversarialLoss parts must be callable")
        else:
            expect(callable(fn), f"build returned {type(fn).__name__}, which is not callable")
        return fn

    def batch(self, task: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(outputs, targets) as the engine passes them: logits (N, K) and int64 classes (N,);
        regression outputs (N, 1) and float targets (N, 1); generative: real and fake logits (N, 1)."""
        g = torch.Generator().manual_seed(seed)
        if task == "classification":
            k = OUTPUT_SIZES["classification"]
            return torch.randn(self.n, k, generator=g), torch.arange(self.n) % k
        size = OUTPUT_SIZES.get(task, 1)
        return torch.randn(self.n, size, generator=g), torch.randn(self.n, size, generator=g)

    def evaluate(
        self, fn: Any, task: str, outputs: torch.Tensor, targets: torch.Tensor
    ) -> list[tuple[str, torch.Tensor]]:
        """Named scalar losses: one for a plain loss; discriminator and generator for a GAN loss."""
        if task == "generative":
            return [
                ("discriminator loss", fn.discriminator(outputs, targets)),
                ("generator loss", fn.generator(targets)),
            ]
        return [("loss", fn(outputs, targets))]

    def check_works(self, spec: Loss, params: Mapping[str, Any], task: str) -> None:
        fn = self.build(spec, params, task)
        outputs, targets = self.batch(task)
        outputs.requires_grad_()
        if task == "generative":
            targets.requires_grad_()
        for what, value in self.evaluate(fn, task, outputs, targets):
            expect(
                isinstance(value, torch.Tensor) and value.ndim == 0,
                f"{what} is not a scalar tensor: {getattr(value, 'shape', type(value).__name__)}",
            )
            finite(value, what)
            expect(value.requires_grad, f"{what} does not depend differentiably on the outputs")
        total(value for _, value in self.evaluate(fn, task, outputs, targets)).backward()
        for what, tensor in (("outputs", outputs), ("targets (fake logits)", targets)):
            if tensor.requires_grad:
                expect(gradient(tensor, what).abs().sum() > 0, f"the gradient of the {what} is zero")

    def test_declares_tasks(self, spec: Loss) -> None:
        expect(
            spec.tasks and set(spec.tasks) <= set(TASKS),
            f"tasks {spec.tasks!r} must be a non-empty subset of classification, regression, generative",
        )

    def test_finite_scalar_and_gradients_for_every_declared_task(self, spec: Loss) -> None:
        for task in spec.tasks:
            with case(spec, f"task={task}"):
                self.check_works(spec, default_params(spec.params), task)

    def test_prefers_correct_predictions(self, spec: Loss) -> None:
        if not self.prefers_correct:
            pytest.skip("opted out: prefers_correct = False")
        for task in spec.tasks:
            with case(spec, f"task={task}"):
                fn = self.build(spec, default_params(spec.params), task)
                outputs, targets = self.batch(task)
                with torch.no_grad():
                    if task == "classification":
                        k = outputs.shape[1]
                        good = 5.0 * nn.functional.one_hot(targets, k).float()
                        bad = 5.0 * nn.functional.one_hot((targets + 1) % k, k).float()
                        pairs = [("loss", fn(good, targets), fn(bad, targets))]
                    elif task == "generative":
                        high, low = torch.full((self.n, 1), 4.0), torch.full((self.n, 1), -4.0)
                        pairs = [
                            ("discriminator loss", fn.discriminator(high, low), fn.discriminator(low, high)),
                            ("generator loss", fn.generator(high), fn.generator(low)),
                        ]
                    else:
                        pairs = [("loss", fn(targets.clone(), targets), fn(targets + 3.0, targets))]
                for what, right, wrong in pairs:
                    expect(
                        right < wrong,
                        f"{what} for correct predictions ({float(right):.4g}) is not below "
                        f"the {what} for wrong ones ({float(wrong):.4g})",
                    )

    def test_respects_declared_ranges(self, spec: Loss) -> None:
        for label, params in range_cases(spec.params, self.max_int_value):
            for task in spec.tasks:
                with case(spec, f"{label}, task={task}"):
                    self.check_works(spec, params, task)

    def test_deterministic_under_a_seed(self, spec: Loss) -> None:
        for task in spec.tasks:
            with case(spec, f"task={task}"):
                values = []
                for _ in range(2):
                    fn = self.build(spec, default_params(spec.params), task)
                    outputs, targets = self.batch(task)
                    torch.manual_seed(self.seed)
                    values.append([v for _, v in self.evaluate(fn, task, outputs, targets)])
                expect(all(torch.equal(a, b) for a, b in zip(*values)), "the loss differs under the same seed")
