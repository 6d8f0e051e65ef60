"""The conformance kit's shared part: tiny synthetic inputs, the helpers every check uses, and the checks
every component kind shares (`ComponentConformance`)."""

from __future__ import annotations

import contextlib
import functools
import math
import operator
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from orchestrator import (
    BuildContext,
    Choice,
    DataBundle,
    Fixed,
    Float,
    Int,
    Text,
)

BATCH_SIZE = 4
SAMPLE_SHAPES: dict[str, tuple[int, ...]] = {
    "vector": (6,),  # (N, F)
    "sequence": (12, 3),  # (N, L, C)
    "image": (2, 8, 8),  # (N, C, H, W): as small as the built-in `digits` images
    "tokens": (12,),  # (N, L) int64 token ids
}
SAMPLE_VOCAB = 20  # token ids of `tokens` samples run from 0 (padding) to SAMPLE_VOCAB - 1
STREAMED_ROWS = 64  # the samples of each split a streamed data set is checked on
OUTPUT_SIZES: dict[str, int] = {"classification": 3, "regression": 1}  # generative: the sample's features
NORM_LAYOUT_SHAPES: dict[str, Callable[[int], tuple[int, ...]]] = {
    "vector": lambda f: (BATCH_SIZE, f),
    "conv1d": lambda f: (BATCH_SIZE, f, 7),
    "conv2d": lambda f: (BATCH_SIZE, f, 3, 3),
    "sequence": lambda f: (BATCH_SIZE, 7, f),
}
DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
PARAM_TYPES = (Float, Int, Choice, Fixed, Text)


class ConformanceError(AssertionError):
    """A component violates the plugin contract; the message names the component and the case."""


# Helpers, usable on their own


def default_registry() -> Any:
    """`orchestrator.api.registry.load_registry()` as `automl` would load it here (installed plugins plus
    `./plugins/`), loaded once per working directory and plugin environment variables."""
    from orchestrator.api.registry import DISABLE_AUTOLOAD_ENV, LOAD_ONLY_ENV

    return _load_registry(os.getcwd(), os.environ.get(DISABLE_AUTOLOAD_ENV), os.environ.get(LOAD_ONLY_ENV))


@functools.lru_cache(maxsize=8)
def _load_registry(cwd: str, disable_autoload: str | None, load_only: str | None) -> Any:
    from orchestrator.api.registry import load_registry

    return load_registry()


def registered(kind: str, registry: Any = None) -> list[str]:
    """The names of every registered component of one kind, e.g. to parametrise `component`."""
    return (registry or default_registry()).names(kind)


def default_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared parameter at its default (Int defaults as int, Float defaults as float)."""
    return {name: _cast(param, param.default) for name, param in params.items()}


def _cast(param: Any, value: Any) -> Any:
    if isinstance(param, Int):
        return int(value)
    if isinstance(param, Float):
        return float(value)
    return value


def _grid_top(param: Any, high: float) -> float:
    """The largest value <= high on the grid low, low + step, ... (the whole range without a step)."""
    if param.step is None:
        return high
    return param.low + math.floor((high - param.low) / param.step + 1e-9) * param.step


def range_cases(params: Mapping[str, Any], max_int_value: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    """`(label, params)` for one parameter at a time at its range ends / Choice values, the others
    at defaults; cases equal to the defaults are left out. See the module docstring for the cap."""
    base = default_params(params)
    cases: list[tuple[str, dict[str, Any]]] = []
    for name, param in params.items():
        if isinstance(param, (Float, Int)):
            high = _grid_top(param, param.high)
            if isinstance(param, Int) and max_int_value is not None and high > max_int_value:
                high = max(param.low, _grid_top(param, max_int_value))
            values = [param.low, high]
        elif isinstance(param, Choice):
            values = list(param.choices)
        else:
            continue
        seen: list[Any] = []
        for value in values:
            value = _cast(param, value)
            same = [v for v in seen + [base[name]] if v == value and type(v) is type(value)]
            if same:
                continue
            seen.append(value)
            cases.append((f"{name}={value!r}", {**base, name: value}))
    return cases


def split_tensors(data: DataBundle, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A split's (inputs, targets): the tensors, or a streamed split's first STREAMED_ROWS samples stacked."""
    x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
    if not data.streaming:
        expect(isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor), f"{split} split is not tensors")
        return x, y
    expect(hasattr(x, "__getitem__") and hasattr(x, "__len__"), f"streamed {split} split is not a map-style Dataset")
    items = [x[i] for i in range(min(STREAMED_ROWS, len(x)))]
    expect(
        all(isinstance(item, (tuple, list)) and len(item) == 2 for item in items),
        f"streamed {split} split: items must be (x, y) pairs",
    )
    if not items:
        return torch.empty(0), torch.empty(0)
    return torch.stack([torch.as_tensor(a) for a, _ in items]), torch.stack([torch.as_tensor(b) for _, b in items])


def make_context(
    input_kind: str = "vector",
    task: str = "classification",
    *,
    input_shape: tuple[int, ...] | None = None,
    **overrides: Any,
) -> BuildContext:
    """A BuildContext for the synthetic inputs of one input kind and task."""
    shape = tuple(input_shape or SAMPLE_SHAPES[input_kind])
    output_size = OUTPUT_SIZES.get(task, math.prod(shape))
    tokens = (
        {"vocab_size": SAMPLE_VOCAB, "embedding": lambda: nn.Embedding(SAMPLE_VOCAB, 8, padding_idx=0)}
        if input_kind == "tokens"
        else {}
    )
    return BuildContext(
        **{
            "input_shape": shape,
            "input_kind": input_kind,
            "output_size": output_size,
            "task": task,
            **tokens,
            **overrides,
        }
    )


