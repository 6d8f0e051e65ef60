"""Every registered built-in component through the conformance kit (`orchestrator.testing`), a
third-party plugin using the kit, and the kit catching broken plugins.

The components are discovered from the registry at collection time, so a newly added built-in is
checked without touching this file (the test ids are the component names)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from test_readme import code_block
from torch import nn

from orchestrator import Architecture, BuildContext, Choice, Int, Loss, Optimizer
from orchestrator.api.registry import DISABLE_AUTOLOAD_ENV, LOAD_ONLY_ENV, load_registry
from orchestrator.testing import (
    ActivationConformance,
    ArchitectureConformance,
    ConformanceError,
    DatasetConformance,
    LossConformance,
    OptimizerConformance,
    RegularizerConformance,
    ScheduleConformance,
    range_cases,
)

pytest_plugins = ["pytester"]


def _builtin_registry():
    """The built-ins only: loaded from an empty directory with the plugin env vars cleared."""
    saved_cwd = Path.cwd()
    saved_env = {k: os.environ.pop(k) for k in (DISABLE_AUTOLOAD_ENV, LOAD_ONLY_ENV) if k in os.environ}
    with tempfile.TemporaryDirectory() as empty:
        os.chdir(empty)
        try:
            return load_registry()
        finally:
            os.chdir(saved_cwd)
            os.environ.update(saved_env)


REGISTRY = _builtin_registry()

# Checks that built-ins are known to fail, as (kind, name, check): run anyway and expected to fail
# (strict: once the component is fixed, its entry must go). Keep this empty where possible.
KNOWN_FAILURES: dict[tuple[str, str, str], str] = {}


def test_builtins_load_without_errors():
    assert REGISTRY.errors == []
    assert all(
        REGISTRY.names(kind)
        for kind in ("architecture", "activation", "loss", "optimizer", "schedule", "regularizer", "dataset")
    )


def _builtins(kind: str):
    """A `component` fixture over every registered built-in of one kind (ids = names)."""

    @pytest.fixture(params=REGISTRY.names(kind))
    def component(self, request):
        known = KNOWN_FAILURES.get((kind, request.param, request.function.__name__))
        if known:
            request.applymarker(pytest.mark.xfail(reason=known, raises=ConformanceError, strict=True))
        return REGISTRY.get(kind, request.param).spec

    return component


class TestBuiltinArchitectures(ArchitectureConformance):
    component = _builtins("architecture")


class TestBuiltinActivations(ActivationConformance):
    component = _builtins("activation")


class TestBuiltinLosses(LossConformance):
    component = _builtins("loss")


class TestBuiltinOptimizers(OptimizerConformance):
    component = _builtins("optimizer")


class TestBuiltinSchedules(ScheduleConformance):
    component = _builtins("schedule")


class TestBuiltinRegularizers(RegularizerConformance):
    component = _builtins("regularizer")


def _csv_file(folder: Path) -> dict:
    """A small table: numeric and text features, a 3-class text target (task auto)."""
    rng = np.random.default_rng(0)
    rows = ["height,weight,colour,species"]
    for i in range(60):
        rows.append(
            f"{rng.normal(170, 10):.1f},{rng.normal(70, 8):.1f},{'red green blue'.split()[i % 3]},"
            f"{'ant bee cat'.split()[(i // 2) % 3]}"
        )
    (folder / "table.csv").write_text("\n".join(rows) + "\n")
    return {"path": str(folder / "table.csv")}


def _npz_file(folder: Path) -> dict:
    """Images (N, 1, 4, 4) with two regression targets per sample."""
    rng = np.random.default_rng(0)
    np.savez(folder / "arrays.npz", x=rng.normal(size=(60, 1, 4, 4)), y=rng.normal(size=(60, 2)))
    return {"path": str(folder / "arrays.npz"), "task": "regression"}


def _image_folder(folder: Path) -> dict:
    from test_image_folder import write_images

    write_images(folder / "images", per_class=10)
    return {"path": str(folder / "images"), "size": 8}


def _text_file(folder: Path) -> dict:
    from scripts.make_corpus import write_corpus

    write_corpus(folder / "corpus.csv", rows=120)
    return {"path": str(folder / "corpus.csv"), "length": 16}


def _npy_files(folder: Path) -> dict:
    """Sequences (N, 6, 2), streamed from disk, with 3 classes."""
    rng = np.random.default_rng(0)
    np.save(folder / "x.npy", rng.normal(size=(60, 6, 2)).astype(np.float32))
    np.save(folder / "y.npy", np.arange(60) % 3)
    return {"path": str(folder / "x.npy"), "targets": str(folder / "y.npy")}


# Sample files for the built-in data sets that read a user's file.
USER_FILES = {"csv": _csv_file, "npz": _npz_file, "image_folder": _image_folder, "text": _text_file, "npy": _npy_files}


def test_every_builtin_data_set_that_reads_a_file_has_a_sample_here(builtin_registry):
    """Otherwise the kit would skip it: a built-in data set that reads the user's file is covered by USER_FILES."""
    needing = {
        name
        for name in builtin_registry.names("dataset")
        if any(getattr(p, "is_path", False) for p in builtin_registry.get("dataset", name).spec.params.values())
    }
    assert needing == set(USER_FILES)


