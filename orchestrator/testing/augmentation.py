"""The conformance checks of augmentations (`AugmentationConformance`)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pytest
import torch

from orchestrator import (
    Augmentation,
    BuildContext,
    MixedTargets,
)
from orchestrator.api.components import INPUT_KINDS
from orchestrator.testing.common import (
    SAMPLE_VOCAB,
    ComponentConformance,
    case,
    declared_contexts,
    default_params,
    expect,
    finite,
    range_cases,
    sample_input,
)


class AugmentationConformance(ComponentConformance):
    """An Augmentation builds, for every declared input kind and task, an `augment(x, y)` that returns an (x, y)
    pair: x with the input's shape, dtype and device (floats finite, token ids still ids below the vocabulary),
    y with its shape and dtype or `MixedTargets(a, b, weight)` with a and b shaped like y and weight in [0, 1]. It
    writes into neither the batch nor the data set the batch is a view of (training batches may be views of the
    data held on the device); the same `torch.manual_seed` gives the same result; a batch of one sample works (an
    epoch's last batch may be that small). All this at its defaults (on the CPU, and on CUDA when there is one)
    and at every range end. At its defaults it changes the batch (x, or y into MixedTargets) in at least one of
    `draws` seeded draws (opt out: `changes_batch = False`)."""

    kind = "augmentation"
    spec_type = Augmentation
    changes_batch: ClassVar[bool] = True
    batch_size: ClassVar[int] = 8
    draws: ClassVar[int] = 5
    tasks: ClassVar[tuple[str, ...]] = ("classification", "regression")  # the tasks whose training is augmented

    # -- helpers ------------------------------------------------------------

    def contexts(self, spec: Augmentation) -> Iterator[tuple[str, BuildContext]]:
        """One context per declared input kind and task."""
        return declared_contexts(spec)

    @staticmethod
    def devices() -> list[str]:
        return ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]

    def data(self, ctx: BuildContext, n: int, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """A small "data set" of n + 2 samples on `device`: inputs of the context's kind, and targets of its task
        (int64 classes, or (N, 1) floats)."""
        x = sample_input(ctx.input_shape, n=n + 2, seed=self.seed, input_kind=ctx.input_kind)
        if ctx.task == "classification":
            y = torch.arange(n + 2) % ctx.output_size
        else:
            y = torch.randn(n + 2, ctx.output_size, generator=torch.Generator().manual_seed(self.seed + 1))
        return x.to(device), y.to(device)

    def run(
        self,
        spec: Augmentation,
        params: Mapping[str, Any],
        ctx: BuildContext,
        x: torch.Tensor,
        y: torch.Tensor,
        seed: int | None = None,
    ) -> tuple[torch.Tensor, Any]:
        """Build under a seed and augment (x, y) once; the result, checked to be an (x, y) pair."""
        torch.manual_seed(self.seed if seed is None else seed)
        augment = spec.build(dict(params), ctx)
        expect(callable(augment), f"build returned {type(augment).__name__}, which is not callable")
        result = augment(x, y)
        expect(
            isinstance(result, (tuple, list)) and len(result) == 2,
            f"augment(x, y) returned {type(result).__name__}, not an (x, y) pair",
        )
        return result[0], result[1]

    def check_result(self, ctx: BuildContext, x: torch.Tensor, y: torch.Tensor, out_x: Any, out_y: Any) -> None:
        expect(isinstance(out_x, torch.Tensor), f"the augmented x is not a tensor: {type(out_x).__name__}")
        expect(
            tuple(out_x.shape) == tuple(x.shape),
            f"the augmented x has shape {tuple(out_x.shape)}, the input {tuple(x.shape)}",
        )
        expect(out_x.dtype == x.dtype, f"the augmented x has dtype {out_x.dtype}, the input {x.dtype}")
        expect(out_x.device == x.device, f"the augmented x is on {out_x.device}, the input on {x.device}")
        if ctx.input_kind == "tokens":
            vocab = int(ctx.vocab_size or SAMPLE_VOCAB)
            expect(
                len(out_x) == 0 or (int(out_x.min()) >= 0 and int(out_x.max()) < vocab),
                f"the augmented token ids leave 0..{vocab - 1}",
            )
        else:
            finite(out_x, "the augmented x")
        if isinstance(out_y, MixedTargets):
            weight = out_y.weight
            is_number = isinstance(weight, (int, float)) and not isinstance(weight, bool)
            is_scalar = isinstance(weight, torch.Tensor) and weight.ndim == 0
            expect(is_number or is_scalar, f"MixedTargets.weight is {type(weight).__name__}, not a number")
            expect(
                math.isfinite(float(weight)) and 0.0 <= float(weight) <= 1.0,
                f"MixedTargets.weight is {float(weight)!r}, outside [0, 1]",
            )
            for part in ("a", "b"):
                target = getattr(out_y, part)
                expect(isinstance(target, torch.Tensor), f"MixedTargets.{part} is not a tensor")
                expect(
                    tuple(target.shape) == tuple(y.shape) and target.dtype == y.dtype and target.device == y.device,
                    f"MixedTargets.{part} is {target.dtype} {tuple(target.shape)} on {target.device}, the targets "
                    f"{y.dtype} {tuple(y.shape)} on {y.device}",
                )
        else:
            expect(
                isinstance(out_y, torch.Tensor),
                f"the returned y is {type(out_y).__name__}, not the targets (a tensor) or MixedTargets",
            )
            expect(
                tuple(out_y.shape) == tuple(y.shape) and out_y.dtype == y.dtype and out_y.device == y.device,
                f"the returned y is {out_y.dtype} {tuple(out_y.shape)} on {out_y.device}, the targets "
                f"{y.dtype} {tuple(y.shape)} on {y.device}",
            )

    def check_works(
        self, spec: Augmentation, params: Mapping[str, Any], ctx: BuildContext, n: int, device: str = "cpu"
    ) -> None:
        """Augment a batch that is a view of a small data set; check the result and that nothing was written into
        the batch or the data set."""
        data_x, data_y = self.data(ctx, n, device)
        kept_x, kept_y = data_x.clone(), data_y.clone()
        x, y = data_x[1 : 1 + n], data_y[1 : 1 + n]
        out_x, out_y = self.run(spec, params, ctx, x, y)
        expect(
            torch.equal(data_x, kept_x),
            "augment wrote into the input batch (a view of the data set): it must "
            "return a new tensor, not change the caller's",
        )
        expect(torch.equal(data_y, kept_y), "augment wrote into the targets (a view of the data set)")
        self.check_result(ctx, x, y, out_x, out_y)

    @staticmethod
    def same(first: tuple[torch.Tensor, Any], second: tuple[torch.Tensor, Any]) -> bool:
        (x1, y1), (x2, y2) = first, second
        if not torch.equal(x1, x2) or type(y1) is not type(y2):
            return False
        if isinstance(y1, MixedTargets):
            return torch.equal(y1.a, y2.a) and torch.equal(y1.b, y2.b) and float(y1.weight) == float(y2.weight)
        return torch.equal(y1, y2)

    # -- checks -------------------------------------------------------------

    def test_declares_input_kinds_and_tasks(self, spec: Augmentation) -> None:
        expect(
            spec.input_kinds and set(spec.input_kinds) <= set(INPUT_KINDS),
            f"augmentation {spec.name!r}: input_kinds {spec.input_kinds!r} must be a non-empty subset of {INPUT_KINDS}",
        )
        expect(
            spec.tasks and set(spec.tasks) <= set(self.tasks),
            f"augmentation {spec.name!r}: tasks {spec.tasks!r} must be a non-empty subset of {self.tasks} (the "
            f"tasks whose training batches are augmented)",
        )

    def test_contract_for_every_declared_input_kind_and_task(self, spec: Augmentation) -> None:
        params = default_params(spec.params)
        for label, ctx in self.contexts(spec):
            for device in self.devices():
                for n in (self.batch_size, 1):
                    with case(spec, f"{label}, device={device}, batch={n}"):
                        self.check_works(spec, params, ctx, n, device)

    def test_respects_declared_ranges(self, spec: Augmentation) -> None:
        for case_label, params in range_cases(spec.params, self.max_int_value):
            for label, ctx in self.contexts(spec):
                with case(spec, f"{case_label}, {label}"):
                    self.check_works(spec, params, ctx, self.batch_size)

    def test_deterministic_under_a_seed(self, spec: Augmentation) -> None:
        params = default_params(spec.params)
        for label, ctx in self.contexts(spec):
            with case(spec, label):
                x, y = self.data(ctx, self.batch_size)
                first, second = (self.run(spec, params, ctx, x, y) for _ in range(2))
                expect(self.same(first, second), f"two runs under torch.manual_seed({self.seed}) differ")

    def test_changes_the_batch(self, spec: Augmentation) -> None:
        if not self.changes_batch:
            pytest.skip("opted out: changes_batch = False")
        params = default_params(spec.params)
        for label, ctx in self.contexts(spec):
            with case(spec, f"defaults, {label}"):
                x, y = self.data(ctx, self.batch_size)
                results = [self.run(spec, params, ctx, x, y, seed=self.seed + draw) for draw in range(self.draws)]
                expect(
                    any(not self.same(result, (x, y)) for result in results),
                    f"the batch came back unchanged in {self.draws} draws (seeds {self.seed}.."
                    f"{self.seed + self.draws - 1}): the augmentation does nothing at its defaults",
                )
