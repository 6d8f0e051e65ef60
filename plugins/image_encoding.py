"""How an image becomes the network's input, alike in training, evaluation and the served model: read and converted
to grey or RGB, resized, normalised per channel (`ImageEncoder`, which goes with the best model). No torch here;
both `image_folder` (the data set) and `image_files` (its streamed split) import it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_COLUMN = "image"  # the served model's input: a DataFrame column of image file bytes
UNREADABLE = (OSError, ValueError, SyntaxError)  # what Pillow raises on a file it cannot decode


def read_image(source: Path | str | bytes, size: int, colour: str) -> np.ndarray:
    """One image (a file, or a file's bytes) as a float32 array (channels, size, size) in [0, 1]; raises
    OSError/ValueError if unreadable."""
    from PIL import Image

    opened = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source)
    with opened as image:
        converted = image.convert("RGB" if colour == "rgb" else "L").resize((size, size), Image.Resampling.BILINEAR)
        array = np.asarray(converted, dtype=np.float32) / 255.0
    return array.transpose(2, 0, 1) if array.ndim == 3 else array[None]


def normalise(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Images (..., channels, size, size) in [0, 1] minus the channel means, over the channel stds, as float32.
    Element-wise in float64, so that one image gives the same values alone as in a batch."""
    shape = (-1, 1, 1)
    return ((images.astype(np.float64) - np.reshape(mean, shape)) / np.reshape(std, shape)).astype(np.float32)


@dataclass(frozen=True)
class ImageEncoder:
    """Raw images as the network's inputs, the way training saw them: it goes with the best model (an MLflow
    pyfunc), so that image files can be scored. `transform` takes a DataFrame whose column `image` holds each
    image file's bytes (PNG, JPEG ... as read from disk) and returns float32 (N, channels, size, size): the image
    converted to grey or RGB, resized, and normalised with the training split's per-channel mean and std."""

    size: int
    colour: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    example: Any = field(default=None, compare=False)  # a few training images' bytes: the model's input example

    @property
    def channels(self) -> int:
        return 3 if self.colour == "rgb" else 1

    def image(self, source: Path | str | bytes) -> np.ndarray:
        """One image (a file or its bytes) as the network sees it: float32 (channels, size, size)."""
        return normalise(read_image(source, self.size, self.colour), np.asarray(self.mean), np.asarray(self.std))

    def transform(self, frame) -> np.ndarray:
        """The images in column `image` of `frame` (file bytes) as float32 (N, channels, size, size)."""
        import pandas as pd

        if not isinstance(frame, pd.DataFrame):
            frame = pd.DataFrame(frame)
        if IMAGE_COLUMN not in frame.columns:
            found = ", ".join(repr(str(c)) for c in frame.columns) or "none"
            raise ValueError(
                f"the input has no column {IMAGE_COLUMN!r} (columns: {found}): pass a DataFrame whose "
                f"column {IMAGE_COLUMN!r} holds each image file's bytes, e.g. pandas.DataFrame("
                f"{{{IMAGE_COLUMN!r}: [open(path, 'rb').read()]}})"
            )
        images = [self._decoded(row, value) for row, value in enumerate(frame[IMAGE_COLUMN].tolist())]
        if not images:
            return np.zeros((0, self.channels, self.size, self.size), dtype=np.float32)
        return np.stack(images)

    def _decoded(self, row: int, value: Any) -> np.ndarray:
        if isinstance(value, np.bytes_):
            value = bytes(value)
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise ValueError(
                f"row {row} of column {IMAGE_COLUMN!r} holds {type(value).__name__} {_short(value)}, "
                "not an image file's bytes (PNG, JPEG ... as read with open(path, 'rb').read(); "
                "base64-encoded in a JSON request to a served model)"
            )
        try:
            return self.image(bytes(value))
        except UNREADABLE as exc:
            from PIL import UnidentifiedImageError

            reason = "not an image format Pillow knows" if isinstance(exc, UnidentifiedImageError) else str(exc)
            raise ValueError(
                f"row {row} of column {IMAGE_COLUMN!r} is not a readable image ({len(value)} bytes "
                f"starting {bytes(value[:8])!r}): {reason}"
            ) from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
