"""The torch side of the built-in augmentations (imported when a trial builds one, never by `automl plugins` or
`automl validate`).

Each `build_*(params, ctx)` returns an augment: a small callable object `augment(x, y) -> (x, y)` applied to a
training mini-batch on its device. Every augment is vectorised over the batch (one random draw per sample, no
Python loop over samples), draws from the global torch RNG on the batch's device (so `torch.manual_seed`, which
seeds every device, makes it reproducible), never writes into `x` or `y` (a batch may be a view of the data set
held on the device) and returns `x`'s shape, dtype and device.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from orchestrator import MixedTargets

Batch = tuple[torch.Tensor, Any]


def _randint(low: int, high: int, n: int, device: torch.device) -> torch.Tensor:
    """n integers uniform in low..high (both included), int64 on `device`."""
    return torch.randint(low, high + 1, (n,), device=device)


def _per_sample(p: float, n: int, device: torch.device) -> torch.Tensor:
    """A bool (n,) mask: each sample chosen with probability p."""
    return torch.rand(n, device=device) < p


def _broadcast(mask: torch.Tensor, ndim: int) -> torch.Tensor:
    """A (N,) or (N, L) mask viewed to broadcast over a tensor with `ndim` dimensions."""
    return mask.view(*mask.shape, *([1] * (ndim - mask.ndim)))


def source_index(positions: torch.Tensor, size: int, mode: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Where each (possibly out-of-range) position reads from in an axis of `size` entries: `zero` clamps and also
    returns the mask of positions inside (the others read zero), `replicate` clamps to the edge, `reflect` mirrors
    at the edges (without repeating the edge, like numpy's `reflect`), and `roll` wraps around."""
    if mode == "roll":
        return positions.remainder(size), None
    if mode == "reflect" and size > 1:
        period = 2 * (size - 1)
        folded = positions.remainder(period)
        return torch.where(folded >= size, period - folded, folded), None
    clamped = positions.clamp(0, size - 1)
    if mode == "zero":
        return clamped, (positions >= 0) & (positions < size)
    return clamped, None  # replicate (and reflect on an axis of one entry)


class RandomCrop:
    """Images (N, C, H, W): pad by `padding` pixels (zero, reflect or replicate), then crop back to H x W at a
    random offset per sample; the content moves by -padding..padding pixels along each axis."""

    def __init__(self, padding: int, mode: str) -> None:
        self.padding, self.mode = int(padding), mode

    def __call__(self, x: torch.Tensor, y: Any) -> Batch:
        n, c, h, w = x.shape
        dy = _randint(-self.padding, self.padding, n, x.device)
        dx = _randint(-self.padding, self.padding, n, x.device)
        rows, row_ok = source_index(torch.arange(h, device=x.device) + dy[:, None], h, self.mode)  # (N, H)
        cols, col_ok = source_index(torch.arange(w, device=x.device) + dx[:, None], w, self.mode)  # (N, W)
        out = torch.gather(x, 2, rows[:, None, :, None].expand(n, c, h, w))
        out = torch.gather(out, 3, cols[:, None, None, :].expand(n, c, h, w))
        if row_ok is not None and col_ok is not None:
            out = out.masked_fill(~(row_ok[:, None, :, None] & col_ok[:, None, None, :]), 0)
        return out, y

    def __repr__(self) -> str:
        return f"RandomCrop(padding={self.padding}, mode={self.mode!r})"


class Flip:
    """Images (N, C, H, W): mirror left-right, each sample with probability p."""

    def __init__(self, p: float) -> None:
        self.p = float(p)

    def __call__(self, x: torch.Tensor, y: Any) -> Batch:
        chosen = _per_sample(self.p, len(x), x.device)
        return torch.where(_broadcast(chosen, x.ndim), x.flip(-1), x), y

    def __repr__(self) -> str:
        return f"Flip(p={self.p})"


class Cutout:
    """Images (N, C, H, W): with probability p per sample, zero a square (all channels) whose side is `size` times
    the image's shorter side (rounded, at least one pixel), at a random position inside the image."""

    def __init__(self, size: float, p: float) -> None:
        self.size, self.p = float(size), float(p)

    def side(self, h: int, w: int) -> int:
        return max(1, min(h, w, round(self.size * min(h, w))))

    def __call__(self, x: torch.Tensor, y: Any) -> Batch:
        n, _, h, w = x.shape
        side = self.side(h, w)
        top, left = _randint(0, h - side, n, x.device), _randint(0, w - side, n, x.device)
        rows = torch.arange(h, device=x.device)[None] - top[:, None]  # (N, H): row offset inside the square
        cols = torch.arange(w, device=x.device)[None] - left[:, None]
        inside = ((rows >= 0) & (rows < side))[:, :, None] & ((cols >= 0) & (cols < side))[:, None, :]  # (N, H, W)
        chosen = _per_sample(self.p, n, x.device)
        return x.masked_fill((inside & chosen[:, None, None])[:, None], 0), y

    def __repr__(self) -> str:
        return f"Cutout(size={self.size}, p={self.p})"


