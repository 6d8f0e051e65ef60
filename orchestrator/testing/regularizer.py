"""The conformance checks of regularizers (`RegularizerConformance`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from orchestrator import (
    Regularizer,
    RegularizerEffect,
)
from orchestrator.testing.common import (
    NORM_LAYOUT_SHAPES,
    ComponentConformance,
    case,
    default_params,
    expect,
    finite,
    sample_input,
)


class RegularizerConformance(ComponentConformance):
    """A Regularizer builds a RegularizerEffect that sets at least one field, with valid values:
    dropout in [0, 1), weight decay >= 0, gradient clip > 0, patience an int >= 1, a norm factory
    whose modules keep the shape for every layout and train, a penalty that is a finite,
    differentiable, deterministic scalar; at its defaults and every range end."""

    kind = "regularizer"
    spec_type = Regularizer

    @staticmethod
    def model() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))

    def check_effect(self, spec: Regularizer, params: Mapping[str, Any]) -> RegularizerEffect:
        effect = spec.build(dict(params))
        expect(
            isinstance(effect, RegularizerEffect), f"build returned {type(effect).__name__}, not a RegularizerEffect"
        )
        fields = ("dropout", "norm", "penalty", "weight_decay", "grad_clip", "early_stopping_patience")
        expect(any(getattr(effect, f) is not None for f in fields), "the effect sets no field: it does nothing")
        if effect.dropout is not None:
            expect(
                isinstance(effect.dropout, (int, float)) and 0 <= effect.dropout < 1,
                f"dropout must be in [0, 1), got {effect.dropout!r}",
            )
        if effect.weight_decay is not None:
            expect(
                isinstance(effect.weight_decay, (int, float))
                and math.isfinite(effect.weight_decay)
                and effect.weight_decay >= 0,
                f"weight_decay must be finite and >= 0, got {effect.weight_decay!r}",
            )
        if effect.grad_clip is not None:
            expect(
                isinstance(effect.grad_clip, (int, float)) and math.isfinite(effect.grad_clip) and effect.grad_clip > 0,
                f"grad_clip must be finite and > 0, got {effect.grad_clip!r}",
            )
        if effect.early_stopping_patience is not None:
            patience = effect.early_stopping_patience
            expect(
                isinstance(patience, int) and not isinstance(patience, bool) and patience >= 1,
                f"early_stopping_patience must be an int >= 1, got {patience!r}",
            )
        if effect.norm is not None:
            self.check_norm(effect.norm)
        if effect.penalty is not None:
            self.check_penalty(effect.penalty)
        return effect

    def check_norm(self, norm: Callable[[int, str], nn.Module]) -> None:
        features = 5
        for layout, shape_of in NORM_LAYOUT_SHAPES.items():
            shape = shape_of(features)
            torch.manual_seed(self.seed)
            module = norm(features, layout)
            expect(isinstance(module, nn.Module), f"norm({features}, {layout!r}) returned {type(module).__name__}")
            x = (2 + 3 * sample_input(shape[1:], n=shape[0])).requires_grad_()
            module.train()
            y = module(x)
            expect(
                tuple(y.shape) == shape, f"norm({features}, {layout!r}) changed the shape {shape} to {tuple(y.shape)}"
            )
            finite(y, f"norm({features}, {layout!r}) output")
            (y * sample_input(shape[1:], n=shape[0], seed=3)).sum().backward()
            finite(x.grad, f"norm({features}, {layout!r}) input gradient")
            module.eval()
            with torch.no_grad():
                finite(module(x), f"norm({features}, {layout!r}) output in eval mode")

    def check_penalty(self, penalty: Callable[[nn.Module], torch.Tensor]) -> None:
        model = self.model()
        value = penalty(model)
        expect(
            isinstance(value, torch.Tensor) and value.ndim == 0,
            f"penalty(model) is not a scalar tensor: {getattr(value, 'shape', type(value).__name__)}",
        )
        finite(value, "penalty")
        expect(value.requires_grad, "the penalty does not depend differentiably on the model's parameters")
        value.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        expect(grads and all(torch.isfinite(g).all() for g in grads), "the penalty gives no finite gradients")
        expect(any(g.abs().sum() > 0 for g in grads), "the penalty's gradient is zero")
        expect(torch.equal(penalty(model).detach(), value.detach()), "the penalty differs between two calls")

    def test_effect_at_defaults(self, spec: Regularizer) -> None:
        self.check_at_defaults(spec, self.check_effect)

    def test_respects_declared_ranges(self, spec: Regularizer) -> None:
        self.check_range_cases(spec, self.check_effect)

    def test_deterministic_under_a_seed(self, spec: Regularizer) -> None:
        with case(spec, "defaults"):
            first, second = (self.check_effect(spec, default_params(spec.params)) for _ in range(2))
            for field in ("dropout", "weight_decay", "grad_clip", "early_stopping_patience"):
                expect(getattr(first, field) == getattr(second, field), f"{field} differs between two builds")
            if first.penalty is not None:
                model = self.model()
                expect(torch.equal(first.penalty(model), second.penalty(model)), "penalties differ between two builds")
