"""Streamed data (`DataBundle.from_datasets`): mini-batches read through a DataLoader, so that data larger than
memory is never held whole. The in-memory path (orchestrator.training.batches) stays the default for small data."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from orchestrator.api.components import DataBundle
from orchestrator.training.batches import batch_starts

EVAL_BATCH_SIZE = 512
MAX_LOADER_WORKERS = 4


class SeededBatchSampler(Sampler[list[int]]):
    """Index batches over a fresh seeded permutation each epoch; a lone trailing sample joins the previous batch
    (batch norm cannot train on one row), as with in-memory batches. `generator` is what checkpoints save."""

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        self.size = size
        self.batch_size = max(1, min(batch_size, size))
        self.generator = torch.Generator().manual_seed(seed)

    def _starts(self) -> list[int]:
        return batch_starts(self.size, self.batch_size)

    def __len__(self) -> int:
        return len(self._starts())

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.size, generator=self.generator).tolist()
        starts = self._starts()
        for start, end in zip(starts, starts[1:] + [self.size]):
            yield order[start:end]


def loader_workers(data: DataBundle) -> int:
    """The data set's own choice, else one less than this worker's thread share (the training keeps at least
    one; the loader processes' threads are taken from it while training: `StreamBatches.cpu_share`), at most
    MAX_LOADER_WORKERS: 1 on a 2-core machine with one trial at a time, 0 with two."""
    if data.loader_workers is not None:
        return max(0, int(data.loader_workers))
    return max(0, min(MAX_LOADER_WORKERS, torch.get_num_threads() - 1))


def _loader(dataset: Any, data: DataBundle, device: str, workers: int, **kwargs: Any) -> DataLoader:
    return DataLoader(dataset, num_workers=workers, pin_memory=device == "cuda", **kwargs)


class StreamBatches:
    """Training mini-batches of a streamed data set: `len()` batches per epoch, in a seeded order."""

    def __init__(self, data: DataBundle, batch_size: int, seed: int, device: str) -> None:
        self.sampler = SeededBatchSampler(len(data.x_train), batch_size, seed)
        self.loader = _loader(data.x_train, data, device, loader_workers(data), batch_sampler=self.sampler)

    @contextmanager
    def cpu_share(self) -> Iterator[None]:
        """While training: the loader's worker processes take their CPU threads from the training's (restored
        after). PyTorch's threads busy-wait between operations; beside a loader process on the same cores they
        starve it (on 2 cores, 1 loader process beside 2 training threads made epochs about 10x slower)."""
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, threads - self.loader.num_workers))
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    @property
    def generator(self) -> torch.Generator:
        return self.sampler.generator

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[Any]:
        # A generator: the loader starts (and its workers draw this epoch's order) at the first batch asked for,
        # not when Lightning merely calls iter(), so the batch order is that of the in-memory path. The loader is
        # run to its end before the last batch is handed over, so that its worker processes stop then: Lightning
        # does not always ask past the last batch, and a loader iterator left to the garbage collector waits 5 s
        # for each worker to stop.
        iterator = iter(self.loader)
        for _ in range(len(self) - 1):
            yield next(iterator)
        last = next(iterator)
        for _ in iterator:
            raise RuntimeError("the data loader gave more batches than its sampler holds")
        yield last


def evaluation_batches(data: DataBundle, split: str, device: str) -> DataLoader:
    """The `val` or `test` split of a streamed data set in order, in batches of EVAL_BATCH_SIZE, read by the
    training process itself: a second set of loader processes, alive beside the training loader's, would cost
    more memory (about 200 MB each on a CPU) than reading once per epoch in order saves."""
    return _loader(getattr(data, f"x_{split}"), data, device, 0, batch_size=EVAL_BATCH_SIZE, shuffle=False)
