"""Properties of a trained network that a multi-objective study can trade against accuracy."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

LATENCY_WARMUP, LATENCY_RUNS = 5, 30


def parameter_count(network: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in network.parameters() if p.requires_grad)


def latency_ms(network: nn.Module, example: torch.Tensor) -> float:
    """Median milliseconds to predict one sample (batch of 1) on the network's device, in eval mode, after a
    warm-up; CUDA work is synchronised so the time is the real one, not the launch."""
    was_training = network.training
    network.eval()
    sample = example[:1]
    sync = torch.cuda.synchronize if sample.is_cuda else (lambda: None)
    times = []
    with torch.no_grad():
        for run in range(LATENCY_WARMUP + LATENCY_RUNS):
            sync()
            start = time.perf_counter()
            network(sample)
            sync()
            if run >= LATENCY_WARMUP:
                times.append((time.perf_counter() - start) * 1000)
    network.train(was_training)
    return statistics.median(times)
