"""The generative task: a GAN's own training step, and a two-sample distance to judge it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import pytorch_lightning as pl
import torch
from torch import nn

from orchestrator.api.components import AdversarialLoss
from orchestrator.training.epoch_loss import EpochLoss

BANDWIDTHS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


def mmd(samples: torch.Tensor, real: torch.Tensor, bandwidths: Sequence[float] = BANDWIDTHS) -> torch.Tensor:
    """Maximum mean discrepancy between two samples (RBF kernels summed over bandwidths, biased
    estimate, square root): 0 when the distributions match. Inputs are flattened per sample."""
    x, y = samples.flatten(1).float(), real.flatten(1).float()
    scale = y.var(dim=0).sum().clamp_min(1e-8)  # bandwidths relative to the real data's spread
    points = torch.cat([x, y])
    sq = torch.cdist(points, points).pow(2) / scale
    kernel = cast(torch.Tensor, sum(torch.exp(-sq / (2 * b * b)) for b in bandwidths))
    n = len(x)
    k_xx, k_yy, k_xy = kernel[:n, :n].mean(), kernel[n:, n:].mean(), kernel[:n, n:].mean()
    return (k_xx + k_yy - 2 * k_xy).clamp_min(0).sqrt()


class GANModule(pl.LightningModule):
    """Two networks, two optimizers (built from the same optimizer choice), alternating steps.

    `network` must have `generator` (latent -> sample), `discriminator` (sample -> one logit)
    and `latent_dim`; `loss` is an AdversarialLoss. Uses manual optimization, so gradient
    clipping is applied here rather than by the Trainer.
    """

    def __init__(
        self,
        network: nn.Module,
        loss: AdversarialLoss,
        make_optimizer: Callable[[Any], torch.optim.Optimizer],
        penalties: Sequence[Callable[[nn.Module], torch.Tensor]] = (),
        grad_clip: float | None = None,
        eval_seed: int = 0,
    ) -> None:
        super().__init__()
        if not all(hasattr(network, a) for a in ("generator", "discriminator", "latent_dim")):
            raise TypeError(
                "a generative architecture must return a module with generator, discriminator and latent_dim"
            )
        self.network = network
        self.loss_fn = loss
        self.make_optimizer = make_optimizer
        self.penalties = list(penalties)
        self.grad_clip = grad_clip
        self.eval_seed = eval_seed
        self.automatic_optimization = False
        self.epoch_loss = EpochLoss()  # the generator's

    @property
    def _generator(self) -> nn.Module:
        return cast(nn.Module, self.network.generator)

    @property
    def _discriminator(self) -> nn.Module:
        return cast(nn.Module, self.network.discriminator)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, cast(int, self.network.latent_dim), generator=generator).to(self.device)
        return self._generator(z)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        real, _ = batch
        opt_d, opt_g = cast(list[Any], self.optimizers())
        gen, disc = self._generator, self._discriminator
        fake = self.sample(len(real))
        d_loss = self.loss_fn.discriminator(disc(real), disc(fake.detach()))
        d_loss = d_loss + sum((p(disc) for p in self.penalties), torch.zeros((), device=self.device))
        self._step(opt_d, d_loss)
        g_loss = self.loss_fn.generator(disc(fake))
        g_loss = g_loss + sum((p(gen) for p in self.penalties), torch.zeros((), device=self.device))
        self._step(opt_g, g_loss)
        self.epoch_loss.add(g_loss)
        return g_loss

    def _step(self, optimizer: Any, loss: torch.Tensor) -> None:
        optimizer.zero_grad()
        self.manual_backward(loss)
        if self.grad_clip is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
        optimizer.step()

    def on_train_epoch_start(self) -> None:
        self.epoch_loss.reset(self.device)

    def epoch_train_loss(self) -> float:
        """The epoch's mean generator loss."""
        return self.epoch_loss.mean()

    def evaluation_pair(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Generated samples (from a fixed latent draw) against the real samples `x`."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            samples = self.sample(len(x), torch.Generator().manual_seed(self.eval_seed))
        self.train(was_training)
        return samples.view_as(x), x

    def evaluation_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> float | None:
        return None

    def configure_optimizers(self) -> Any:
        return [
            self.make_optimizer(self._discriminator.parameters()),
            self.make_optimizer(self._generator.parameters()),
        ]
