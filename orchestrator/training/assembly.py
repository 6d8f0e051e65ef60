"""Assemble a trial's chosen components into one LightningModule."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, cast

import pytorch_lightning as pl
import torch
from torch import nn

from orchestrator.api.components import (
    PADDING_TOKEN,
    Activation,
    AdversarialLoss,
    Architecture,
    Augment,
    Augmentation,
    BuildContext,
    DataBundle,
    Loss,
    MixedTargets,
    Optimizer,
    Regularizer,
    RegularizerEffect,
    Schedule,
)
from orchestrator.api.registry import Registry
from orchestrator.search.space import CHOSEN_KINDS, component_params, switched_on
from orchestrator.training.batches import predict, predict_batches
from orchestrator.training.epoch_loss import EpochLoss
from orchestrator.training.gan import GANModule

_PLAIN_TYPES = (str, int, float, bool, type(None))


class CandidateModule(pl.LightningModule):
    """A network, its loss (plus regularizer penalties) and its optimizer, trained by Lightning.

    The training loss is summed on the device (`EpochLoss`) and read once per epoch
    (`epoch_train_loss`), so no step forces a host sync or a logger call.
    """

    def __init__(
        self,
        network: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        make_optimizer: Callable[[Any], torch.optim.Optimizer],
        penalties: Sequence[Callable[[nn.Module], torch.Tensor]] = (),
        make_schedule: Callable[[torch.optim.Optimizer], tuple[Any, str]] | None = None,
        augmentations: Sequence[Augment] = (),
    ) -> None:
        super().__init__()
        self.network = network
        self.loss_fn = loss_fn
        self.augmentations = list(augmentations)
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
        x, labels = batch
        y: torch.Tensor | MixedTargets = labels
        for augment in self.augmentations:
            x, y = augment(x, y)
        outputs = self.network(x)
        if isinstance(y, MixedTargets):
            loss = y.weight * self.loss_fn(outputs, y.a) + (1.0 - y.weight) * self.loss_fn(outputs, y.b)
        else:
            loss = self.loss_fn(outputs, y)
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

    def evaluation_pair(self, x: Any, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's outputs on `x` (eval mode, no gradients) and the targets they are judged against; `x`
        may be a DataLoader of (inputs, targets) batches (streamed data, `y` None)."""
        if y is None:
            return predict_batches(self.network, x, self.device)
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
    names = switched_on(config, "regularizer")
    return combine_effects(
        [registry.spec(Regularizer, name).build(component_params(config, f"regularizer.{name}")) for name in names]
    )


def build_context(
    config: Mapping[str, Any],
    registry: Registry,
    data: DataBundle,
    merged: Mapping[str, Any],
    max_epochs: int = 1,
    steps_per_epoch: int = 1,
) -> tuple[BuildContext, list]:
    """The context every `build` receives, and the loss penalties the regularizers add (`merged`
    is `regularizer_effects(config, registry)`)."""
    activation = registry.spec(Activation, config["activation"])
    activation_params = component_params(config, f"activation.{config['activation']}")
    ctx = BuildContext(
        input_shape=data.input_shape,
        input_kind=data.input_kind,
        output_size=data.output_size,
        task=data.task,
        max_epochs=max_epochs,
        steps_per_epoch=steps_per_epoch,
    )
    ctx = replace(
        ctx,
        activation=lambda: activation.build(activation_params),
        dropout=merged["dropout"],
        norm=merged["norm"],
        weight_decay=merged["weight_decay"],
    )
    if data.input_kind == "tokens":
        vocab, dim = int(data.vocab_size or 0), int(config.get("embedding_dim", DEFAULT_EMBEDDING_DIM))
        if vocab < 2:
            raise ValueError(f"tokens data needs a vocab_size of at least 2 (padding and one token), got {vocab}")
        ctx = replace(ctx, vocab_size=vocab, embedding=lambda: nn.Embedding(vocab, dim, padding_idx=PADDING_TOKEN))
    return ctx, merged["penalties"]


DEFAULT_EMBEDDING_DIM = 64


TrialModule = CandidateModule | GANModule  # what `assemble` builds: Lightning trains it


class EmbeddedTokens(nn.Module):
    """Token ids (N, L) embedded to (N, L, dim), then a network built for sequences."""

    def __init__(self, embedding: nn.Module, network: nn.Module) -> None:
        super().__init__()
        self.embedding = embedding
        self.network = network

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.network(self.embedding(tokens.long()))


def build_network(architecture: Architecture, params: Mapping[str, Any], ctx: BuildContext) -> nn.Module:
    """The architecture's network; with `tokens` data and an architecture for sequences, behind the embedding."""
    if ctx.input_kind != "tokens" or "tokens" in architecture.input_kinds:
        return architecture.build(params, ctx)
    assert ctx.embedding is not None  # tokens data: build_context made it
    embedding = ctx.embedding()
    dim = cast(int, embedding.embedding_dim)
    as_sequence = replace(ctx, input_kind="sequence", input_shape=(*ctx.input_shape, dim))
    return EmbeddedTokens(embedding, architecture.build(params, as_sequence))


def augmentations(config: Mapping[str, Any], registry: Registry, ctx: BuildContext) -> list[Augment]:
    """The training-batch augmentations a configuration switched on, built."""
    return [
        registry.spec(Augmentation, name).build(component_params(config, f"augmentation.{name}"), ctx)
        for name in switched_on(config, "augmentation")
    ]


def assemble(
    config: Mapping[str, Any],
    registry: Registry,
    data: DataBundle,
    max_epochs: int = 1,
    steps_per_epoch: int = 1,
    seed: int = 0,
    effects: Mapping[str, Any] | None = None,
) -> TrialModule:
    """Build the chosen architecture, loss, optimizer and schedule for one trial configuration."""
    effects = effects if effects is not None else regularizer_effects(config, registry)
    ctx, penalties = build_context(config, registry, data, effects, max_epochs, steps_per_epoch)
    params = {kind: component_params(config, f"{kind}.{config[kind]}") for kind in CHOSEN_KINDS}
    network = build_network(registry.spec(Architecture, config["architecture"]), params["architecture"], ctx)
    loss_fn = registry.spec(Loss, config["loss"]).build(params["loss"], ctx)
    optimizer = registry.spec(Optimizer, config["optimizer"])
    schedule = registry.spec(Schedule, config["schedule"])

    def make_optimizer(parameters: Any) -> torch.optim.Optimizer:
        return optimizer.build(params["optimizer"], parameters, ctx)

    def make_schedule(opt: torch.optim.Optimizer) -> tuple[Any, str]:
        return schedule.build(params["schedule"], opt, ctx), schedule.interval

    if data.task == "generative":
        adversarial = cast(AdversarialLoss, loss_fn)  # a loss for the generative task builds one
        return GANModule(
            network, adversarial, make_optimizer, penalties, grad_clip=effects["grad_clip"], eval_seed=seed
        )
    return CandidateModule(
        network, loss_fn, make_optimizer, penalties, make_schedule, augmentations(config, registry, ctx)
    )
