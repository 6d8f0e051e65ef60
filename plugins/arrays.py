"""`dataset: npy`: the user's arrays larger than memory. Inputs x and targets y as `.npy` files (numpy.save), the
inputs read sample by sample from disk while training (`os.pread`, so neither the whole file nor a memory map of
it is ever resident): only the batches in flight are held. Training reads them through a DataLoader
(`DataBundle.from_datasets`); the targets, one value per sample, are read whole.

Input shapes as for `npz`: (N, features), (N, length, channels) or (N, channels, height, width). Inputs are
standardised with one mean and standard deviation, computed in one pass over the training split, chunk by chunk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator import Choice, DataBundle, Dataset, Text, hookimpl

from .splits import TASK_PARAM, class_indices, fraction_params, infer_task, required_path, scale_targets, split_rows
from .user_files import _labels

INPUT_KINDS = {2: "vector", 3: "sequence", 4: "image"}
CHUNK_BYTES = 8 << 20  # the statistics pass reads this much at a time


def read_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and the byte offset of the data of a C-ordered `.npy` file, from its header alone."""
    try:
        mapped = np.load(path, mmap_mode="r")  # maps the file without reading it: only the header is read
    except ValueError as exc:
        raise ValueError(f"{path} cannot be read as a .npy file of numbers (numpy.save): {exc}") from exc
    if not isinstance(mapped, np.memmap):
        raise ValueError(f"{path} is not a .npy file (numpy.save)")
    if mapped.ndim > 1 and not mapped.flags.c_contiguous:
        raise ValueError(f"{path} is stored in Fortran order; save it with numpy.save(np.ascontiguousarray(x))")
    if mapped.dtype.kind not in "biuf":
        raise ValueError(f"{path} holds {mapped.dtype}; the inputs must be numbers")
    shape, dtype, offset = tuple(mapped.shape), mapped.dtype, int(mapped.offset)
    del mapped
    return shape, dtype, offset


class SampleFile:
    """Rows of a `.npy` file read on demand with `os.pread`; picklable (each process opens its own handle)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shape, self.dtype, self.offset = read_header(path)
        self.row_shape = self.shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self._fd: int | None = None
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None, "_pid": -1}

    def _handle(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def rows(self, start: int, count: int) -> np.ndarray:
        """`count` consecutive rows from `start`, as float32."""
        data = os.pread(self._handle(), self.row_bytes * count, self.offset + self.row_bytes * start)
        return np.frombuffer(data, dtype=self.dtype).reshape(count, *self.row_shape).astype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]


class StreamedSplit:
    """A map-style Dataset: sample `i` of the split, standardised, with its target, as (x, y) tensors."""

    def __init__(self, source: SampleFile, indices: np.ndarray, targets: np.ndarray, mean: float, std: float) -> None:
        self.source, self.indices, self.targets = source, indices, targets
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        import torch

        x = (self.source.rows(int(self.indices[i]), 1)[0] - self.mean) / self.std
        return torch.from_numpy(x), torch.as_tensor(self.targets[i])


def training_statistics(source: SampleFile, train: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the training rows, read in chunks of about CHUNK_BYTES."""
    chosen = np.zeros(len(source), dtype=bool)
    chosen[train] = True
    per_chunk = max(1, CHUNK_BYTES // max(source.row_bytes, 1))
    total = square = 0.0
    count = 0
    for start in range(0, len(source), per_chunk):
        rows = source.rows(start, min(per_chunk, len(source) - start))[chosen[start : start + per_chunk]]
        total += float(rows.sum(dtype=np.float64))
        square += float(np.square(rows, dtype=np.float64).sum())
        count += rows.size
    mean = total / max(count, 1)
    std = float(np.sqrt(max(square / max(count, 1) - mean**2, 0.0)))
    return mean, std if std > 1e-12 else 1.0


def _paths(params) -> tuple[Path, Path]:
    x_path = required_path(params, ".npy")
    if not params.get("targets"):
        raise ValueError("`targets` is required: the .npy file of targets, one per sample (relative to the study file)")
    y_path = required_path({"path": params["targets"]}, "targets .npy")
    return x_path, y_path


def _load(params) -> tuple[SampleFile, np.ndarray, str, str]:
    x_path, y_path = _paths(params)
    source = SampleFile(x_path)
    if len(source.shape) not in INPUT_KINDS:
        raise ValueError(
            f"{x_path} has shape {source.shape}: inputs must be (N, features), (N, length, channels) "
            "or (N, channels, height, width)"
        )
    y = np.load(y_path, mmap_mode="r")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if len(y) != len(source):
        raise ValueError(f"{y_path} holds {len(y)} targets for {len(source)} inputs in {x_path}")
    task = infer_task(np.asarray(y), params["task"], f"targets in {y_path}")
    return source, np.asarray(y), task, INPUT_KINDS[len(source.shape)]


def probe_npy(params) -> tuple[str, str]:
    """Reads the headers and the targets (never the inputs): the task and the input kind."""
    _, _, task, input_kind = _load(params)
    return task, input_kind


def build_npy(params, seed: int) -> DataBundle:
    source, y, task, input_kind = _load(params)
    offset, classes = None, None
    if task == "classification":
        values, targets = class_indices(y)
        output_size, scale, labels = len(values), 1.0, targets
        classes = _labels(values)
    else:
        targets = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        labels, output_size = None, targets.shape[1]
    train, val, test = split_rows(params, len(source), seed, labels)
    if task == "regression":
        (y_train, y_val, y_test), scale = scale_targets(targets[train], targets[val], targets[test])
        offset = tuple(targets[train].mean(axis=0))
    else:
        y_train, y_val, y_test = targets[train], targets[val], targets[test]
    mean, std = training_statistics(source, train) if params["standardise"] == "yes" else (0.0, 1.0)
    splits = [StreamedSplit(source, idx, ys, mean, std) for idx, ys in ((train, y_train), (val, y_val), (test, y_test))]
    return DataBundle.from_datasets(
        *splits,
        input_kind=input_kind,
        task=task,
        output_size=output_size,
        target_scale=scale,
        classes=classes,
        target_offset=offset,
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            "npy",
            "Your own arrays, larger than memory: inputs and targets as .npy files (numpy.save), the inputs read "
            "sample by sample from disk while training (streamed through a DataLoader).",
            params={
                "path": Text(
                    "", help="the inputs' .npy file: (N, features), (N, length, channels) or (N, C, H, W)", is_path=True
                ),
                "targets": Text("", help="the targets' .npy file, one per sample", is_path=True),
                "task": TASK_PARAM,
                "standardise": Choice(
                    ("yes", "no"),
                    default="yes",
                    help="subtract the training split's mean, divide by its std (one pass over it)",
                ),
                **fraction_params(),
            },
            build=build_npy,
            input_kind="vector",
            tasks=("classification", "regression"),
            probe=probe_npy,
        )
    )
