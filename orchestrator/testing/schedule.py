"""The conformance checks of schedules (`ScheduleConformance`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from orchestrator import (
    Schedule,
)
from orchestrator.testing.common import (
    ComponentConformance,
    ConformanceError,
    case,
    default_params,
    expect,
    make_context,
)


class ScheduleConformance(ComponentConformance):
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
        expect(
            isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler),
            f"build returned {type(scheduler).__name__}, not None or a torch LRScheduler",
        )
        expect(scheduler.optimizer is optimizer, "the scheduler is not bound to the optimizer it was given")
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
            expect(
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
        expect(spec.interval in ("step", "epoch"), f"interval {spec.interval!r} is neither 'step' nor 'epoch'")

    def test_steps_through_the_whole_training(self, spec: Schedule) -> None:
        self.check_at_defaults(spec, self.check_works)

    def test_respects_declared_ranges(self, spec: Schedule) -> None:
        self.check_range_cases(spec, self.check_works)

    def test_deterministic_under_a_seed(self, spec: Schedule) -> None:
        with case(spec, "defaults"):
            params = default_params(spec.params)
            expect(
                self.run_schedule(spec, params, 3, 4) == self.run_schedule(spec, params, 3, 4),
                "the learning rates differ between two runs",
            )
