"""Tasks and the metrics that judge them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a metric is computed: validating a study needs none of it
    import torch


@dataclass(frozen=True)
class Metric:
    """A metric over a whole split: `compute(outputs, targets) -> scalar tensor`."""

    name: str
    direction: str  # "maximize" or "minimize"
    compute: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    in_target_units: bool = False  # multiplied by the data's target_scale (regression errors)


def _accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (outputs.argmax(dim=1) == targets).float().mean()


def _rmse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (outputs - targets.view_as(outputs)).pow(2).mean().sqrt()


def _mae(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (outputs - targets.view_as(outputs)).abs().mean()


TASK_METRICS: dict[str, tuple[Metric, ...]] = {
    "classification": (Metric("accuracy", "maximize", _accuracy),),
    "regression": (Metric("rmse", "minimize", _rmse, True), Metric("mae", "minimize", _mae, True)),
    "generative": (Metric("mmd", "minimize", lambda samples, real: _mmd(samples, real)),),
}


def _mmd(samples: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    from orchestrator.training.gan import mmd

    return mmd(samples, real)


# Properties of the trained model that a multi-objective study may trade against a validation metric.
MODEL_METRICS = {"params": "minimize", "latency_ms": "minimize"}


def objective_choices(task: str) -> dict[str, str]:
    """Objective metric names allowed for a task, with their natural direction."""
    choices = {f"val_{m.name}": m.direction for m in TASK_METRICS[task]}
    if task != "generative":  # a GAN has no single validation loss
        choices["val_loss"] = "minimize"
    return choices


def default_objective(task: str) -> tuple[str, str]:
    """The objective a study gets when its file names none."""
    metric = TASK_METRICS[task][0]
    return f"val_{metric.name}", metric.direction
