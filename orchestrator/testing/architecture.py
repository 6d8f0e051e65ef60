"""The conformance checks of architectures (`ArchitectureConformance`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, cast

import pytest
import torch
from torch import nn

from orchestrator import (
    Architecture,
    BuildContext,
)
from orchestrator.api.components import INPUT_KINDS, TASKS
from orchestrator.testing.common import (
    BATCH_SIZE,
    DROPOUT_TYPES,
    NORM_LAYOUT_SHAPES,
    ComponentConformance,
    case,
    declared_contexts,
    default_params,
    expect,
    finite,
    make_context,
    range_cases,
    sample_input,
    total,
)


class _ActivationProbe(nn.Module):
    """The activation the kit hands in: tanh, counting its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.tanh(x)


class _NormProbe(nn.Module):
    """The normalisation the kit hands in: identity, recording whether the tensors it sees fit the
    `features` and `layout` it was created for."""

    def __init__(self, features: int, layout: str) -> None:
        super().__init__()
        self.features, self.layout = features, layout
        self.calls = 0
        self.mismatches: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        ndim = {"vector": 2, "conv1d": 3, "conv2d": 4, "sequence": 3}.get(self.layout)
        axis = -1 if self.layout in ("vector", "sequence") else 1
        if ndim is None or x.ndim != ndim or x.shape[axis] != self.features:
            self.mismatches.append(f"norm({self.features}, {self.layout!r}) got a tensor of shape {tuple(x.shape)}")
        return x


