"""Assemble a trial's chosen components into one LightningModule."""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

import pytorch_lightning as pl
import torch
from torch import nn

from orchestrator.batches import predict
from orchestrator.components import BuildContext, DataBundle, RegularizerEffect
from orchestrator.epoch_loss import EpochLoss
from orchestrator.gan import GANModule
from orchestrator.plugins import Registry
from orchestrator.space import CHOSEN_KINDS, component_params

_PLAIN_TYPES = (str, int, float, bool, type(None))


class CandidateModule(pl.LightningModule):
    """A network, its loss (plus regularizer penalties) and its optimizer, trained by Lightning.

    The training loss is summed on the device (`EpochLoss`) and read once per epoch
    (`epoch_train_loss`), so no step forces a host sync or a logger call.
    """

    def __init__(self, network: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 make_optimizer: Callable[[Any], torch.optim.Optimizer],
                 penalties: Sequence[Callable[[nn.Module], torch.Tensor]] = (),
                 make_schedule: Callable[[torch.optim.Optimizer], tuple[Any, str]] | None = None) -> None:
        super().__init__()
        self.network = network
        self.loss_fn = loss_fn
        self.make_optimizer = make_optimizer
        self.make_schedule = make_schedule
        self.penalties = list(penalties)
        self.epoch_loss = EpochLoss()

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets plain attributes (e.g. `_current_fx_name`) around every hook, ~46 times
        # per step; nn.Module.__setattr__'s Parameter/Module checks made that ~10% of a small
        # model's training time. A name already in __dict__ is a plain attribute (nn.Module keeps
        # parameters, buffers and submodules out of it), so a plain value can go straight there.
        if type(value) in _PLAIN_TYPES and name in self.__dict__:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.loss_fn(self.network(x), y)
        for penalty in self.penalties:
            loss = loss + penalty(self.network)
        self.epoch_loss.add(loss)
        return loss

    def on_train_epoch_start(self) -> None:
        self.epoch_loss.reset(self.device)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # Index batches are cut from tensors already on the training device; skip Lightning's walk over them.
        if isinstance(batch, tuple) and all(isinstance(t, torch.Tensor) and t.device == device for t in batch):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def epoch_train_loss(self) -> float:
        return self.epoch_loss.mean()

    def evaluation_pair(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's outputs on `x` (eval mode, no gradients) and the targets they are judged against."""
        return predict(self.network, x), y

    def evaluation_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> float | None:
        return float(self.loss_fn(outputs, targets))

    def configure_optimizers(self) -> Any:
        optimizer = self.make_optimizer(self.network.parameters())
        scheduler, interval = self.make_schedule(optimizer) if self.make_schedule else (None, "step")
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}


# Lightning inspects `training_step`'s signature at every step (does it take `batch_idx`?); a signature
# computed once makes that a lookup.
CandidateModule.training_step.__signature__ = inspect.signature(CandidateModule.training_step)  # type: ignore[attr-defined]


def combine_effects(effects: Sequence[RegularizerEffect]) -> dict[str, Any]:
    """Merge regularizer effects: the largest dropout, the last norm, summed weight decay, all
    penalties, the tightest gradient clip and the shortest early-stopping patience."""
    dropouts = [e.dropout for e in effects if e.dropout is not None]
    norms = [e.norm for e in effects if e.norm is not None]
    clips = [e.grad_clip for e in effects if e.grad_clip is not None]
    patiences = [e.early_stopping_patience for e in effects if e.early_stopping_patience is not None]
    return {
        "dropout": max(dropouts, default=0.0),
        "norm": norms[-1] if norms else None,
        "weight_decay": sum(e.weight_decay or 0.0 for e in effects),
        "penalties": [e.penalty for e in effects if e.penalty is not None],
        "grad_clip": min(clips) if clips else None,
        "early_stopping_patience": min(patiences) if patiences else None,
    }


def regularizer_effects(config: Mapping[str, Any], registry: Registry) -> dict[str, Any]:
    """The merged effects of the regularizers a configuration switched on."""
    names = [key.split(".", 1)[1] for key, used in config.items()
             if key.startswith("regularizer.") and key.count(".") == 1 and used]
    return combine_effects([registry.get("regularizer", name).spec.build(
        component_params(config, f"regularizer.{name}")) for name in names])


def build_context(config: Mapping[str, Any], registry: Registry, data: DataBundle, merged: Mapping[str, Any],
                  max_epochs: int = 1, steps_per_epoch: int = 1) -> tuple[BuildContext, list]:
    """The context every `build` receives, and the loss penalties the regularizers add (`merged`
    is `regularizer_effects(config, registry)`)."""
    activation = registry.get("activation", config["activation"]).spec
    activation_params = component_params(config, f"activation.{config['activation']}")
    ctx = BuildContext(input_shape=data.input_shape, input_kind=data.input_kind, output_size=data.output_size,
                       task=data.task, max_epochs=max_epochs, steps_per_epoch=steps_per_epoch)
    ctx = replace(ctx, activation=lambda: activation.build(activation_params), dropout=merged["dropout"],
                  norm=merged["norm"], weight_decay=merged["weight_decay"])
    return ctx, merged["penalties"]


def assemble(config: Mapping[str, Any], registry: Registry, data: DataBundle, max_epochs: int = 1,
             steps_per_epoch: int = 1, seed: int = 0, effects: Mapping[str, Any] | None = None) -> pl.LightningModule:
    """Build the chosen architecture, loss, optimizer and schedule for one trial configuration."""
    effects = effects if effects is not None else regularizer_effects(config, registry)
    ctx, penalties = build_context(config, registry, data, effects, max_epochs, steps_per_epoch)
    chosen = {kind: registry.get(kind, config[kind]).spec for kind in CHOSEN_KINDS}
    params = {kind: component_params(config, f"{kind}.{config[kind]}") for kind in CHOSEN_KINDS}
    network = chosen["architecture"].build(params["architecture"], ctx)
    loss_fn = chosen["loss"].build(params["loss"], ctx)
    optimizer = chosen["optimizer"]

    schedule = chosen["schedule"]

    def make_optimizer(parameters: Any) -> torch.optim.Optimizer:
        return optimizer.build(params["optimizer"], parameters, ctx)

    def make_schedule(opt: torch.optim.Optimizer) -> tuple[Any, str]:
        return schedule.build(params["schedule"], opt, ctx), schedule.interval

    if data.task == "generative":
        return GANModule(network, loss_fn, make_optimizer, penalties, grad_clip=effects["grad_clip"], eval_seed=seed)
    return CandidateModule(network, loss_fn, make_optimizer, penalties, make_schedule)
