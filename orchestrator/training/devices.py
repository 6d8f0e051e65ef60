"""Device slots: which worker processes a study gets, and what each one may use (a GPU or CPU threads)."""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import UserError


class DeviceError(UserError):
    """The requested devices do not exist on this machine, or the settings contradict each other."""


@dataclass(frozen=True)
class Slot:
    """One worker process: a name for progress lines, the GPU it is pinned to (None: CPU), its CPU threads."""

    name: str
    gpu: int | None
    threads: int

    def environment(self) -> dict[str, str]:
        """Variables a worker for this slot starts with (set before torch is imported)."""
        threads = str(self.threads)
        return {
            "CUDA_VISIBLE_DEVICES": "" if self.gpu is None else str(self.gpu),
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
        }


def visible_gpu_count() -> int:
    """GPUs this process can see (0 without CUDA). Asked without importing PyTorch where possible (about a second,
    before any worker can start): a CPU build of torch sees none; for a CUDA build the CUDA driver counts them."""
    cuda_build = _torch_cuda_build()
    if cuda_build is False:
        return 0
    if cuda_build is True:
        count = _driver_device_count()
        if count is not None:
            return count
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def training_device() -> str:
    """`cuda` when a GPU is visible, else `cpu` (imports torch, not Lightning)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _torch_cuda_build() -> bool | None:
    """Whether the installed torch is a CUDA build, read from its version.py (None: cannot tell)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        text = (Path(list(spec.submodule_search_locations)[0]) / "version.py").read_text()
    except OSError:
        return None
    found = re.search(r"^cuda\s*(?::[^=]*)?=\s*(None|['\"][^'\"]*['\"])", text, re.M)
    return None if found is None else found.group(1) != "None"


def _driver_device_count() -> int | None:
    """The CUDA driver's count of visible devices (honours CUDA_VISIBLE_DEVICES); None if it cannot be asked."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0  # a CUDA build of torch on a machine without the driver: no GPU it could use
    count = ctypes.c_int(0)
    try:
        if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
    except AttributeError:
        return None
    return count.value


def plan_slots(
    devices: str | Sequence[int],
    workers: int | None,
    trials_per_device: int,
    threads: int | None,
    gpu_count: int,
    cpu_count: int | None = None,
) -> list[Slot]:
    """The worker slots for `devices` (auto, cpu or GPU indices) on a machine with `gpu_count` GPUs.

    GPUs: `trials_per_device` workers pinned to each GPU. CPU: `workers` processes (default 1) sharing
    the cores, each with its share of threads unless `threads` says otherwise.
    """
    cpu_count = cpu_count or os.cpu_count() or 1
    for name, value in (("workers", workers), ("trials_per_device", trials_per_device), ("threads", threads)):
        if value is not None and value < 1:
            raise DeviceError(f"{name} must be at least 1 (got {value})")
    if devices == "auto":
        gpus: list[int] = list(range(gpu_count))
    elif devices == "cpu":
        gpus = []
    else:
        gpus = [int(g) for g in devices]
        if any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
            raise DeviceError(f"devices: {gpus} must be distinct GPU indices >= 0")
        missing = [g for g in gpus if g >= gpu_count]
        if missing:
            raise DeviceError(
                f"devices: GPU {', '.join(map(str, missing))} requested, but this machine has "
                f"{gpu_count} visible GPU(s)" + (f" (0..{gpu_count - 1})" if gpu_count else "")
            )
    if gpus:
        if workers is not None and workers != len(gpus) * trials_per_device:
            raise DeviceError(
                f"--workers {workers} contradicts {len(gpus)} GPU(s) x trials_per_device "
                f"{trials_per_device}; on GPUs set trials_per_device, or use devices: cpu"
            )
        per_gpu_threads = threads or max(1, cpu_count // (len(gpus) * trials_per_device))
        return [
            Slot(f"gpu{gpu}" + (f".{k}" if trials_per_device > 1 else ""), gpu, per_gpu_threads)
            for gpu in gpus
            for k in range(trials_per_device)
        ]
    count = workers or 1
    per_worker = threads or max(1, cpu_count // count)
    return [Slot(f"cpu{i}", None, per_worker) for i in range(count)]
