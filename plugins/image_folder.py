"""`dataset: image_folder`: a folder of labelled images in the usual layout, one sub-folder per class of PNG or
JPEG files (as torchvision's ImageFolder expects), read with Pillow: each image converted to grey or RGB and
resized to `size` x `size`, stratified test and validation splits, inputs normalised per channel with the
training split's mean and standard deviation.

Unreadable files (truncated, not an image) are named before anything is created (`unreadable: refuse`, the
default: `automl validate` and `automl run` exit 2), or left out with their count (`unreadable: skip`).

`load: memory` (the default) holds every image as one tensor; `load: stream` holds only the file names and
reads one file per sample as training asks for it (plugins/image_files.py), for folders larger than memory.
Either way the build reads each file once, one at a time, to leave out unreadable ones and to sum the training
split's statistics, and the bundle carries an `ImageEncoder`: the best model (an MLflow pyfunc) takes raw image
file bytes, preprocesses them exactly as training saw them and returns the class names (the sub-folders).

No torch here: `automl plugins` and `automl validate` import this module.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator import DataBundle

# ImageEncoder lived here: best models pickled before it moved name automl_plugins.image_folder.ImageEncoder
from .image_encoding import IMAGE_COLUMN, UNREADABLE, ImageEncoder, normalise, read_image
from .splits import bundle_of_splits, split_rows

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SHOWN = 5  # unreadable files named in a message
EXAMPLE_ROWS = 3  # training images in the logged model's input example (one per class while classes last)


def image_folder_root(params) -> Path:
    raw = params.get("path") or ""
    if not raw:
        raise ValueError(
            "`path` is required: the folder with one sub-folder of images per class (relative to the study file)"
        )
    root = Path(raw).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"no such folder: {root}"
            if not root.exists()
            else f"{root} is a file: image_folder reads a folder with one sub-folder per class"
        )
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
        raise ValueError(
            f"{root} needs one sub-folder of images per class, at least two; found "
            f"{len(classes)}: {', '.join(classes) or 'none'}"
        )
    return files, np.asarray(labels, dtype=np.int64), classes


def channel_sums(image: np.ndarray) -> np.ndarray:
    """(2, channels): the sum of one image's values per channel, and of their squares (float64)."""
    values = image.astype(np.float64).reshape(image.shape[0], -1)
    return np.stack([values.sum(axis=1), (values * values).sum(axis=1)])


def channel_statistics(sums: np.ndarray, pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std from the `channel_sums` of n images of `pixels` pixels each; a
    constant channel keeps std 1 (only centred)."""
    total = sums.sum(axis=0)
    count = len(sums) * pixels
    mean = total[0] / count
    std = np.sqrt(np.maximum(total[1] / count - mean * mean, 0.0))
    return mean, np.where(std > 1e-12, std, 1.0)


def example_frame(files: list[Path], labels: np.ndarray, rows: int = EXAMPLE_ROWS) -> Any:
    """A few training images' bytes as a DataFrame (the logged model's input example): the smallest file of each
    class in turn, so that the example is short and shows different classes."""
    import pandas as pd

    chosen: list[Path] = []
    for label in np.unique(labels)[:rows]:
        members = [f for f, y in zip(files, labels) if y == label]
        chosen.append(min(members, key=lambda f: (f.stat().st_size, str(f))))
    return pd.DataFrame({IMAGE_COLUMN: [f.read_bytes() for f in chosen]})


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
            raise ValueError(
                f"{len(bad)} of {len(files)} image file(s) cannot be read: {_named(bad)}; fix or remove "
                "them, or set `unreadable: skip` to leave them out"
            )
    return "classification", "image"


def read_folder(
    files: list[Path], size: int, colour: str, unreadable: str, keep: bool
) -> tuple[list[np.ndarray], np.ndarray, list[int]]:
    """Every file read once, one at a time: the images (only with `keep`), each readable image's
    `channel_sums` (n, 2, channels), and the indices of the readable files. Unreadable files refuse the
    build, or are left out and counted on stderr (`unreadable: skip`)."""
    images, sums, kept, bad = [], [], [], []
    for index, path in enumerate(files):
        try:
            image = read_image(path, size, colour)
        except UNREADABLE:
            bad.append(path)
            continue
        sums.append(channel_sums(image))
        kept.append(index)
        if keep:
            images.append(image)
    if bad and unreadable == "refuse":
        raise ValueError(f"{len(bad)} image file(s) cannot be read: {_named(bad)}")
    if bad:
        print(
            f"image_folder: left out {len(bad)} unreadable image file(s) of {len(files)}: {_named(bad)}",
            file=sys.stderr,
        )
    return images, np.stack(sums), kept


def build_image_folder(params, seed: int) -> DataBundle:
    files, labels, classes = scan(params)
    size, colour, load = int(params["size"]), params["colour"], params.get("load", "memory")
    images, sums, kept = read_folder(files, size, colour, params.get("unreadable", "refuse"), keep=load == "memory")
    files, y = [files[i] for i in kept], labels[kept]
    train, val, test = split_rows(params, len(files), seed, y)
    mean, std = channel_statistics(sums[train], size * size)  # per channel, the training split's statistics
    encoder = ImageEncoder(
        size,
        colour,
        tuple(float(m) for m in mean),
        tuple(float(s) for s in std),
        example=example_frame([files[i] for i in train], y[train]),
    )
    fields: dict[str, Any] = dict(
        input_kind="image", task="classification", output_size=len(classes), encoder=encoder, classes=tuple(classes)
    )
    if load == "stream":
        from .image_files import ImageFiles

        workers = params.get("workers", "auto")
        return DataBundle.from_datasets(
            *(ImageFiles([str(files[i]) for i in split], y[split], encoder) for split in (train, val, test)),
            loader_workers=None if workers == "auto" else int(workers),
            **fields,
        )
    import torch

    x = normalise(np.stack(images), mean, std)
    splits = (train, val, test)
    return bundle_of_splits([torch.as_tensor(x[s]) for s in splits], [torch.as_tensor(y[s]) for s in splits], **fields)


def _headers(files: list[Path]) -> tuple[Counter, Counter, list[Path]]:
    """Each file's size and mode from its header (nothing decoded), and the files whose header Pillow cannot read."""
    from PIL import Image

    sizes: Counter = Counter()
    modes: Counter = Counter()
    bad = []
    for path in files:
        try:
            with Image.open(path) as image:
                sizes[image.size] += 1
                modes[image.mode] += 1
        except UNREADABLE:
            bad.append(path)
    return sizes, modes, bad


