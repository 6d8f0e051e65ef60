"""`dataset: image_folder`: a folder of labelled images in the usual layout, one sub-folder per class of PNG or
JPEG files (as torchvision's ImageFolder expects), read with Pillow: each image converted to grey or RGB and
resized to `size` x `size`, stratified test and validation splits, inputs normalised per channel with the
training split's mean and standard deviation.

Unreadable files (truncated, not an image) are named before anything is created (`unreadable: refuse`, the
default: `automl validate` and `automl run` exit 2), or left out with their count (`unreadable: skip`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from orchestrator import DataBundle

from .splits import standardise, three_way_split

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SHOWN = 5  # unreadable files named in a message


def image_folder_root(params) -> Path:
    raw = params.get("path") or ""
    if not raw:
        raise ValueError("`path` is required: the folder with one sub-folder of images per class (relative to the "
                         "study file)")
    root = Path(raw).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}" if not root.exists() else
                                f"{root} is a file: image_folder reads a folder with one sub-folder per class")
    return root


def scan(params) -> tuple[list[Path], np.ndarray, list[str]]:
    """Every image file, its class index, and the class names (the sub-folders, sorted)."""
    root = image_folder_root(params)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels = [], []
    for index, name in enumerate(classes):
        found = sorted(p for p in (root / name).rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not found:
            raise ValueError(f"class folder {root / name} holds no image ({', '.join(sorted(SUFFIXES))})")
        files += found
        labels += [index] * len(found)
    if len(classes) < 2:
        raise ValueError(f"{root} needs one sub-folder of images per class, at least two; found "
                         f"{len(classes)}: {', '.join(classes) or 'none'}")
    return files, np.asarray(labels, dtype=np.int64), classes


def read_image(path: Path, size: int, colour: str) -> np.ndarray:
    """One image as a float array (channels, size, size) in [0, 1]; raises OSError/ValueError if unreadable."""
    from PIL import Image

    with Image.open(path) as image:
        converted = image.convert("RGB" if colour == "rgb" else "L").resize((size, size), Image.Resampling.BILINEAR)
        array = np.asarray(converted, dtype=np.float32) / 255.0
    return array.transpose(2, 0, 1) if array.ndim == 3 else array[None]


def _unreadable(files: list[Path]) -> list[Path]:
    from PIL import Image, UnidentifiedImageError

    bad = []
    for path in files:
        try:
            with Image.open(path) as image:
                image.verify()
        except (OSError, ValueError, UnidentifiedImageError, SyntaxError):
            bad.append(path)
    return bad


def _named(paths: list[Path]) -> str:
    more = f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else ""
    return ", ".join(str(p) for p in paths[:SHOWN]) + more


def probe_image_folder(params) -> tuple[str, str]:
    """Checks the layout, and with `unreadable: refuse` every file, before anything is created."""
    files, _, _ = scan(params)
    if params.get("unreadable", "refuse") == "refuse":
        bad = _unreadable(files)
        if bad:
            raise ValueError(f"{len(bad)} of {len(files)} image file(s) cannot be read: {_named(bad)}; fix or remove "
                             "them, or set `unreadable: skip` to leave them out")
    return "classification", "image"


def build_image_folder(params, seed: int) -> DataBundle:
    import torch

    files, labels, classes = scan(params)
    size, colour = int(params["size"]), params["colour"]
    images, kept, bad = [], [], []
    for index, path in enumerate(files):
        try:
            images.append(read_image(path, size, colour))
            kept.append(index)
        except (OSError, ValueError, SyntaxError):
            bad.append(path)
    if bad and params.get("unreadable", "refuse") == "refuse":
        raise ValueError(f"{len(bad)} image file(s) cannot be read: {_named(bad)}")
    if bad:
        print(f"image_folder: left out {len(bad)} unreadable image file(s) of {len(files)}: {_named(bad)}",
              file=sys.stderr)
    x, y = np.stack(images), labels[kept]
    train, val, test = three_way_split(len(x), params["test_fraction"], params["val_fraction"], seed, labels=y)
    inputs = standardise(x[train], x[val], x[test], axes=(0, 2, 3))  # per channel, the training split's statistics
    tensors = [torch.as_tensor(a) for pair in zip(inputs, (y[train], y[val], y[test])) for a in pair]
    return DataBundle(*tensors, input_kind="image", task="classification", output_size=len(classes))