class Shift:
    """Sequences (N, L, C): move each sample by a random -max_shift..max_shift steps along the sequence (positive:
    later), the steps moved in zero (`zero`) or the steps moved out wrapped around (`roll`)."""

    def __init__(self, max_shift: int, mode: str) -> None:
        self.max_shift, self.mode = int(max_shift), mode

    def __call__(self, x: torch.Tensor, y: Any) -> Batch:
        n, length = x.shape[:2]
        shift = _randint(-self.max_shift, self.max_shift, n, x.device)
        index, inside = source_index(torch.arange(length, device=x.device)[None] - shift[:, None], length, self.mode)
        out = torch.gather(x, 1, _broadcast(index, x.ndim).expand(x.shape))
        if inside is not None:
            out = out.masked_fill(~_broadcast(inside, x.ndim), 0)
        return out, y

    def __repr__(self) -> str:
        return f"Shift(max_shift={self.max_shift}, mode={self.mode!r})"


class Noise:
    """Float inputs of any shape: add Gaussian noise of standard deviation `std` (in the inputs' standardised
    units)."""

    def __init__(self, std: float) -> None:
        self.std = float(std)

    def __call__(self, x: torch.Tensor, y: Any) -> Batch:
        return x + self.std * torch.randn_like(x), y

    def __repr__(self) -> str:
        return f"Noise(std={self.std})"


class TimeMask:
    """Sequences (N, L, C) or token ids (N, L): per sample, set a span of 1..width consecutive steps (at most L) at
    a random position to zero (all channels), which for tokens is the padding id."""

    def __init__(self, width: int) -> None:
        self.width = int(width)

    def __call__(self, x: torch.Tensor, y: Any) -> Batch:
        n, length = x.shape[:2]
        widest = min(self.width, length)
        span = _randint(1, widest, n, x.device)
        start = (torch.rand(n, device=x.device) * (length - span + 1)).long().clamp(max=length - span)
        steps = torch.arange(length, device=x.device)[None]
        masked = (steps >= start[:, None]) & (steps < (start + span)[:, None])
        return x.masked_fill(_broadcast(masked, x.ndim), 0), y

    def __repr__(self) -> str:
        return f"TimeMask(width={self.width})"


class Mixup:
    """Float inputs of any shape: mix the batch with a shuffled copy of itself, x' = w x + (1 - w) x[perm] with one
    weight w ~ Beta(alpha, alpha) per batch, and return the targets as MixedTargets(y, y[perm], w), so that the loss
    becomes w loss(out, y) + (1 - w) loss(out, y[perm])."""

    def __init__(self, alpha: float) -> None:
        self.alpha = float(alpha)
        self._beta = torch.distributions.Beta(torch.tensor(self.alpha), torch.tensor(self.alpha))

    def __call__(self, x: torch.Tensor, y: Any) -> Batch:
        if isinstance(y, MixedTargets):  # already mixed by another augmentation: mixing twice is not defined
            return x, y
        weight = float(self._beta.sample())  # on the CPU: no device synchronisation
        perm = torch.randperm(len(x), device=x.device)
        return torch.lerp(x[perm], x, weight), MixedTargets(y, y[perm], weight)

    def __repr__(self) -> str:
        return f"Mixup(alpha={self.alpha})"


def build_random_crop(params: Mapping[str, Any], ctx: Any) -> RandomCrop:
    return RandomCrop(params["padding"], params["mode"])


def build_flip(params: Mapping[str, Any], ctx: Any) -> Flip:
    return Flip(params["p"])


def build_cutout(params: Mapping[str, Any], ctx: Any) -> Cutout:
    return Cutout(params["size"], params["p"])


def build_shift(params: Mapping[str, Any], ctx: Any) -> Shift:
    return Shift(params["max_shift"], params["mode"])


def build_noise(params: Mapping[str, Any], ctx: Any) -> Noise:
    return Noise(params["std"])


def build_time_mask(params: Mapping[str, Any], ctx: Any) -> TimeMask:
    return TimeMask(params["width"])


def build_mixup(params: Mapping[str, Any], ctx: Any) -> Mixup:
    return Mixup(params["alpha"])
