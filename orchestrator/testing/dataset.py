"""The conformance checks of data sets (`DatasetConformance`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
import torch

from orchestrator import (
    DataBundle,
    Dataset,
    Text,
)
from orchestrator.testing.common import ComponentConformance, case, default_params, expect, finite, split_tensors


class DatasetConformance(ComponentConformance):
    """A Dataset builds at its defaults (with `dataset_params` over them) into a DataBundle whose
    shapes fit its input kind (the probe's, where it has one), whose splits are non-empty and whose
    targets are valid for its task; the same seed gives the same data. A data set that needs a
    user's file (a Text path parameter with an empty default) is skipped unless `dataset_params`,
    a fixture to override, gives one."""

    kind = "dataset"
    spec_type = Dataset
    ndims: ClassVar[dict[str, int]] = {"vector": 1, "sequence": 2, "image": 3, "tokens": 1}

    @pytest.fixture
    def dataset_params(self) -> dict[str, Any]:
        """Values over the declared defaults, e.g. `{"path": str(sample_file)}`. Override to set them."""
        return {}

    def params_or_skip(self, spec: Dataset, overrides: Mapping[str, Any]) -> dict[str, Any]:
        params = {**default_params(spec.params), **overrides}
        needs_file = [n for n, p in spec.params.items() if isinstance(p, Text) and p.is_path and not params[n]]
        if needs_file:
            pytest.skip(
                f"dataset {spec.name!r} needs a user's file ({', '.join(needs_file)}): "
                f"give one by overriding the `dataset_params` fixture"
            )
        return params

    def check_bundle(self, spec: Dataset, data: Any, params: Mapping[str, Any]) -> None:
        self._check_declarations(spec, data, params)
        shape = None
        for split in ("train", "val", "test"):
            x, y = split_tensors(data, split)
            shape = self._check_inputs(data, split, x, y, shape)
            self._check_targets(data, split, x, y)
        if data.task == "classification" and not data.streaming:
            expect(len(data.y_train.unique()) >= 2, "the training split holds a single class")

    def _check_declarations(self, spec: Dataset, data: Any, params: Mapping[str, Any]) -> None:
        """A DataBundle of a declared task and input kind (the probe's, where it has one), with a valid output size
        and target scale."""
        expect(isinstance(data, DataBundle), f"build returned {type(data).__name__}, not a DataBundle")
        expect(data.task in spec.tasks, f"task {data.task!r} is not among the declared tasks {spec.tasks}")
        expected_kind = spec.probe(dict(params))[1] if spec.probe is not None else spec.input_kind
        if spec.probe is not None:
            expect(spec.probe(dict(params))[0] == data.task, "probe() and build() disagree on the task")
        expect(
            data.input_kind == expected_kind,
            f"input_kind {data.input_kind!r} differs from the declared {expected_kind!r}",
        )
        expect(
            isinstance(data.output_size, int) and data.output_size >= 1,
            f"output_size must be an int >= 1, got {data.output_size!r}",
        )
        expect(
            isinstance(data.target_scale, (int, float)) and math.isfinite(data.target_scale) and data.target_scale > 0,
            f"target_scale must be finite and > 0, got {data.target_scale!r}",
        )

    def _check_inputs(
        self, data: Any, split: str, x: torch.Tensor, y: torch.Tensor, shape: tuple[int, ...] | None
    ) -> tuple[int, ...]:
        """A split's inputs: non-empty, one per target, of the input kind's rank, of the sample `shape` of the
        splits before (None: the first) and valid values; their sample shape."""
        expect(len(x) > 0, f"the {split} split is empty")
        expect(len(x) == len(y), f"{split}: {len(x)} inputs but {len(y)} targets")
        expect(
            x.ndim == 1 + self.ndims[data.input_kind],
            f"x_{split} has shape {tuple(x.shape)}: a {data.input_kind} batch has "
            f"{1 + self.ndims[data.input_kind]} dimensions",
        )
        expect(
            shape is None or tuple(x.shape[1:]) == shape,
            f"x_{split} has sample shape {tuple(x.shape[1:])}, x_train {shape}",
        )
        if data.input_kind == "tokens":
            expect(
                isinstance(data.vocab_size, int) and data.vocab_size >= 2,
                f"tokens data needs vocab_size >= 2, got {data.vocab_size!r}",
            )
            expect(
                x.dtype == torch.int64 and int(x.min()) >= 0 and int(x.max()) < data.vocab_size,
                f"x_{split} must be int64 token ids in 0..{data.vocab_size - 1}",
            )
        else:
            finite(x, f"x_{split}")
        return tuple(x.shape[1:])

    def _check_targets(self, data: Any, split: str, x: torch.Tensor, y: torch.Tensor) -> None:
        """A split's targets, valid for the task: class indices, or finite (N, output_size) values."""
        if data.task == "classification":
            expect(data.output_size >= 2, f"a classification data set needs output_size >= 2, got {data.output_size}")
            expect(
                y.dtype == torch.int64 and y.ndim == 1,
                f"y_{split} must be int64 class indices (N,), got {y.dtype} {tuple(y.shape)}",
            )
            expect(
                int(y.min()) >= 0 and int(y.max()) < data.output_size,
                f"y_{split} has classes outside 0..{data.output_size - 1}",
            )
        elif data.task == "regression":
            finite(y, f"y_{split}")
            expect(
                tuple(y.shape) == (len(x), data.output_size),
                f"y_{split} has shape {tuple(y.shape)}, expected (N, output_size) = {(len(x), data.output_size)}",
            )

    def test_builds_a_valid_bundle_at_defaults(self, spec: Dataset, dataset_params: Mapping[str, Any]) -> None:
        params = self.params_or_skip(spec, dataset_params)
        with case(spec, "defaults"):
            self.check_bundle(spec, spec.build(dict(params), self.seed), params)

    def test_deterministic_under_a_seed(self, spec: Dataset, dataset_params: Mapping[str, Any]) -> None:
        params = self.params_or_skip(spec, dataset_params)
        with case(spec, f"defaults, seed={self.seed}"):
            first, second = (spec.build(dict(params), self.seed) for _ in range(2))
            for split in ("train", "val", "test"):
                for name, a, b in zip(
                    (f"x_{split}", f"y_{split}"), split_tensors(first, split), split_tensors(second, split)
                ):
                    expect(torch.equal(a, b), f"{name} differs between two builds with the same seed")