class TestBuiltinDatasets(DatasetConformance):
    component = _builtins("dataset")

    @pytest.fixture
    def dataset_params(self, spec, tmp_path):
        return USER_FILES[spec.name](tmp_path) if spec.name in USER_FILES else {}


# ---------------------------------------------------------------------------
# A third-party plugin using the kit: a tiny architecture defined here, checked by subclassing.
# ---------------------------------------------------------------------------


def build_tiny(params, ctx: BuildContext) -> nn.Module:
    """Flatten, one hidden layer with the context's norm, activation and dropout, a Linear head."""
    features = 1
    for size in ctx.input_shape:
        features *= size
    layers = [nn.Flatten(), nn.Linear(features, params["hidden"])]
    if ctx.norm is not None:
        layers.append(ctx.norm(params["hidden"], "vector"))
    layers.append(ctx.activation())
    if ctx.dropout > 0:
        layers.append(nn.Dropout(ctx.dropout))
    layers.append(nn.Linear(params["hidden"], ctx.output_size))
    return nn.Sequential(*layers)


TINY = Architecture(
    "tiny",
    "One hidden layer.",
    params={"hidden": Int(2, 32, default=8)},
    build=build_tiny,
    input_kinds=("vector", "image"),
    tasks=("classification", "regression"),
)


class TestThirdPartyArchitecture(ArchitectureConformance):
    """What a plugin author writes: override `component`; opt out of checks that do not apply."""

    uses_norm = False  # an opt-out, for the demonstration (this network would pass it too)

    @pytest.fixture
    def component(self):
        return TINY


# The README's own examples: the plugin file and the test that uses the kit on it.
SWISH_PLUGIN = code_block("python", "# plugins/swish.py")
SWISH_TEST = code_block("python", "# tests/test_swish.py")


def test_a_local_plugin_tested_by_name(pytester):
    """The README's example: a plugin in ./plugins/ and a test naming it; the kit loads the registry
    as `automl` would in that directory and runs every activation check on it."""
    pytester.mkdir("plugins").joinpath("swish.py").write_text(SWISH_PLUGIN)
    pytester.makepyfile(test_swish=SWISH_TEST)
    result = pytester.runpytest_inprocess("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(["*TestSwish::test_respects_declared_ranges PASSED*"])

    pytester.makepyfile(test_swish=SWISH_TEST.replace('"swish"', '"mish"'))
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=7)
    result.stdout.fnmatch_lines(["*no activation named 'mish' is registered*"])


def test_range_cases_cap_large_int_ranges_on_their_grid():
    params = {"width": Int(16, 4096, default=64, step=16), "depth": Int(1, 3, default=1)}
    assert range_cases(params, max_int_value=1000) == [
        ("width=16", {"width": 16, "depth": 1}),
        ("width=992", {"width": 992, "depth": 1}),
        ("depth=3", {"width": 64, "depth": 3}),
    ]
    assert range_cases(params)[1] == ("width=4096", {"width": 4096, "depth": 1})


# ---------------------------------------------------------------------------
# The kit catches broken plugins: each check raises ConformanceError naming the fault.
# ---------------------------------------------------------------------------


def broken_architecture(**changes) -> Architecture:
    def build(params, ctx):
        model = build_tiny(params, replace(ctx, activation=nn.ReLU) if changes.get("own_activation") else ctx)
        if changes.get("ignores_output_size"):
            model[-1] = nn.Linear(params["hidden"], 10)
        if changes.get("random"):

            class Noisy(nn.Module):  # draws from an unseeded generator: not reproducible
                def __init__(self):
                    super().__init__()
                    self.inner, self.rng = model, torch.Generator()
                    self.rng.seed()  # a non-deterministic seed for this generator only

                def forward(self, x):
                    return self.inner(x) + torch.randn(len(x), ctx.output_size, generator=self.rng)

            return Noisy()
        return model

    return Architecture(
        "broken",
        "A broken network.",
        params=changes.get("params", {"hidden": Int(2, 32, default=8)}),
        build=build,
        input_kinds=("vector",),
    )


def test_the_kit_catches_an_architecture_that_ignores_output_size():
    kit = ArchitectureConformance()
    with pytest.raises(
        ConformanceError,
        match=r"architecture 'broken' \[input_kind=vector, task=classification\]: "
        r"output has shape \(4, 10\), expected .* \(4, 3\)",
    ):
        kit.test_output_shape_for_every_declared_input_kind_and_task(broken_architecture(ignores_output_size=True))
    kit.test_output_shape_for_every_declared_input_kind_and_task(broken_architecture())  # the fixed one passes