def _counted(counts: Counter, label: Any = str) -> str:
    shown = ", ".join(f"{label(key)} ({n})" for key, n in counts.most_common(SHOWN))
    return shown + (f", and {len(counts) - SHOWN} more" if len(counts) > SHOWN else "")


def _class_lines(params, files: int, classes: list[str], counts: np.ndarray) -> list[str]:
    """The folder's classes and their file counts, and a warning where they are unbalanced."""
    lines = [
        f"{image_folder_root(params)}: {files} image file(s) in {len(classes)} classes: "
        + ", ".join(f"{name!r} {n}" for name, n in zip(classes, counts))
    ]
    if counts.max() > 2 * counts.min():
        lines.append(
            f"warning: the classes are unbalanced ({counts.max()} against {counts.min()} files): accuracy "
            "alone may mislead"
        )
    return lines


def describe_image_folder(params, seed: int) -> list[str]:
    """What reading the folder will do, for `automl validate`: classes and their counts, the images' sizes and
    modes and what they become, files left out or refused, the splits and the memory a `load: memory` takes."""
    files, labels, classes = scan(params)
    size, colour, load = int(params["size"]), params["colour"], params.get("load", "memory")
    counts = np.bincount(labels, minlength=len(classes))
    sizes, modes, bad = _headers(files)
    bad += [path for path in _unreadable(files) if path not in bad]
    unreadable = set(bad)
    kept = np.array([i for i, path in enumerate(files) if path not in unreadable], dtype=np.int64)
    lines = _class_lines(params, len(files), classes, counts)
    channels = 3 if colour == "rgb" else 1
    lines.append(
        f"image sizes (width x height): {_counted(sizes, lambda wh: f'{wh[0]}x{wh[1]}')}; every image is "
        f"resized to {size}x{size}"
    )
    lines.append(
        f"modes: {_counted(modes)}; every image is converted to {'RGB' if channels == 3 else 'grey (L)'} "
        f"({channels} channel{'s' if channels > 1 else ''}, colour: {colour})"
    )
    if bad:
        action = (
            "left out (unreadable: skip)"
            if params.get("unreadable", "refuse") == "skip"
            else "refused: the study stops (unreadable: refuse)"
        )
        lines.append(f"{len(bad)} unreadable file(s) {action}: {_named(bad)}")
    if len(kept) >= 2:
        splits = split_rows(params, len(kept), seed, labels[kept])
        lines.append(
            "images for training, validation, test: "
            + ", ".join(str(len(s)) for s in splits)
            + " (stratified by class)"
        )
    held = len(kept) * channels * size * size * 4
    lines.append(
        f"load: {load}: "
        + (
            f"every image held in memory as float32, {held / 2**20:.1f} MiB"
            if load == "memory"
            else "one file read per sample while training"
        )
    )
    return lines
