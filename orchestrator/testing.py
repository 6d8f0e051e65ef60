"""A conformance test kit for component plugins, in the style of Optuna's sampler test classes.

Every component kind has a class of pytest checks parametrised by one fixture, `component`, which
a subclass overrides with the component under test: a spec object, or the name of a registered
component (resolved through the `registry` fixture; by default the registry `automl` itself would
load in the working directory: installed plugins plus `./plugins/`).

    import pytest
    from orchestrator.testing import ArchitectureConformance

    class TestMyNet(ArchitectureConformance):
        @pytest.fixture
        def component(self):
            return "my_net"        # or the Architecture spec object itself

The kit's class names do not start with `Test`, so pytest collects only your subclasses. Each
check is also a plain method taking the spec, e.g.
`ArchitectureConformance().test_deterministic_under_a_seed(spec)`, which raises `ConformanceError`
(an AssertionError naming the component and the failing case) on a violation.

Classes: ArchitectureConformance, ActivationConformance, LossConformance, OptimizerConformance,
ScheduleConformance, RegularizerConformance, AugmentationConformance, DatasetConformance. Opt-outs
(class attributes, for components that legitimately do not do something): ArchitectureConformance.uses_activation /
uses_dropout / uses_norm, ActivationConformance.nonlinear, LossConformance.prefers_correct,
OptimizerConformance.uses_weight_decay, AugmentationConformance.changes_batch. DatasetConformance has a
`dataset_params` fixture for values over the defaults (e.g. a sample file for a data set that reads the user's file).

"Respects its declared ranges": the component builds and works with every parameter at its default,
then with one parameter at a time at the low and at the high end of its declared Float/Int range (on
the step grid Optuna samples, for stepped ranges) and at each of its Choice values, the others at
their defaults; Fixed and Text parameters keep their value. Size cap: an Int parameter whose declared
high exceeds `max_int_value` (class attribute, default 1024) is exercised at the largest value of its
grid not above the cap (at least its low); `max_int_value = None` exercises the true high end.

Inputs are tiny and synthetic: `SAMPLE_SHAPES` per input kind, batches of `BATCH_SIZE` samples,
`OUTPUT_SIZES` outputs per task. The checks run torch on one thread (`torch_threads`; None leaves
it alone): on tiny tensors extra threads only contend. Depends on pytest, torch and `orchestrator`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from orchestrator import (
    Activation,
    AdversarialLoss,
    Architecture,
    Augmentation,
    BuildContext,
    Choice,
    DataBundle,
    Dataset,
    Fixed,
    Float,
    Int,
    Loss,
    MixedTargets,
    Optimizer,
    Regularizer,
    RegularizerEffect,
    Schedule,
    Text,
)
from orchestrator.api.components import INPUT_KINDS, TASKS

__all__ = [
    "ActivationConformance",
    "ArchitectureConformance",
    "AugmentationConformance",
    "BATCH_SIZE",
    "ConformanceError",
    "DatasetConformance",
    "LossConformance",
    "OUTPUT_SIZES",
    "OptimizerConformance",
    "RegularizerConformance",
    "SAMPLE_SHAPES",
    "ScheduleConformance",
    "default_params",
    "default_registry",
    "make_context",
    "range_cases",
    "registered",
    "sample_input",
]

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


# ---------------------------------------------------------------------------
# Helpers, usable on their own
# ---------------------------------------------------------------------------


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
        _expect(isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor), f"{split} split is not tensors")
        return x, y
    _expect(hasattr(x, "__getitem__") and hasattr(x, "__len__"), f"streamed {split} split is not a map-style Dataset")
    items = [x[i] for i in range(min(STREAMED_ROWS, len(x)))]
    _expect(
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


def sample_input(shape: tuple[int, ...], n: int = BATCH_SIZE, seed: int = 0, input_kind: str = "") -> torch.Tensor:
    """A reproducible standard-normal batch of shape (n, *shape), independent of the global RNG; for `tokens`,
    int64 ids in 0..SAMPLE_VOCAB - 1."""
    generator = torch.Generator().manual_seed(seed)
    if input_kind == "tokens":
        return torch.randint(0, SAMPLE_VOCAB, (n, *shape), generator=generator)
    return torch.randn(n, *shape, generator=generator)


def _expect(condition: Any, message: str) -> None:
    __tracebackhide__ = True
    if not condition:
        raise ConformanceError(message)


@contextlib.contextmanager
def _case(spec: Any, label: str) -> Iterator[None]:
    """Name the component and the case in any failure raised inside (plugin errors included)."""
    __tracebackhide__ = True
    try:
        yield
    except ConformanceError as exc:
        raise ConformanceError(f"{spec.kind} {spec.name!r} [{label}]: {exc}") from exc
    except Exception as exc:
        raise ConformanceError(f"{spec.kind} {spec.name!r} [{label}]: {type(exc).__name__}: {exc}") from exc


def _finite(tensor: Any, what: str) -> None:
    _expect(isinstance(tensor, torch.Tensor), f"{what} is not a tensor: {type(tensor).__name__}")
    _expect(tensor.is_floating_point(), f"{what} has dtype {tensor.dtype}, expected a floating dtype")
    _expect(bool(torch.isfinite(tensor).all()), f"{what} is not finite")


# ---------------------------------------------------------------------------
# The base class
# ---------------------------------------------------------------------------


class _ComponentConformance:
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

    def test_spec_is_well_formed(self, spec: Any) -> None:
        _expect(
            isinstance(spec, self.spec_type), f"expected a {self.spec_type.__name__} spec, got {type(spec).__name__}"
        )
        _expect(
            isinstance(spec.description, str) and spec.description.strip(),
            f"{self.kind} {spec.name!r} has no description",
        )
        for name, param in spec.params.items():
            _expect(
                isinstance(name, str) and name.isidentifier() and "." not in name,
                f"{self.kind} {spec.name!r}: parameter name {name!r} is not an identifier",
            )
            _expect(
                isinstance(param, PARAM_TYPES),
                f"{self.kind} {spec.name!r}: parameter {name!r} is a {type(param).__name__}, "
                f"not one of Float, Int, Choice, Fixed, Text",
            )

    def test_defaults_lie_inside_declared_ranges(self, spec: Any) -> None:
        for name, param in spec.params.items():
            _expect(
                param.contains(param.default),
                f"{self.kind} {spec.name!r}: default {param.default!r} of {name!r} is outside its "
                f"declared {param.describe()}",
            )


# ---------------------------------------------------------------------------
# Architectures
# ---------------------------------------------------------------------------


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


class ArchitectureConformance(_ComponentConformance):
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
        for input_kind in spec.input_kinds:
            for task in spec.tasks:
                yield f"input_kind={input_kind}, task={task}", make_context(input_kind, task)

    def first_task_contexts(self, spec: Architecture, **overrides: Any) -> Iterator[tuple[str, BuildContext]]:
        """One context per declared input kind, for the first declared task."""
        for input_kind in spec.input_kinds:
            yield f"input_kind={input_kind}", make_context(input_kind, spec.tasks[0], **overrides)

    def build(
        self, spec: Architecture, params: Mapping[str, Any], ctx: BuildContext, seed: int | None = None
    ) -> nn.Module:
        torch.manual_seed(self.seed if seed is None else seed)
        model = spec.build(dict(params), ctx)
        _expect(isinstance(model, nn.Module), f"build returned {type(model).__name__}, not an nn.Module")
        return model

    def run(self, model: nn.Module, ctx: BuildContext, input_seed: int = 0) -> dict[str, torch.Tensor]:
        """The outputs to judge: `output` = model(x); generative: `generator(z)` and `discriminator(x)`."""
        x = sample_input(ctx.input_shape, seed=input_seed, input_kind=ctx.input_kind)
        if ctx.task != "generative":
            return {"output": model(x)}
        missing = [a for a in ("generator", "discriminator", "latent_dim") if not hasattr(model, a)]
        _expect(not missing, f"a generative architecture's module lacks {missing}")
        _expect(
            isinstance(model.latent_dim, int) and model.latent_dim >= 1,
            f"latent_dim must be an int >= 1, got {model.latent_dim!r}",
        )
        z = torch.randn(BATCH_SIZE, model.latent_dim, generator=torch.Generator().manual_seed(input_seed + 1000))
        return {"generator": model.generator(z), "discriminator": model.discriminator(x)}

    def check_outputs(self, outputs: Mapping[str, torch.Tensor], ctx: BuildContext) -> None:
        for what, tensor in outputs.items():
            _finite(tensor, what)
        if ctx.task == "generative":
            _expect(
                tuple(outputs["generator"].shape) == (BATCH_SIZE, *ctx.input_shape),
                f"generator output has shape {tuple(outputs['generator'].shape)}, expected "
                f"{(BATCH_SIZE, *ctx.input_shape)} (a sample shaped like the input)",
            )
            _expect(
                tuple(outputs["discriminator"].shape) in ((BATCH_SIZE, 1), (BATCH_SIZE,)),
                f"discriminator output has shape {tuple(outputs['discriminator'].shape)}, expected "
                f"{(BATCH_SIZE, 1)} (one logit per sample)",
            )
        else:
            _expect(
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
        objective = sum((t * torch.randn(t.shape, generator=weights)).sum() for t in outputs.values())
        objective.backward()
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        _expect(trainable, "the module has no trainable parameters")
        missing = [n for n, p in trainable if p.grad is None]
        _expect(not missing, f"no gradient reaches parameters {missing[:5]} (unused in forward?)")
        bad = [n for n, p in trainable if not torch.isfinite(p.grad).all()]
        _expect(not bad, f"non-finite gradients for {bad[:5]}")
        _expect(any(p.grad.abs().sum() > 0 for _, p in trainable), "every gradient is zero")

    def check_works(self, spec: Architecture, params: Mapping[str, Any], ctx: BuildContext) -> None:
        model = self.build(spec, params, ctx)
        self.check_outputs(self.run(model, ctx), ctx)
        self.check_trains(model, ctx)

    # -- checks -------------------------------------------------------------

    def test_declares_input_kinds_and_tasks(self, spec: Architecture) -> None:
        _expect(
            spec.input_kinds and set(spec.input_kinds) <= set(INPUT_KINDS),
            f"input_kinds {spec.input_kinds!r} must be a non-empty subset of {INPUT_KINDS}",
        )
        _expect(
            spec.tasks and set(spec.tasks) <= set(TASKS),
            f"tasks {spec.tasks!r} must be a non-empty subset of classification, regression, generative",
        )

    def test_output_shape_for_every_declared_input_kind_and_task(self, spec: Architecture) -> None:
        """Builds at its defaults for each declared input kind x task; (N, output_size) finite outputs
        that depend on the input."""
        params = default_params(spec.params)
        for label, ctx in self.contexts(spec):
            with _case(spec, label):
                model = self.build(spec, params, ctx).eval()
                with torch.no_grad():
                    outputs = self.run(model, ctx)
                    self.check_outputs(outputs, ctx)
                    others = self.run(model, ctx, input_seed=1)
                for what in outputs:
                    _expect(
                        not torch.equal(outputs[what], others[what]),
                        f"{what} is the same for different inputs: the input is ignored",
                    )

    def test_backward_reaches_every_parameter(self, spec: Architecture) -> None:
        params = default_params(spec.params)
        for label, ctx in self.contexts(spec):
            with _case(spec, label):
                self.check_trains(self.build(spec, params, ctx), ctx)

    def test_respects_declared_ranges(self, spec: Architecture) -> None:
        """Builds, runs and trains at each range end and Choice value (first declared task)."""
        for case_label, params in range_cases(spec.params, self.max_int_value):
            for label, ctx in self.first_task_contexts(spec):
                with _case(spec, f"{case_label}, {label}"):
                    self.check_works(spec, params, ctx)

    def test_deterministic_under_a_seed(self, spec: Architecture) -> None:
        """The same torch seed builds the same network: identical outputs (eval mode)."""
        params = default_params(spec.params)
        for label, ctx in self.first_task_contexts(spec):
            with _case(spec, label):
                runs = []
                for _ in range(2):
                    model = self.build(spec, params, ctx, seed=self.seed).eval()
                    with torch.no_grad():
                        runs.append(self.run(model, ctx))
                for what in runs[0]:
                    _expect(
                        torch.equal(runs[0][what], runs[1][what]),
                        f"{what} differs between two builds with the same seed",
                    )

    def test_uses_the_context_activation(self, spec: Architecture) -> None:
        if not self.uses_activation:
            pytest.skip("opted out: uses_activation = False")
        for label, ctx in self.first_task_contexts(spec, activation=_ActivationProbe):
            with _case(spec, f"{label}, activation=probe"):
                model = self.build(spec, default_params(spec.params), ctx)
                probes = [m for m in model.modules() if isinstance(m, _ActivationProbe)]
                _expect(
                    probes,
                    "ctx.activation() was not used: no module of the activation class it returns is in the network",
                )
                self.run(model, ctx)
                _expect(any(p.calls for p in probes), "the ctx.activation() modules are never called in forward")

    def test_uses_the_context_dropout(self, spec: Architecture) -> None:
        if not self.uses_dropout:
            pytest.skip("opted out: uses_dropout = False")
        rate = 0.37
        for label, ctx in self.first_task_contexts(spec, dropout=rate):
            with _case(spec, f"{label}, dropout={rate}"):
                model = self.build(spec, default_params(spec.params), ctx)
                rates = [m.p for m in model.modules() if isinstance(m, DROPOUT_TYPES)]
                _expect(
                    rate in rates,
                    f"ctx.dropout={rate} was not used: no dropout module with p={rate} (dropout rates found: {rates})",
                )
                model.train()
                with torch.no_grad():
                    first, second = self.run(model, ctx), self.run(model, ctx)
                _expect(
                    any(not torch.equal(first[w], second[w]) for w in first),
                    "dropout has no effect in training mode (two forward passes are identical)",
                )
                model.eval()
                with torch.no_grad():
                    first, second = self.run(model, ctx), self.run(model, ctx)
                _expect(all(torch.equal(first[w], second[w]) for w in first), "outputs are random in eval mode")

    def test_uses_the_context_norm(self, spec: Architecture) -> None:
        if not self.uses_norm:
            pytest.skip("opted out: uses_norm = False")
        for label, ctx in self.first_task_contexts(spec, norm=_NormProbe):
            with _case(spec, f"{label}, norm=probe"):
                model = self.build(spec, default_params(spec.params), ctx)
                probes = [m for m in model.modules() if isinstance(m, _NormProbe)]
                _expect(probes, "ctx.norm was not used: no module it returned is in the network")
                bad = [p.layout for p in probes if p.layout not in NORM_LAYOUT_SHAPES]
                _expect(not bad, f"ctx.norm called with unknown layouts {bad}; use one of {list(NORM_LAYOUT_SHAPES)}")
                self.run(model, ctx)
                _expect(any(p.calls for p in probes), "the ctx.norm modules are never called in forward")
                mismatches = [m for p in probes for m in p.mismatches]
                _expect(not mismatches, "ctx.norm was given the wrong features or layout: " + "; ".join(mismatches[:3]))


# ---------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------


class ActivationConformance(_ComponentConformance):
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
        _expect(isinstance(module, nn.Module), f"build returned {type(module).__name__}, not an nn.Module")
        return module

    def check_works(self, spec: Activation, params: Mapping[str, Any]) -> None:
        module = self.build(spec, params)
        for shape in self.shapes:
            x = (3 * sample_input(shape[1:], n=shape[0])).requires_grad_()
            y = module(x)
            _expect(
                isinstance(y, torch.Tensor) and tuple(y.shape) == shape,
                f"output shape {tuple(getattr(y, 'shape', ()))} differs from the input's {shape}",
            )
            _finite(y, f"output on {shape}")
            y.sum().backward()
            _finite(x.grad, f"input gradient on {shape}")
            _expect(x.grad.abs().sum() > 0, f"the gradient through it is zero everywhere on {shape}")
        big = torch.tensor([-1e4, -50.0, 0.0, 50.0, 1e4])
        _finite(module(big), "output on large inputs")

    def test_works_for_every_shape(self, spec: Activation) -> None:
        with _case(spec, "defaults"):
            self.check_works(spec, default_params(spec.params))

    def test_returns_a_fresh_module_per_call(self, spec: Activation) -> None:
        """build is called once per layer: layers must not share one module (or its parameters)."""
        params = default_params(spec.params)
        with _case(spec, "defaults"):
            first, second = self.build(spec, params), self.build(spec, params)
            _expect(first is not second, "build returned the same module twice (layers would share it)")
            shared = {id(p) for p in first.parameters()} & {id(p) for p in second.parameters()}
            _expect(not shared, "two built modules share parameters")

    def test_is_nonlinear(self, spec: Activation) -> None:
        if not self.nonlinear:
            pytest.skip("opted out: nonlinear = False")
        with _case(spec, "defaults"):
            module = self.build(spec, default_params(spec.params)).eval()
            x, y = 3 * sample_input((64,), n=1, seed=1), 3 * sample_input((64,), n=1, seed=2)
            with torch.no_grad():
                _expect(
                    not torch.allclose(module(x + y), module(x) + module(y), atol=1e-4),
                    "f(x + y) == f(x) + f(y): the activation is linear",
                )

    def test_respects_declared_ranges(self, spec: Activation) -> None:
        for label, params in range_cases(spec.params, self.max_int_value):
            with _case(spec, label):
                self.check_works(spec, params)

    def test_deterministic_under_a_seed(self, spec: Activation) -> None:
        with _case(spec, "defaults"):
            x = 3 * sample_input((5,))
            outputs = []
            for _ in range(2):
                module = self.build(spec, default_params(spec.params))
                torch.manual_seed(self.seed)
                outputs.append(module(x))
            _expect(torch.equal(outputs[0], outputs[1]), "outputs differ under the same seed")


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------


class LossConformance(_ComponentConformance):
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
            _expect(
                isinstance(fn, AdversarialLoss),
                f"for the generative task build must return an AdversarialLoss, got {type(fn).__name__}",
            )
            _expect(callable(fn.discriminator) and callable(fn.generator), "AdversarialLoss parts must be callable")
        else:
            _expect(callable(fn), f"build returned {type(fn).__name__}, which is not callable")
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
            _expect(
                isinstance(value, torch.Tensor) and value.ndim == 0,
                f"{what} is not a scalar tensor: {getattr(value, 'shape', type(value).__name__)}",
            )
            _finite(value, what)
            _expect(value.requires_grad, f"{what} does not depend differentiably on the outputs")
        total = sum(value for _, value in self.evaluate(fn, task, outputs, targets))
        total.backward()
        for what, tensor in (("outputs", outputs), ("targets (fake logits)", targets)):
            if tensor.requires_grad:
                _expect(tensor.grad is not None, f"no gradient reaches the {what}")
                _finite(tensor.grad, f"gradient of the {what}")
                _expect(tensor.grad.abs().sum() > 0, f"the gradient of the {what} is zero")

    def test_declares_tasks(self, spec: Loss) -> None:
        _expect(
            spec.tasks and set(spec.tasks) <= set(TASKS),
            f"tasks {spec.tasks!r} must be a non-empty subset of classification, regression, generative",
        )

    def test_finite_scalar_and_gradients_for_every_declared_task(self, spec: Loss) -> None:
        for task in spec.tasks:
            with _case(spec, f"task={task}"):
                self.check_works(spec, default_params(spec.params), task)

    def test_prefers_correct_predictions(self, spec: Loss) -> None:
        if not self.prefers_correct:
            pytest.skip("opted out: prefers_correct = False")
        for task in spec.tasks:
            with _case(spec, f"task={task}"):
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
                    _expect(
                        right < wrong,
                        f"{what} for correct predictions ({float(right):.4g}) is not below "
                        f"the {what} for wrong ones ({float(wrong):.4g})",
                    )

    def test_respects_declared_ranges(self, spec: Loss) -> None:
        for label, params in range_cases(spec.params, self.max_int_value):
            for task in spec.tasks:
                with _case(spec, f"{label}, task={task}"):
                    self.check_works(spec, params, task)

    def test_deterministic_under_a_seed(self, spec: Loss) -> None:
        for task in spec.tasks:
            with _case(spec, f"task={task}"):
                values = []
                for _ in range(2):
                    fn = self.build(spec, default_params(spec.params), task)
                    outputs, targets = self.batch(task)
                    torch.manual_seed(self.seed)
                    values.append([v for _, v in self.evaluate(fn, task, outputs, targets)])
                _expect(all(torch.equal(a, b) for a, b in zip(*values)), "the loss differs under the same seed")


# ---------------------------------------------------------------------------
# Optimizers
# ---------------------------------------------------------------------------


class OptimizerConformance(_ComponentConformance):
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
        _expect(
            isinstance(optimizer, torch.optim.Optimizer),
            f"build returned {type(optimizer).__name__}, not a torch.optim.Optimizer",
        )
        return optimizer

    def quadratic(self, parameters: list[nn.Parameter]) -> torch.Tensor:
        return sum(0.5 * self.curvature * p.pow(2).sum() for p in parameters)

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
            optimizer.step(closure)

    def check_works(self, spec: Optimizer, params: Mapping[str, Any]) -> None:
        parameters = self.parameters()
        optimizer = self.build(spec, params, parameters)
        held = [p for group in optimizer.param_groups for p in group["params"]]
        _expect(
            len(held) == len(parameters) and {id(p) for p in held} == {id(p) for p in parameters},
            f"the optimizer holds {len(held)} parameters, not exactly the {len(parameters)} it was given",
        )
        for group in optimizer.param_groups:
            lr = group.get("lr")
            _expect(
                isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0,
                f"each param group needs a finite lr > 0 (schedules scale it), got {lr!r}",
            )
        with torch.no_grad():
            before = float(self.quadratic(parameters))
        self.steps(optimizer, parameters, self.quadratic)
        with torch.no_grad():
            after = float(self.quadratic(parameters))
        _expect(
            math.isfinite(after) and after < before,
            f"one step did not reduce the quadratic loss: {before:.6g} -> {after:.6g}",
        )

    def test_step_reduces_a_quadratic(self, spec: Optimizer) -> None:
        with _case(spec, "defaults"):
            self.check_works(spec, default_params(spec.params))

    def test_respects_declared_ranges(self, spec: Optimizer) -> None:
        for label, params in range_cases(spec.params, self.max_int_value):
            with _case(spec, label):
                self.check_works(spec, params)

    def test_honours_the_context_weight_decay(self, spec: Optimizer) -> None:
        """With a zero loss gradient, ctx.weight_decay = 0.1 shrinks the weights more than 0.0."""
        if not self.uses_weight_decay:
            pytest.skip("opted out: uses_weight_decay = False")
        with _case(spec, "defaults, weight_decay 0.0 vs 0.1"):
            norms = []
            for weight_decay in (0.0, 0.1):
                parameters = self.parameters()
                optimizer = self.build(spec, default_params(spec.params), parameters, weight_decay)
                self.steps(optimizer, parameters, lambda ps: sum((p * 0).sum() for p in ps), n=3)
                norms.append(float(sum(p.detach().pow(2).sum() for p in parameters)))
            _expect(
                norms[1] < norms[0],
                f"ctx.weight_decay is ignored: |w|^2 is {norms[1]:.8g} with 0.1 and {norms[0]:.8g} with 0.0",
            )

    def test_deterministic_under_a_seed(self, spec: Optimizer) -> None:
        with _case(spec, "defaults"):
            results = []
            for _ in range(2):
                parameters = self.parameters()
                self.steps(self.build(spec, default_params(spec.params), parameters), parameters, self.quadratic, n=3)
                results.append([p.detach().clone() for p in parameters])
            _expect(all(torch.equal(a, b) for a, b in zip(*results)), "three steps give different weights")


# ---------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------


class ScheduleConformance(_ComponentConformance):
    """A Schedule returns None (a constant rate) or an LRScheduler bound to the optimizer it is given
    that steps `max_epochs * steps_per_epoch` times (interval `step`) or `max_epochs` times
    (interval `epoch`) without error, keeping the learning rate finite and >= 0; at its defaults
    and every range end, for each (max_epochs, steps_per_epoch) in `trainings`."""

    kind = "schedule"
    spec_type = Schedule
    trainings: ClassVar[tuple[tuple[int, int], ...]] = ((3, 4), (1, 1), (2, 50))
    base_lr: ClassVar[float] = 0.1

    def run_schedule(
        self, spec: Schedule, params: Mapping[str, Any], max_epochs: int, steps_per_epoch: int
    ) -> list[float] | None:
        """Train-loop the schedule; the learning rate after every optimizer step (None: no scheduler)."""
        torch.manual_seed(self.seed)
        weight = nn.Parameter(torch.ones(3))
        optimizer = torch.optim.SGD([weight], lr=self.base_lr)
        ctx = make_context("vector", "classification", max_epochs=max_epochs, steps_per_epoch=steps_per_epoch)
        scheduler = spec.build(dict(params), optimizer, ctx)
        if scheduler is None:
            return None
        _expect(
            isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler),
            f"build returned {type(scheduler).__name__}, not None or a torch LRScheduler",
        )
        _expect(scheduler.optimizer is optimizer, "the scheduler is not bound to the optimizer it was given")
        lrs = []
        for _epoch in range(max_epochs):
            for _step in range(steps_per_epoch):
                optimizer.zero_grad()
                weight.sum().backward()
                optimizer.step()
                if spec.interval == "step":
                    scheduler.step()
                lrs.append(optimizer.param_groups[0]["lr"])
            if spec.interval == "epoch":
                scheduler.step()
        for i, lr in enumerate(lrs):
            _expect(
                isinstance(lr, (int, float)) and math.isfinite(lr) and lr >= 0,
                f"learning rate after step {i + 1} is {lr!r}",
            )
        return lrs

    def check_works(self, spec: Schedule, params: Mapping[str, Any]) -> None:
        for max_epochs, steps_per_epoch in self.trainings:
            try:
                self.run_schedule(spec, params, max_epochs, steps_per_epoch)
            except Exception as exc:
                error = str(exc) if isinstance(exc, ConformanceError) else f"{type(exc).__name__}: {exc}"
                raise ConformanceError(f"max_epochs={max_epochs}, steps_per_epoch={steps_per_epoch}: {error}") from exc

    def test_interval_is_step_or_epoch(self, spec: Schedule) -> None:
        _expect(spec.interval in ("step", "epoch"), f"interval {spec.interval!r} is neither 'step' nor 'epoch'")

    def test_steps_through_the_whole_training(self, spec: Schedule) -> None:
        with _case(spec, "defaults"):
            self.check_works(spec, default_params(spec.params))

    def test_respects_declared_ranges(self, spec: Schedule) -> None:
        for label, params in range_cases(spec.params, self.max_int_value):
            with _case(spec, label):
                self.check_works(spec, params)

    def test_deterministic_under_a_seed(self, spec: Schedule) -> None:
        with _case(spec, "defaults"):
            params = default_params(spec.params)
            _expect(
                self.run_schedule(spec, params, 3, 4) == self.run_schedule(spec, params, 3, 4),
                "the learning rates differ between two runs",
            )


# ---------------------------------------------------------------------------
# Regularizers
# ---------------------------------------------------------------------------


class RegularizerConformance(_ComponentConformance):
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
        _expect(
            isinstance(effect, RegularizerEffect), f"build returned {type(effect).__name__}, not a RegularizerEffect"
        )
        fields = ("dropout", "norm", "penalty", "weight_decay", "grad_clip", "early_stopping_patience")
        _expect(any(getattr(effect, f) is not None for f in fields), "the effect sets no field: it does nothing")
        if effect.dropout is not None:
            _expect(
                isinstance(effect.dropout, (int, float)) and 0 <= effect.dropout < 1,
                f"dropout must be in [0, 1), got {effect.dropout!r}",
            )
        if effect.weight_decay is not None:
            _expect(
                isinstance(effect.weight_decay, (int, float))
                and math.isfinite(effect.weight_decay)
                and effect.weight_decay >= 0,
                f"weight_decay must be finite and >= 0, got {effect.weight_decay!r}",
            )
        if effect.grad_clip is not None:
            _expect(
                isinstance(effect.grad_clip, (int, float)) and math.isfinite(effect.grad_clip) and effect.grad_clip > 0,
                f"grad_clip must be finite and > 0, got {effect.grad_clip!r}",
            )
        if effect.early_stopping_patience is not None:
            patience = effect.early_stopping_patience
            _expect(
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
            _expect(isinstance(module, nn.Module), f"norm({features}, {layout!r}) returned {type(module).__name__}")
            x = (2 + 3 * sample_input(shape[1:], n=shape[0])).requires_grad_()
            module.train()
            y = module(x)
            _expect(
                tuple(y.shape) == shape, f"norm({features}, {layout!r}) changed the shape {shape} to {tuple(y.shape)}"
            )
            _finite(y, f"norm({features}, {layout!r}) output")
            (y * sample_input(shape[1:], n=shape[0], seed=3)).sum().backward()
            _finite(x.grad, f"norm({features}, {layout!r}) input gradient")
            module.eval()
            with torch.no_grad():
                _finite(module(x), f"norm({features}, {layout!r}) output in eval mode")

    def check_penalty(self, penalty: Callable[[nn.Module], torch.Tensor]) -> None:
        model = self.model()
        value = penalty(model)
        _expect(
            isinstance(value, torch.Tensor) and value.ndim == 0,
            f"penalty(model) is not a scalar tensor: {getattr(value, 'shape', type(value).__name__)}",
        )
        _finite(value, "penalty")
        _expect(value.requires_grad, "the penalty does not depend differentiably on the model's parameters")
        value.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        _expect(grads and all(torch.isfinite(g).all() for g in grads), "the penalty gives no finite gradients")
        _expect(any(g.abs().sum() > 0 for g in grads), "the penalty's gradient is zero")
        _expect(torch.equal(penalty(model).detach(), value.detach()), "the penalty differs between two calls")

    def test_effect_at_defaults(self, spec: Regularizer) -> None:
        with _case(spec, "defaults"):
            self.check_effect(spec, default_params(spec.params))

    def test_respects_declared_ranges(self, spec: Regularizer) -> None:
        for label, params in range_cases(spec.params, self.max_int_value):
            with _case(spec, label):
                self.check_effect(spec, params)

    def test_deterministic_under_a_seed(self, spec: Regularizer) -> None:
        with _case(spec, "defaults"):
            first, second = (self.check_effect(spec, default_params(spec.params)) for _ in range(2))
            for field in ("dropout", "weight_decay", "grad_clip", "early_stopping_patience"):
                _expect(getattr(first, field) == getattr(second, field), f"{field} differs between two builds")
            if first.penalty is not None:
                model = self.model()
                _expect(torch.equal(first.penalty(model), second.penalty(model)), "penalties differ between two builds")


# ---------------------------------------------------------------------------
# Augmentations
# ---------------------------------------------------------------------------


class AugmentationConformance(_ComponentConformance):
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
        for input_kind in spec.input_kinds:
            for task in spec.tasks:
                yield f"input_kind={input_kind}, task={task}", make_context(input_kind, task)

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
        _expect(callable(augment), f"build returned {type(augment).__name__}, which is not callable")
        result = augment(x, y)
        _expect(
            isinstance(result, (tuple, list)) and len(result) == 2,
            f"augment(x, y) returned {type(result).__name__}, not an (x, y) pair",
        )
        return result[0], result[1]

    def check_result(self, ctx: BuildContext, x: torch.Tensor, y: torch.Tensor, out_x: Any, out_y: Any) -> None:
        _expect(isinstance(out_x, torch.Tensor), f"the augmented x is not a tensor: {type(out_x).__name__}")
        _expect(
            tuple(out_x.shape) == tuple(x.shape),
            f"the augmented x has shape {tuple(out_x.shape)}, the input {tuple(x.shape)}",
        )
        _expect(out_x.dtype == x.dtype, f"the augmented x has dtype {out_x.dtype}, the input {x.dtype}")
        _expect(out_x.device == x.device, f"the augmented x is on {out_x.device}, the input on {x.device}")
        if ctx.input_kind == "tokens":
            vocab = int(ctx.vocab_size or SAMPLE_VOCAB)
            _expect(
                len(out_x) == 0 or (int(out_x.min()) >= 0 and int(out_x.max()) < vocab),
                f"the augmented token ids leave 0..{vocab - 1}",
            )
        else:
            _finite(out_x, "the augmented x")
        if isinstance(out_y, MixedTargets):
            weight = out_y.weight
            is_number = isinstance(weight, (int, float)) and not isinstance(weight, bool)
            is_scalar = isinstance(weight, torch.Tensor) and weight.ndim == 0
            _expect(is_number or is_scalar, f"MixedTargets.weight is {type(weight).__name__}, not a number")
            _expect(
                math.isfinite(float(weight)) and 0.0 <= float(weight) <= 1.0,
                f"MixedTargets.weight is {float(weight)!r}, outside [0, 1]",
            )
            for part in ("a", "b"):
                target = getattr(out_y, part)
                _expect(isinstance(target, torch.Tensor), f"MixedTargets.{part} is not a tensor")
                _expect(
                    tuple(target.shape) == tuple(y.shape) and target.dtype == y.dtype and target.device == y.device,
                    f"MixedTargets.{part} is {target.dtype} {tuple(target.shape)} on {target.device}, the targets "
                    f"{y.dtype} {tuple(y.shape)} on {y.device}",
                )
        else:
            _expect(
                isinstance(out_y, torch.Tensor),
                f"the returned y is {type(out_y).__name__}, not the targets (a tensor) or MixedTargets",
            )
            _expect(
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
        _expect(
            torch.equal(data_x, kept_x),
            "augment wrote into the input batch (a view of the data set): it must "
            "return a new tensor, not change the caller's",
        )
        _expect(torch.equal(data_y, kept_y), "augment wrote into the targets (a view of the data set)")
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
        _expect(
            spec.input_kinds and set(spec.input_kinds) <= set(INPUT_KINDS),
            f"augmentation {spec.name!r}: input_kinds {spec.input_kinds!r} must be a non-empty subset of {INPUT_KINDS}",
        )
        _expect(
            spec.tasks and set(spec.tasks) <= set(self.tasks),
            f"augmentation {spec.name!r}: tasks {spec.tasks!r} must be a non-empty subset of {self.tasks} (the "
            f"tasks whose training batches are augmented)",
        )

    def test_contract_for_every_declared_input_kind_and_task(self, spec: Augmentation) -> None:
        params = default_params(spec.params)
        for label, ctx in self.contexts(spec):
            for device in self.devices():
                for n in (self.batch_size, 1):
                    with _case(spec, f"{label}, device={device}, batch={n}"):
                        self.check_works(spec, params, ctx, n, device)

    def test_respects_declared_ranges(self, spec: Augmentation) -> None:
        for case_label, params in range_cases(spec.params, self.max_int_value):
            for label, ctx in self.contexts(spec):
                with _case(spec, f"{case_label}, {label}"):
                    self.check_works(spec, params, ctx, self.batch_size)

    def test_deterministic_under_a_seed(self, spec: Augmentation) -> None:
        params = default_params(spec.params)
        for label, ctx in self.contexts(spec):
            with _case(spec, label):
                x, y = self.data(ctx, self.batch_size)
                first, second = (self.run(spec, params, ctx, x, y) for _ in range(2))
                _expect(self.same(first, second), f"two runs under torch.manual_seed({self.seed}) differ")

    def test_changes_the_batch(self, spec: Augmentation) -> None:
        if not self.changes_batch:
            pytest.skip("opted out: changes_batch = False")
        params = default_params(spec.params)
        for label, ctx in self.contexts(spec):
            with _case(spec, f"defaults, {label}"):
                x, y = self.data(ctx, self.batch_size)
                results = [self.run(spec, params, ctx, x, y, seed=self.seed + draw) for draw in range(self.draws)]
                _expect(
                    any(not self.same(result, (x, y)) for result in results),
                    f"the batch came back unchanged in {self.draws} draws (seeds {self.seed}.."
                    f"{self.seed + self.draws - 1}): the augmentation does nothing at its defaults",
                )


# ---------------------------------------------------------------------------
# Data sets
# ---------------------------------------------------------------------------


class DatasetConformance(_ComponentConformance):
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
        _expect(isinstance(data, DataBundle), f"build returned {type(data).__name__}, not a DataBundle")
        _expect(data.task in spec.tasks, f"task {data.task!r} is not among the declared tasks {spec.tasks}")
        expected_kind = spec.probe(dict(params))[1] if spec.probe is not None else spec.input_kind
        if spec.probe is not None:
            _expect(spec.probe(dict(params))[0] == data.task, "probe() and build() disagree on the task")
        _expect(
            data.input_kind == expected_kind,
            f"input_kind {data.input_kind!r} differs from the declared {expected_kind!r}",
        )
        _expect(
            isinstance(data.output_size, int) and data.output_size >= 1,
            f"output_size must be an int >= 1, got {data.output_size!r}",
        )
        _expect(
            isinstance(data.target_scale, (int, float)) and math.isfinite(data.target_scale) and data.target_scale > 0,
            f"target_scale must be finite and > 0, got {data.target_scale!r}",
        )
        shape = None
        for split in ("train", "val", "test"):
            x, y = split_tensors(data, split)
            _expect(len(x) > 0, f"the {split} split is empty")
            _expect(len(x) == len(y), f"{split}: {len(x)} inputs but {len(y)} targets")
            _expect(
                x.ndim == 1 + self.ndims[data.input_kind],
                f"x_{split} has shape {tuple(x.shape)}: a {data.input_kind} batch has "
                f"{1 + self.ndims[data.input_kind]} dimensions",
            )
            _expect(
                shape is None or tuple(x.shape[1:]) == shape,
                f"x_{split} has sample shape {tuple(x.shape[1:])}, x_train {shape}",
            )
            shape = tuple(x.shape[1:])
            if data.input_kind == "tokens":
                _expect(
                    isinstance(data.vocab_size, int) and data.vocab_size >= 2,
                    f"tokens data needs vocab_size >= 2, got {data.vocab_size!r}",
                )
                _expect(
                    x.dtype == torch.int64 and int(x.min()) >= 0 and int(x.max()) < data.vocab_size,
                    f"x_{split} must be int64 token ids in 0..{data.vocab_size - 1}",
                )
            else:
                _finite(x, f"x_{split}")
            if data.task == "classification":
                _expect(
                    data.output_size >= 2, f"a classification data set needs output_size >= 2, got {data.output_size}"
                )
                _expect(
                    y.dtype == torch.int64 and y.ndim == 1,
                    f"y_{split} must be int64 class indices (N,), got {y.dtype} {tuple(y.shape)}",
                )
                _expect(
                    int(y.min()) >= 0 and int(y.max()) < data.output_size,
                    f"y_{split} has classes outside 0..{data.output_size - 1}",
                )
            elif data.task == "regression":
                _finite(y, f"y_{split}")
                _expect(
                    tuple(y.shape) == (len(x), data.output_size),
                    f"y_{split} has shape {tuple(y.shape)}, expected (N, output_size) = {(len(x), data.output_size)}",
                )
        if data.task == "classification" and not data.streaming:
            _expect(len(data.y_train.unique()) >= 2, "the training split holds a single class")

    def test_builds_a_valid_bundle_at_defaults(self, spec: Dataset, dataset_params: Mapping[str, Any]) -> None:
        params = self.params_or_skip(spec, dataset_params)
        with _case(spec, "defaults"):
            self.check_bundle(spec, spec.build(dict(params), self.seed), params)

    def test_deterministic_under_a_seed(self, spec: Dataset, dataset_params: Mapping[str, Any]) -> None:
        params = self.params_or_skip(spec, dataset_params)
        with _case(spec, f"defaults, seed={self.seed}"):
            first, second = (spec.build(dict(params), self.seed) for _ in range(2))
            for split in ("train", "val", "test"):
                for name, a, b in zip(
                    (f"x_{split}", f"y_{split}"), split_tensors(first, split), split_tensors(second, split)
                ):
                    _expect(torch.equal(a, b), f"{name} differs between two builds with the same seed")
