"""What decides a trial's numbers besides its configuration, its seed and the data: the CPU threads its worker
trained with, the device, the processor and the library versions. Each trial records it as it starts
(records.RUNTIME_ATTR), so that `automl rerun` re-creates what it can (the threads) and says what it cannot
(another device, processor or library version) instead of silently differing."""

from __future__ import annotations

import contextlib
import functools
import platform
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

COMPARED = ("device", "device_name", "processor", "torch", "pytorch_lightning", "deterministic")


def cpu_fields() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def processor() -> str:
    """The CPU's model name (and, where a cloud names several generations alike, its family and model)."""
    fields = cpu_fields()
    name = fields.get("model name") or platform.processor() or platform.machine()
    generation = f" (family {fields['cpu family']} model {fields['model']})" if "cpu family" in fields else ""
    return name + generation


@functools.lru_cache(maxsize=1)
def _fixed() -> dict[str, Any]:
    import pytorch_lightning
    import torch

    cuda = torch.cuda.is_available()
    return {
        "device": "cuda" if cuda else "cpu",
        "device_name": torch.cuda.get_device_name() if cuda else None,
        "processor": processor(),
        "torch": torch.__version__,
        "pytorch_lightning": pytorch_lightning.__version__,
    }


def current_runtime() -> dict[str, Any]:
    """This process's runtime as a trial records it."""
    import torch

    return {
        "threads": torch.get_num_threads(),
        **_fixed(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
    }


def differences(recorded: Mapping[str, Any], here: Mapping[str, Any]) -> list[str]:
    """What differs between a trial's recorded runtime and this one, besides the threads (which a rerun sets)."""
    return [
        f"{key}: trained with {recorded.get(key)!r}, here {here.get(key)!r}"
        for key in COMPARED
        if key in recorded and recorded.get(key) != here.get(key)
    ]


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """PyTorch's CPU threads set to `threads` for the block (as a worker started with OMP_NUM_THREADS has them)."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
