"""The torch side of the generative built-ins: the GAN network, its adversarial losses and the rings data (imported
when a trial builds them, never by `automl plugins` or `automl validate`)."""

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from orchestrator import AdversarialLoss, DataBundle

from .splits import bundle_of_splits


class GANNetwork(nn.Module):
    """A generator (latent -> sample shaped like the data) and a discriminator (sample -> logit)."""

    def __init__(
        self, generator: nn.Module, discriminator: nn.Module, latent_dim: int, sample_shape: tuple[int, ...]
    ) -> None:
        super().__init__()
        self.generator = nn.Sequential(generator, nn.Unflatten(1, sample_shape))
        self.discriminator = nn.Sequential(nn.Flatten(), discriminator)
        self.latent_dim = latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)


def mlp_stack(sizes: list[int], ctx, *, norm: bool, dropout: bool) -> nn.Sequential:
    """Linear layers between `sizes`, each hidden one followed by (norm), activation, (dropout)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            if norm and ctx.norm is not None:
                layers.append(ctx.norm(n_out, "vector"))
            layers.append(ctx.activation())
            if dropout and ctx.dropout > 0:
                layers.append(nn.Dropout(ctx.dropout))
    return nn.Sequential(*layers)


def build_gan(params, ctx) -> GANNetwork:
    """MLP generator and discriminator; normalisation goes to the generator, dropout to the discriminator."""
    features = math.prod(ctx.input_shape)
    hidden = [params["width"]] * params["depth"]
    generator = mlp_stack([params["latent_dim"], *hidden, features], ctx, norm=True, dropout=False)
    discriminator = mlp_stack([features, *hidden, 1], ctx, norm=False, dropout=True)
    return GANNetwork(generator, discriminator, params["latent_dim"], tuple(ctx.input_shape))


def non_saturating_bce(params, ctx) -> AdversarialLoss:
    """The original GAN loss with the non-saturating generator objective -log D(G(z))."""

    def discriminator(real, fake):
        return F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
            fake, torch.zeros_like(fake)
        )

    def generator(fake):
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))

    return AdversarialLoss(discriminator, generator)


def least_squares(params, ctx) -> AdversarialLoss:
    """LSGAN (Mao et al.): squared distance of the discriminator's output to the real/fake targets."""

    def discriminator(real, fake):
        return 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean())

    def generator(fake):
        return 0.5 * (fake - 1).pow(2).mean()

    return AdversarialLoss(discriminator, generator)


def build_rings(params, seed: int) -> DataBundle:
    """Points from `modes` Gaussians evenly spaced on a circle of radius 2: a standard GAN benchmark
    whose modes a generator must all cover. Split 70/15/15 (seeded)."""
    rng = np.random.default_rng(seed)
    n, modes = params["samples"], params["modes"]
    angles = 2 * np.pi * rng.integers(0, modes, n) / modes
    points = np.stack([2 * np.cos(angles), 2 * np.sin(angles)], axis=1) + rng.normal(0, params["noise"], (n, 2))
    points = torch.as_tensor(points, dtype=torch.float32)
    n_train, n_val = int(0.7 * n), int(0.15 * n)
    parts = points[:n_train], points[n_train : n_train + n_val], points[n_train + n_val :]
    zeros = [torch.zeros(len(p), dtype=torch.long) for p in parts]  # no labels in a generative task
    return bundle_of_splits(parts, zeros, input_kind="vector", task="generative", output_size=2)