def test_the_kit_catches_a_nondeterministic_architecture():
    kit = ArchitectureConformance()
    with pytest.raises(ConformanceError, match="differs between two builds with the same seed"):
        kit.test_deterministic_under_a_seed(broken_architecture(random=True))
    kit.test_deterministic_under_a_seed(broken_architecture())


def build_heads(params, ctx: BuildContext) -> nn.Module:
    """Splits `width` features into `heads` groups: only works when heads divides width."""
    width, heads = params["width"], params["heads"]
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(ctx.input_shape[0], width),
        ctx.activation(),
        nn.Unflatten(1, (heads, width // heads)),
        nn.Flatten(),
        nn.Linear(width, ctx.output_size),
    )


def test_the_kit_catches_ignored_context_and_bad_ranges():
    kit = ArchitectureConformance()
    with pytest.raises(ConformanceError, match=r"ctx.activation\(\) was not used"):
        kit.test_uses_the_context_activation(broken_architecture(own_activation=True))
    with pytest.raises(ConformanceError, match=r"default 64 of 'hidden' is outside its declared 2..32"):
        kit.test_defaults_lie_inside_declared_ranges(broken_architecture(params={"hidden": Int(2, 32, default=64)}))
    # Works at its defaults, but one declared Choice value cannot be built.
    heads = Architecture(
        "heads",
        "Grouped features.",
        build=build_heads,
        input_kinds=("vector",),
        params={"width": Int(8, 16, default=8, step=8), "heads": Choice((1, 2, 3), default=2)},
    )
    kit.test_output_shape_for_every_declared_input_kind_and_task(heads)
    with pytest.raises(ConformanceError, match=r"\[heads=3, input_kind=vector\]: RuntimeError"):
        kit.test_respects_declared_ranges(heads)


def test_the_kit_catches_broken_losses_and_optimizers():
    flat = Loss("flat", "Ignores the targets.", build=lambda params, ctx: lambda out, y: out.pow(2).mean())
    with pytest.raises(ConformanceError, match="loss for correct predictions .* is not below"):
        LossConformance().test_prefers_correct_predictions(flat)
    no_decay = Optimizer(
        "no_decay",
        "SGD that drops ctx.weight_decay.",
        build=lambda params, parameters, ctx: torch.optim.SGD(parameters, lr=0.1),
    )
    OptimizerConformance().test_step_reduces_a_quadratic(no_decay)
    with pytest.raises(ConformanceError, match="ctx.weight_decay is ignored"):
        OptimizerConformance().test_honours_the_context_weight_decay(no_decay)
    ascent = Optimizer(
        "ascent",
        "Steps uphill.",
        build=lambda params, parameters, ctx: torch.optim.SGD(
            parameters, lr=0.1, weight_decay=ctx.weight_decay, maximize=True
        ),
    )
    with pytest.raises(ConformanceError, match="did not reduce the quadratic"):
        OptimizerConformance().test_step_reduces_a_quadratic(ascent)


def test_the_kit_reports_failures_through_pytest(pytester):
    """A plugin author's test module: pytest reports the broken check, the others pass."""
    pytester.makepyfile(
        test_plugin="""
        import pytest
        from torch import nn
        from orchestrator import Architecture
        from orchestrator.testing import ArchitectureConformance

        def build(params, ctx):
            return nn.Sequential(nn.Flatten(), nn.Linear(ctx.input_shape[0], 2))  # ignores output_size

        class TestFixedHead(ArchitectureConformance):
            uses_activation = uses_dropout = uses_norm = False

            @pytest.fixture
            def component(self):
                return Architecture("fixed_head", "Always two outputs.", build=build, input_kinds=("vector",),
                                    tasks=("classification",))
    """
    )
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6, failed=1, skipped=3)
    result.stdout.fnmatch_lines(["*output has shape (4, 2), expected (N, output_size) = (4, 3)*"])


# ---------------------------------------------------------------------------
# Augmentations: the built-ins through the kit, and the kit catching broken ones.
# ---------------------------------------------------------------------------

from orchestrator import Augmentation, Float, MixedTargets  # noqa: E402 - kept with the augmentation tests
from orchestrator.testing import AugmentationConformance  # noqa: E402


class TestBuiltinAugmentations(AugmentationConformance):
    component = _builtins("augmentation")


def test_builtin_augmentations_are_registered():
    assert set(REGISTRY.names("augmentation")) >= {
        "random_crop",
        "flip",
        "cutout",
        "shift",
        "noise",
        "time_mask",
        "mixup",
    }


