"""`dataset: image_folder` with `load: stream`: one split of an image folder as a map-style torch Dataset that
holds only the file names and reads, converts, resizes and normalises one file per item (with the study's
`ImageEncoder`, so that training, evaluation and the served model see the same inputs). Picklable (plain
attributes), for DataLoader worker processes. Imported only where the data set is built (it imports torch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .image_encoding import UNREADABLE, ImageEncoder


class ImageFiles(Dataset):
    """Item i: (float32 tensor (channels, size, size), int64 scalar tensor), read from `files[i]`."""

    def __init__(self, files: Sequence[str], labels: np.ndarray, encoder: ImageEncoder) -> None:
        if len(files) != len(labels):
            raise ValueError(f"{len(files)} files but {len(labels)} labels")
        self.files = [str(f) for f in files]
        self.labels = np.asarray(labels, dtype=np.int64)
        # the encoder without its input example (image bytes that each worker process need not receive)
        self.encoder = ImageEncoder(encoder.size, encoder.colour, encoder.mean, encoder.std)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.files[index]
        try:
            image = self.encoder.image(path)
        except UNREADABLE as exc:  # readable when the data set was built: changed since
            raise OSError(
                f"image_folder: cannot read {path} (it was readable when the data set was built): {exc}"
            ) from exc
        return torch.from_numpy(image), torch.tensor(self.labels[index], dtype=torch.int64)

    def __repr__(self) -> str:
        return f"ImageFiles({len(self.files)} files, {self.encoder.colour} {self.encoder.size}x{self.encoder.size})"