class ArchitectureConformance(ComponentConformance):
    """An Architecture builds for every declared input kind and task, maps (N, *input_shape) to
    (N, output_size) finite outputs (for `generative`: a module with `generator`, `discriminator` and
    `latent_dim`), trains (every parameter gets a gradient), respects its declared ranges, is
    deterministic under a seed and uses the context it is handed.

    Opt out of a context check by setting `uses_activation`, `uses_dropout` or `uses_norm` to False
    (e.g. a recurrent network whose non-linearities are built in).
    """

    kind = "architecture"
    spec_type = Architecture
    uses_activation: ClassVar[bool] = True
    uses_dropout: ClassVar[bool] = True
    uses_norm: ClassVar[bool] = True

    # -- helpers ------------------------------------------------------------

    def contexts(self, spec: Architecture) -> Iterator[tuple[str, BuildContext]]:
        """One context per declared input kind and task."""
        return declared_contexts(spec)

    def first_task_contexts(self, spec: Architecture, **overrides: Any) -> Iterator[tuple[str, BuildContext]]:
        """One context per declared input kind, for the first declared task."""
        for input_kind in spec.input_kinds:
            yield f"input_kind={input_kind}", make_context(input_kind, spec.tasks[0], **overrides)

    def build(
        self, spec: Architecture, params: Mapping[str, Any], ctx: BuildContext, seed: int | None = None
    ) -> nn.Module:
        torch.manual_seed(self.seed if seed is None else seed)
        model = spec.build(dict(params), ctx)
        expect(isinstance(model, nn.Module), f"build returned {type(model).__name__}, not an nn.Module")
        return model

    def run(self, model: nn.Module, ctx: BuildContext, input_seed: int = 0) -> dict[str, torch.Tensor]:
        """The outputs to judge: `output` = model(x); generative: `generator(z)` and `discriminator(x)`."""
        x = sample_input(ctx.input_shape, seed=input_seed, input_kind=ctx.input_kind)
        if ctx.task != "generative":
            return {"output": model(x)}
        missing = [a for a in ("generator", "discriminator", "latent_dim") if not hasattr(model, a)]
        expect(not missing, f"a generative architecture's module lacks {missing}")
        expect(
            isinstance(model.latent_dim, int) and model.latent_dim >= 1,
            f"latent_dim must be an int >= 1, got {model.latent_dim!r}",
        )
        gan = cast(Any, model)  # its parts are attributes, which nn.Module types as Tensor | Module
        z = torch.randn(BATCH_SIZE, gan.latent_dim, generator=torch.Generator().manual_seed(input_seed + 1000))
        return {"generator": gan.generator(z), "discriminator": gan.discriminator(x)}

    def check_outputs(self, outputs: Mapping[str, torch.Tensor], ctx: BuildContext) -> None:
        for what, tensor in outputs.items():
            finite(tensor, what)
        if ctx.task == "generative":
            expect(
                tuple(outputs["generator"].shape) == (BATCH_SIZE, *ctx.input_shape),
                f"generator output has shape {tuple(outputs['generator'].shape)}, expected "
                f"{(BATCH_SIZE, *ctx.input_shape)} (a sample shaped like the input)",
            )
            expect(
                tuple(outputs["discriminator"].shape) in ((BATCH_SIZE, 1), (BATCH_SIZE,)),
                f"discriminator output has shape {tuple(outputs['discriminator'].shape)}, expected "
                f"{(BATCH_SIZE, 1)} (one logit per sample)",
            )
        else:
            expect(
                tuple(outputs["output"].shape) == (BATCH_SIZE, ctx.output_size),
                f"output has shape {tuple(outputs['output'].shape)}, expected (N, output_size) = "
                f"{(BATCH_SIZE, ctx.output_size)}",
            )

    def check_trains(self, model: nn.Module, ctx: BuildContext) -> None:
        """A random projection of the outputs, backpropagated: every trainable parameter gets a
        finite gradient, and some gradient is non-zero."""
        model.train()
        model.zero_grad(set_to_none=True)
        outputs = self.run(model, ctx)
        weights = torch.Generator().manual_seed(7)
        total((t * torch.randn(t.shape, generator=weights)).sum() for t in outputs.values()).backward()
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        expect(trainable, "the module has no trainable parameters")
        missing = [n for n, p in trainable if p.grad is None]
        expect(not missing, f"no gradient reaches parameters {missing[:5]} (unused in forward?)")
        grads = [(n, cast(torch.Tensor, p.grad)) for n, p in trainable]  # none is None: checked just above
        bad = [n for n, grad in grads if not torch.isfinite(grad).all()]
        expect(not bad, f"non-finite gradients for {bad[:5]}")
        expect(any(grad.abs().sum() > 0 for _, grad in grads), "every gradient is zero")

    def check_works(self, spec: Architecture, params: Mapping[str, Any], ctx: BuildContext) -> None:
        model = self.build(spec, params, ctx)
        self.check_outputs(self.run(model, ctx), ctx)
        self.check_trains(model, ctx)

    # -- checks -------------------------------------------------------------

    def test_declares_input_kinds_and_tasks(self, spec: Architecture) -> None:
        expect(
            spec.input_kinds and set(spec.input_kinds) <= set(INPUT_KINDS),
            f"input_kinds {spec.input_kinds!r} must be a non-empty subset of {INPUT_KINDS}",
        )
        expect(
            spec.tasks and set(spec.tasks) <= set(TASKS),
            f"tasks {spec.tasks!r} must be a non-empty subset of classification, regression, generative",
        )

    def test_output_shape_for_every_declared_input_kind_and_task(self, spec: Architecture) -> None:
        """Builds at its defaults for each declared input kind x task; (N, output_size) finite outputs
        that depend on the input."""
        params = default_params(spec.params)
        for label, ctx in self.contexts(spec):
            with case(spec, label):
                model = self.build(spec, params, ctx).eval()
                with torch.no_grad():
                    outputs = self.run(model, ctx)
                    self.check_outputs(outputs, ctx)
                    others = self.run(model, ctx, input_seed=1)
                for what in outputs:
                    expect(
                        not torch.equal(outputs[what], others[what]),
                        f"{what} is the same for different inputs: the input is ignored",
                    )

    def test_backward_reaches_every_parameter(self, spec: Architecture) -> None:
        params = default_params(spec.params)
        for label, ctx in self.contexts(spec):
            with case(spec, label):
                self.check_trains(self.build(spec, params, ctx), ctx)

    def test_respects_declared_ranges(self, spec: Architecture) -> None:
        """Builds, runs and trains at each range end and Choice value (first declared task)."""
        for case_label, params in range_cases(spec.params, self.max_int_value):
            for label, ctx in self.first_task_contexts(spec):
                with case(spec, f"{case_label}, {label}"):
                    self.check_works(spec, params, ctx)

    def test_deterministic_under_a_seed(self, spec: Architecture) -> None:
        """The same torch seed builds the same network: identical outputs (eval mode)."""
        params = default_params(spec.params)
        for label, ctx in self.first_task_contexts(spec):
            with case(spec, label):
                runs = []
                for _ in range(2):
                    model = self.build(spec, params, ctx, seed=self.seed).eval()
                    with torch.no_grad():
                        runs.append(self.run(model, ctx))
                for what in runs[0]:
                    expect(
                        torch.equal(runs[0][what], runs[1][what]),
                        f"{what} differs between two builds with the same seed",
                    )

    def test_uses_the_context_activation(self, spec: Architecture) -> None:
        if not self.uses_activation:
            pytest.skip("opted out: uses_activation = False")
        for label, ctx in self.first_task_contexts(spec, activation=_ActivationProbe):
            with case(spec, f"{label}, activation=probe"):
                model = self.build(spec, default_params(spec.params), ctx)
                probes = [m for m in model.modules() if isinstance(m, _ActivationProbe)]
                expect(
                    probes,
                    "ctx.activation() was not used: no module of the activation class it returns is in the network",
                )
                self.run(model, ctx)
                expect(any(p.calls for p in probes), "the ctx.activation() modules are never called in forward")

    def test_uses_the_context_dropout(self, spec: Architecture) -> None:
        if not self.uses_dropout:
            pytest.skip("opted out: uses_dropout = False")
        rate = 0.37
        for label, ctx in self.first_task_contexts(spec, dropout=rate):
            with case(spec, f"{label}, dropout={rate}"):
                model = self.build(spec, default_params(spec.params), ctx)
                rates = [m.p for m in model.modules() if isinstance(m, DROPOUT_TYPES)]
                expect(
                    rate in rates,
                    f"ctx.dropout={rate} was not used: no dropout module with p={rate} (dropout rates found: {rates})",
                )
                model.train()
                with torch.no_grad():
                    first, second = self.run(model, ctx), self.run(model, ctx)
                expect(
                    any(not torch.equal(first[w], second[w]) for w in first),
                    "dropout has no effect in training mode (two forward passes are identical)",
                )
                model.eval()
                with torch.no_grad():
                    first, second = self.run(model, ctx), self.run(model, ctx)
                expect(all(torch.equal(first[w], second[w]) for w in first), "outputs are random in eval mode")

    def test_uses_the_context_norm(self, spec: Architecture) -> None:
        if not self.uses_norm:
            pytest.skip("opted out: uses_norm = False")
        for label, ctx in self.first_task_contexts(spec, norm=_NormProbe):
            with case(spec, f"{label}, norm=probe"):
                model = self.build(spec, default_params(spec.params), ctx)
                probes = [m for m in model.modules() if isinstance(m, _NormProbe)]
                expect(probes, "ctx.norm was not used: no module it returned is in the network")
                bad = [p.layout for p in probes if p.layout not in NORM_LAYOUT_SHAPES]
                expect(not bad, f"ctx.norm called with unknown layouts {bad}; use one of {list(NORM_LAYOUT_SHAPES)}")
                self.run(model, ctx)
                expect(any(p.calls for p in probes), "the ctx.norm modules are never called in forward")
                mismatches = [m for p in probes for m in p.mismatches]
                expect(not mismatches, "ctx.norm was given the wrong features or layout: " + "; ".join(mismatches[:3]))