def declared_contexts(spec: Any) -> Iterator[tuple[str, BuildContext]]:
    """`(label, context)` for each input kind and task a spec declares (`input_kinds` x `tasks`)."""
    for input_kind in spec.input_kinds:
        for task in spec.tasks:
            yield f"input_kind={input_kind}, task={task}", make_context(input_kind, task)


def sample_input(shape: tuple[int, ...], n: int = BATCH_SIZE, seed: int = 0, input_kind: str = "") -> torch.Tensor:
    """A reproducible standard-normal batch of shape (n, *shape), independent of the global RNG; for `tokens`,
    int64 ids in 0..SAMPLE_VOCAB - 1."""
    generator = torch.Generator().manual_seed(seed)
    if input_kind == "tokens":
        return torch.randint(0, SAMPLE_VOCAB, (n, *shape), generator=generator)
    return torch.randn(n, *shape, generator=generator)


def expect(condition: Any, message: str) -> None:
    __tracebackhide__ = True
    if not condition:
        raise ConformanceError(message)


@contextlib.contextmanager
def case(spec: Any, label: str) -> Iterator[None]:
    """Name the component and the case in any failure raised inside (plugin errors included)."""
    __tracebackhide__ = True
    try:
        yield
    except ConformanceError as exc:
        raise ConformanceError(f"{spec.kind} {spec.name!r} [{label}]: {exc}") from exc
    except Exception as exc:
        raise ConformanceError(f"{spec.kind} {spec.name!r} [{label}]: {type(exc).__name__}: {exc}") from exc


def finite(tensor: Any, what: str) -> None:
    expect(isinstance(tensor, torch.Tensor), f"{what} is not a tensor: {type(tensor).__name__}")
    expect(tensor.is_floating_point(), f"{what} has dtype {tensor.dtype}, expected a floating dtype")
    expect(bool(torch.isfinite(tensor).all()), f"{what} is not finite")


def gradient(tensor: torch.Tensor, what: str) -> torch.Tensor:
    """`tensor.grad` after a backward pass, checked to exist and to be finite (`what` names it in a failure)."""
    __tracebackhide__ = True
    grad = tensor.grad
    if grad is None:
        raise ConformanceError(f"no gradient reaches the {what}")
    finite(grad, f"gradient of the {what}")
    return grad


def total(values: Iterable[torch.Tensor]) -> torch.Tensor:
    """The sum of tensors, as a tensor (the builtin `sum` starts from the int 0); there must be at least one."""
    return functools.reduce(operator.add, values)


class ComponentConformance:
    """Checks every component kind shares. Override the `component` fixture in a subclass."""

    kind: ClassVar[str] = ""
    spec_type: ClassVar[type] = object
    seed: ClassVar[int] = 0
    max_int_value: ClassVar[int | None] = 1024
    torch_threads: ClassVar[int | None] = 1  # tiny tensors: extra threads only contend (None: leave as is)

    @pytest.fixture(autouse=True)
    def _torch_threads(self) -> Iterator[None]:
        if self.torch_threads is None:
            yield
            return
        saved = torch.get_num_threads()
        torch.set_num_threads(self.torch_threads)
        try:
            yield
        finally:
            torch.set_num_threads(saved)

    @pytest.fixture
    def component(self) -> Any:
        """The component under test: a spec object or a registered name. Override this fixture."""
        raise NotImplementedError(
            f"override the `component` fixture of {type(self).__name__} with a "
            f"{self.spec_type.__name__} spec or the name of a registered {self.kind}"
        )

    @pytest.fixture
    def registry(self) -> Any:
        """Where names given by `component` are looked up. Override to use another registry."""
        return default_registry()

    @pytest.fixture
    def spec(self, component: Any, request: pytest.FixtureRequest) -> Any:
        if isinstance(component, str):
            registry = request.getfixturevalue("registry")
            names = registry.names(self.kind)
            if component not in names:
                pytest.fail(f"no {self.kind} named {component!r} is registered; registered: {names}")
            return registry.get(self.kind, component).spec
        return component

    def check_at_defaults(self, spec: Any, check: Callable[[Any, dict[str, Any]], Any]) -> None:
        """`check(spec, params)` with every parameter at its default; a failure names the case `defaults`."""
        __tracebackhide__ = True
        with case(spec, "defaults"):
            check(spec, default_params(spec.params))

    def check_range_cases(self, spec: Any, check: Callable[[Any, dict[str, Any]], Any]) -> None:
        """`check(spec, params)` for each of the spec's `range_cases`; a failure names the case."""
        __tracebackhide__ = True
        for label, params in range_cases(spec.params, self.max_int_value):
            with case(spec, label):
                check(spec, params)

    def test_spec_is_well_formed(self, spec: Any) -> None:
        expect(
            isinstance(spec, self.spec_type), f"expected a {self.spec_type.__name__} spec, got {type(spec).__name__}"
        )
        expect(
            isinstance(spec.description, str) and spec.description.strip(),
            f"{self.kind} {spec.name!r} has no description",
        )
        for name, param in spec.params.items():
            expect(
                isinstance(name, str) and name.isidentifier() and "." not in name,
                f"{self.kind} {spec.name!r}: parameter name {name!r} is not an identifier",
            )
            expect(
                isinstance(param, PARAM_TYPES),
                f"{self.kind} {spec.name!r}: parameter {name!r} is a {type(param).__name__}, "
                f"not one of Float, Int, Choice, Fixed, Text",
            )

    def test_defaults_lie_inside_declared_ranges(self, spec: Any) -> None:
        for name, param in spec.params.items():
            expect(
                param.contains(param.default),
                f"{self.kind} {spec.name!r}: default {param.default!r} of {name!r} is outside its "
                f"declared {param.describe()}",
            )
