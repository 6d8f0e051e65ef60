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

from orchestrator.testing.activation import ActivationConformance
from orchestrator.testing.architecture import ArchitectureConformance
from orchestrator.testing.augmentation import AugmentationConformance
from orchestrator.testing.common import (
    BATCH_SIZE,
    OUTPUT_SIZES,
    SAMPLE_SHAPES,
    ConformanceError,
    default_params,
    default_registry,
    make_context,
    range_cases,
    registered,
    sample_input,
)
from orchestrator.testing.dataset import DatasetConformance
from orchestrator.testing.loss import LossConformance
from orchestrator.testing.optimizer import OptimizerConformance
from orchestrator.testing.regularizer import RegularizerConformance
from orchestrator.testing.schedule import ScheduleConformance

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
