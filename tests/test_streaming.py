"""Streamed data (`DataBundle.from_datasets`, the built-in `dataset: npy`): training reads mini-batches through a
DataLoader with the same per-epoch evaluation, pruning, checkpoints and tracking as the in-memory path; a data
set larger than the memory of the whole run is never loaded whole (its peak resident memory is printed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_optuna, mlflow_runs

from bench.streaming import measure, write_npy
from orchestrator.api.components import DataBundle
from orchestrator.records import PAUSED_ATTR, RESUMED_ATTR
from orchestrator.training.fit import train
from orchestrator.training.streaming import SeededBatchSampler, StreamBatches
from plugins.arrays import build_npy, read_header

STUDY = """
name: tiny
dataset: {{name: npy, path: x.npy, targets: y.npy{extra}}}
objective: {{metric: val_accuracy, direction: maximize}}
budget: {{trials: {trials}, max_epochs: {epochs}}}
seed: 0
{settings}
search:
  architecture:
    mlp: {{depth: 1, width: {width}}}
  activation: relu
  loss: cross_entropy
  optimizer:
    adam: {{lr: {lr}}}
  batch_size: {batch}
"""


def _arrays_params(folder: Path, **overrides) -> dict:
    return {
        "path": str(folder / "x.npy"),
        "targets": str(folder / "y.npy"),
        "task": "auto",
        "standardise": "yes",
        "test_fraction": 0.2,
        "val_fraction": 0.2,
        **overrides,
    }


def test_npy_reads_the_header_only_and_streams_standardised_samples(tmp_path):
    write_npy(tmp_path, rows=300, features=8)
    assert read_header(tmp_path / "x.npy")[:2] == ((300, 8), np.dtype(np.float32))
    data = build_npy(_arrays_params(tmp_path), seed=0)
    assert data.streaming and data.input_kind == "vector" and data.task == "classification"
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (192, 48, 60)
    assert data.input_shape == (8,) and data.classes == (0, 1)
    whole = np.load(tmp_path / "x.npy")
    train_rows = data.x_train.indices
    x0, y0 = data.x_train[0]
    mean, std = whole[train_rows].mean(), whole[train_rows].std()
    assert torch.allclose(x0, torch.as_tensor((whole[train_rows[0]] - mean) / std), atol=1e-5)
    assert int(y0) == int(np.load(tmp_path / "y.npy")[train_rows[0]])
    assert not set(train_rows) & set(data.x_val.indices) and not set(train_rows) & set(data.x_test.indices)


def test_streamed_training_matches_the_in_memory_path(tmp_path, builtin_registry):
    """The same samples, seed and configuration, held as tensors or streamed: the same batches in the same order,
    so the same per-epoch metrics and test accuracy."""
    write_npy(tmp_path, rows=400, features=20)
    streamed = build_npy(_arrays_params(tmp_path), seed=0)

    def tensors(split):
        xs, ys = zip(*(split[i] for i in range(len(split))))
        return torch.stack(xs), torch.stack(ys)

    held = DataBundle(
        *tensors(streamed.x_train),
        *tensors(streamed.x_val),
        *tensors(streamed.x_test),
        input_kind="vector",
        task="classification",
        output_size=2,
    )
    config = {
        "architecture": "mlp",
        "architecture.mlp.depth": 1,
        "architecture.mlp.width": 16,
        "activation": "relu",
        "loss": "cross_entropy",
        "optimizer": "adam",
        "optimizer.adam.lr": 0.01,
        "optimizer.adam.beta1": 0.9,
        "optimizer.adam.beta2": 0.999,
        "schedule": "constant",
        "batch_size": 32,
    }
    results = [train(config, builtin_registry, data, max_epochs=3, seed=0) for data in (held, streamed)]
    for a, b in zip(results[0].history, results[1].history):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key
    assert results[0].test_metrics["test_accuracy"] == pytest.approx(results[1].test_metrics["test_accuracy"])
    assert results[1].history[-1]["val_accuracy"] > 0.9


def test_seeded_batches_cover_each_sample_once_and_never_leave_one_alone():
    sampler = SeededBatchSampler(size=65, batch_size=16, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 4 and len(batches[-1]) == 17  # the 65th joins the last batch
    assert sorted(i for batch in batches for i in batch) == list(range(65))
    assert list(SeededBatchSampler(65, 16, seed=3)) == batches and list(sampler) != batches  # a fresh order


def test_loader_workers_follow_the_bundle_or_the_thread_share(tmp_path):
    write_npy(tmp_path, rows=50, features=4)
    data = build_npy(_arrays_params(tmp_path), seed=0)
    threads = torch.get_num_threads()
    assert StreamBatches(data, 8, 0, "cpu").loader.num_workers == max(0, min(4, threads - 1))
    pinned = StreamBatches(
        DataBundle.from_datasets(
            data.x_train,
            data.x_val,
            data.x_test,
            input_kind="vector",
            task="classification",
            output_size=2,
            loader_workers=0,
        ),
        8,
        0,
        "cuda",
    )
    assert pinned.loader.num_workers == 0 and pinned.loader.pin_memory


def test_a_streamed_study_pauses_resumes_and_is_tracked(workdir, write_study, cli):
    """asha pauses trials at rungs and resumes the promoted ones from their checkpoints: over streamed data too."""
    write_npy(workdir, rows=600, features=16)
    write_study(
        STUDY.format(
            extra="", trials=6, epochs=6, settings="", width="[16, 48]", lr="{low: 0.0005, high: 0.05}", batch=32
        )
    )
    result = cli("run", "study.yaml")
    assert result.code == 0, result.err
    study = load_optuna(workdir)
    assert any(PAUSED_ATTR in t.user_attrs for t in study.trials), "asha paused a trial at a rung"
    resumed = [t for t in study.trials if RESUMED_ATTR in t.user_attrs]
    assert resumed, "a promoted trial continued from its checkpoint"
    best = max(t.value for t in study.trials if t.value is not None)
    assert best > 0.9
    _, parents, children = mlflow_runs(workdir)
    assert len(parents) == 1 and children
    assert any(len(run.data.metrics) and "val_accuracy" in run.data.metrics for run in children)


def test_npy_errors_name_the_file(workdir, write_study, cli):
    write_npy(workdir, rows=20, features=4)
    np.save(workdir / "short.npy", np.zeros(5))
    write_study(
        STUDY.format(extra="", trials=1, epochs=1, settings="", width=16, lr=0.01, batch=8).replace(
            "targets: y.npy", "targets: short.npy"
        )
    )
    result = cli("validate", "study.yaml")
    assert result.code == 2
    assert "short.npy holds 5 targets for 20 inputs" in result.err
    (workdir / "y.npy").unlink()
    write_study(STUDY.format(extra="", trials=1, epochs=1, settings="", width=16, lr=0.01, batch=8))
    result = cli("validate", "study.yaml")
    assert result.code == 2 and "no such file" in result.err and "y.npy" in result.err
    assert not (workdir / "mlflow.db").exists()


def test_data_larger_than_the_runs_memory_is_never_loaded_whole(workdir):
    """4 GiB of inputs (64 KiB per sample), one epoch over all of it: the whole run (every process) stays far
    below the data's size."""
    try:
        code, peak_mb, data_mb, seconds, output = measure(workdir, gib=4)
    finally:
        (workdir / "x.npy").unlink(missing_ok=True)  # pytest keeps the last runs' folders: not 4 GiB of them
    print(
        f"\nstreaming: peak resident memory of the whole run {peak_mb:.0f} MiB for {data_mb:.0f} MiB of inputs "
        f"({data_mb / peak_mb:.1f}x smaller), {seconds:.0f} s"
    )
    assert code == 0, output
    study = load_optuna(workdir, "streaming")
    assert study.trials[0].state.name == "COMPLETE" and study.trials[0].value > 0.9, "it learnt from every batch"
    assert peak_mb < data_mb / 3, f"peak {peak_mb:.0f} MiB is not far below the data's {data_mb:.0f} MiB"