def augmentation(augment, input_kinds=("vector", "image"), **params) -> Augmentation:
    """An augmentation doing `augment(params, x, y)`."""
    return Augmentation(
        "broken",
        "A broken augmentation.",
        params=params,
        input_kinds=input_kinds,
        build=lambda values, ctx: lambda x, y: augment(values, x, y),
    )


def test_the_kit_catches_an_augmentation_that_writes_into_the_batch():
    kit = AugmentationConformance()
    in_place = augmentation(lambda p, x, y: (x.mul_(-1.0), y))
    with pytest.raises(
        ConformanceError,
        match=r"augmentation 'broken' \[input_kind=vector, task=classification, "
        r"device=cpu, batch=8\]: augment wrote into the input batch",
    ):
        kit.test_contract_for_every_declared_input_kind_and_task(in_place)
    kit.test_contract_for_every_declared_input_kind_and_task(augmentation(lambda p, x, y: (x.mul(-1.0), y)))


def test_the_kit_catches_wrong_shapes_dtypes_and_targets():
    kit = AugmentationConformance()
    with pytest.raises(
        ConformanceError,
        match=r"\[input_kind=image, .*the augmented x has shape \(8, 2, 8, 7\), "
        r"the input \(8, 2, 8, 8\)",
    ):
        kit.test_contract_for_every_declared_input_kind_and_task(
            augmentation(lambda p, x, y: (x[..., 1:], y), input_kinds=("image",))
        )
    with pytest.raises(ConformanceError, match="the augmented x has dtype torch.float64, the input torch.float32"):
        kit.test_contract_for_every_declared_input_kind_and_task(augmentation(lambda p, x, y: (x.double(), y)))
    with pytest.raises(ConformanceError, match=r"\[input_kind=tokens, .*token ids leave 0..19"):
        kit.test_contract_for_every_declared_input_kind_and_task(
            augmentation(lambda p, x, y: (x - 1, y), input_kinds=("tokens",))
        )
    with pytest.raises(ConformanceError, match=r"the returned y is torch.float32 \(8, 3\)"):
        kit.test_contract_for_every_declared_input_kind_and_task(
            augmentation(lambda p, x, y: (x, nn.functional.one_hot(y, 3).float()))
        )
    with pytest.raises(
        ConformanceError,
        match=r"augmentation 'broken': tasks \('classification', 'generative'\) must be "
        r"a non-empty subset of \('classification', 'regression'\)",
    ):
        kit.test_declares_input_kinds_and_tasks(
            replace(augmentation(lambda p, x, y: (x, y)), tasks=("classification", "generative"))
        )


def test_the_kit_catches_a_mixup_weight_outside_0_1_at_a_range_end():
    def mix(params, x, y):
        perm = torch.arange(len(x) - 1, -1, -1)
        weight = 1.0 - params["strength"]  # 1 - 1.5 < 0 at the declared high end
        return weight * x + (1 - weight) * x[perm], MixedTargets(y, y[perm], weight)

    bad_range = augmentation(mix, strength=Float(0.0, 1.5, default=0.5))
    kit = AugmentationConformance()
    kit.test_contract_for_every_declared_input_kind_and_task(bad_range)  # fine at its defaults
    with pytest.raises(
        ConformanceError,
        match=r"\[strength=1.5, input_kind=vector, task=classification\]: "
        r"MixedTargets.weight is -0.5, outside \[0, 1\]",
    ):
        kit.test_respects_declared_ranges(bad_range)


def test_the_kit_catches_a_random_or_idle_augmentation():
    kit = AugmentationConformance()
    unseeded = torch.Generator()
    unseeded.seed()  # a non-deterministic seed for this generator only: not reproducible under torch.manual_seed
    noisy = augmentation(lambda p, x, y: (x + torch.randn(x.shape, generator=unseeded), y))
    with pytest.raises(ConformanceError, match=r"two runs under torch.manual_seed\(0\) differ"):
        kit.test_deterministic_under_a_seed(noisy)
    idle = augmentation(lambda p, x, y: (x.clone(), y))
    kit.test_deterministic_under_a_seed(idle)
    with pytest.raises(
        ConformanceError,
        match=r"\[defaults, input_kind=vector, task=classification\]: the batch "
        r"came back unchanged in 5 draws",
    ):
        kit.test_changes_the_batch(idle)
    kit.test_changes_the_batch(augmentation(lambda p, x, y: (x + torch.randn_like(x), y)))


def test_the_kit_catches_an_augmentation_that_fails_on_a_batch_of_one():
    swap_first_two = augmentation(lambda p, x, y: (x[[1, 0, *range(2, len(x))]], y))  # assumes two samples
    with pytest.raises(
        ConformanceError,
        match=r"\[input_kind=vector, task=classification, device=cpu, batch=1\]: "
        r"IndexError",
    ):
        AugmentationConformance().test_contract_for_every_declared_input_kind_and_task(swap_first_two)
