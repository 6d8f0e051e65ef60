"""Trial checkpoints in one process: a run stopped after epoch k and resumed from its checkpoint ends exactly
like an uninterrupted one (RNG, optimizer, schedules, early stopping, batch norm, the GAN's two optimizers);
unusable files are refused with the reason; a failed write lets training go on; old files are swept."""

from __future__ import annotations

import errno
import io
from pathlib import Path

import pytest
import torch

from orchestrator.preemption import STOP, TrialInterrupted
from orchestrator.training import checkpoints
from orchestrator.training.checkpoints import CheckpointError, Checkpointing, CheckpointPolicy
from orchestrator.training.fit import train

EPOCHS = 6
CLASSIFIER = {
    "architecture": "mlp",
    "architecture.mlp.depth": 2,
    "architecture.mlp.width": 32,
    "activation": "relu",
    "loss": "cross_entropy",
    "optimizer": "adam",
    "optimizer.adam.lr": 0.01,
    "optimizer.adam.beta1": 0.9,
    "optimizer.adam.beta2": 0.999,
    "schedule": "constant",
    "batch_size": 64,
}
CONFIGS = {
    "dropout, step schedule (per epoch)": {
        **CLASSIFIER,
        "regularizer.dropout": True,
        "regularizer.dropout.p": 0.3,
        "schedule": "step",
        "schedule.step.every_epochs": 2,
        "schedule.step.gamma": 0.5,
    },
    "batch norm, one-cycle (per step), early stopping": {
        **CLASSIFIER,
        "regularizer.batchnorm": True,
        "regularizer.early_stopping": True,
        "regularizer.early_stopping.patience": 2,
        "schedule": "one_cycle",
        "schedule.one_cycle.max_factor": 5.0,
        "schedule.one_cycle.warmup": 0.3,
    },
    "sgd with momentum, cosine": {
        **CLASSIFIER,
        "optimizer": "sgd",
        "optimizer.sgd.lr": 0.05,
        "optimizer.sgd.momentum": 0.9,
        "optimizer.sgd.nesterov": False,
        "schedule": "cosine",
        "schedule.cosine.min_factor": 0.0,
    },
}


@pytest.fixture(autouse=True)
def one_thread_and_no_stop():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    STOP.reset()


def dataset(registry, name: str):
    spec = registry.get("dataset", name).spec
    return spec.build({key: param.default for key, param in spec.params.items()}, 0)


def stop_after(epoch: int):
    """A listener that asks for a stop at the end of `epoch` (as SIGTERM would)."""

    def listen(current: int, metrics: dict) -> None:
        if current == epoch:
            STOP.request(15)

    return listen


def interrupted_then_resumed(config, registry, data, tmp_path: Path, stop_epoch: int, **kwargs):
    policy = CheckpointPolicy(tmp_path, every_epochs=1, min_seconds=0.0)
    path = policy.path("study", 0)
    with pytest.raises(TrialInterrupted) as stopped:
        train(
            config,
            registry,
            data,
            max_epochs=EPOCHS,
            seed=3,
            listeners=[stop_after(stop_epoch)],
            checkpointing=Checkpointing(policy, path),
            **kwargs,
        )
    assert stopped.value.epochs == stop_epoch + 1 and stopped.value.checkpointed
    STOP.reset()
    state = checkpoints.load(path, config, EPOCHS)
    assert state is not None and state["epoch"] == stop_epoch + 1
    replayed: list[int] = []
    resumed = train(
        config,
        registry,
        data,
        max_epochs=EPOCHS,
        seed=3,
        listeners=[lambda e, m: replayed.append(e)],
        checkpointing=Checkpointing(policy, path, resume=state),
        **kwargs,
    )
    return resumed, replayed


@pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))
def test_a_resumed_run_ends_exactly_like_an_uninterrupted_one(builtin_registry, tmp_path, config):
    data = dataset(builtin_registry, "digits")
    whole = train(
        config, builtin_registry, data, max_epochs=EPOCHS, seed=3, monitor="val_accuracy", direction="maximize"
    )
    resumed, replayed = interrupted_then_resumed(
        config, builtin_registry, data, tmp_path, stop_epoch=2, monitor="val_accuracy", direction="maximize"
    )
    assert resumed.resumed_at == 3
    assert replayed == list(range(len(whole.history)))  # the listeners see every epoch once
    assert resumed.history == whole.history
    assert resumed.best_epoch == whole.best_epoch
    assert resumed.test_metrics == whole.test_metrics


def test_a_gan_resumes_exactly(builtin_registry, tmp_path):
    config = {
        "architecture": "gan",
        "activation": "leaky_relu",
        "activation.leaky_relu.negative_slope": 0.2,
        "loss": "gan_bce",
        "optimizer": "adam",
        "optimizer.adam.lr": 0.001,
        "optimizer.adam.beta1": 0.5,
        "optimizer.adam.beta2": 0.999,
        "schedule": "constant",
        "batch_size": 64,
    }
    arch = builtin_registry.get("architecture", "gan").spec
    config.update({f"architecture.gan.{k}": p.default for k, p in arch.params.items()})
    data = dataset(builtin_registry, "rings")
    whole = train(config, builtin_registry, data, max_epochs=EPOCHS, seed=3, monitor="val_mmd")
    resumed, _ = interrupted_then_resumed(config, builtin_registry, data, tmp_path, stop_epoch=1, monitor="val_mmd")
    assert resumed.history == whole.history and resumed.test_metrics == whole.test_metrics


def checkpoint_of_two_epochs(registry, data, tmp_path: Path) -> tuple[CheckpointPolicy, Path]:
    """A CLASSIFIER run stopped after its second epoch: its policy and checkpoint file."""
    policy = CheckpointPolicy(tmp_path, every_epochs=1, min_seconds=0.0)
    path = policy.path("study", 0)
    with pytest.raises(TrialInterrupted):
        train(
            CLASSIFIER,
            registry,
            data,
            max_epochs=EPOCHS,
            seed=0,
            listeners=[stop_after(1)],
            checkpointing=Checkpointing(policy, path),
        )
    STOP.reset()
    return policy, path


def test_unusable_checkpoints_are_refused_with_the_reason(builtin_registry, tmp_path):
    data = dataset(builtin_registry, "digits")
    policy, path = checkpoint_of_two_epochs(builtin_registry, data, tmp_path)
    good = path.read_bytes()
    assert checkpoints.load(policy.path("study", 7), CLASSIFIER, EPOCHS) is None  # none there
    with pytest.raises(CheckpointError, match="another configuration"):
        checkpoints.load(path, {**CLASSIFIER, "batch_size": 32}, EPOCHS)
    with pytest.raises(CheckpointError, match="max_epochs 6, the study now trains 8"):
        checkpoints.load(path, CLASSIFIER, 8)
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="is unreadable"):
        checkpoints.load(path, CLASSIFIER, EPOCHS)
    torch.save({"format": 1, "evil": io.StringIO("arbitrary objects are never unpickled")}, path)
    with pytest.raises(CheckpointError, match="is unreadable"):
        checkpoints.load(path, CLASSIFIER, EPOCHS)


def test_a_checkpoint_that_cannot_be_restored_raises_before_any_epoch_is_replayed(builtin_registry, tmp_path):
    data = dataset(builtin_registry, "digits")
    policy, path = checkpoint_of_two_epochs(builtin_registry, data, tmp_path)
    state = checkpoints.load(path, CLASSIFIER, EPOCHS)
    state["module"] = {"network.0.weight": torch.zeros(1)}  # shapes of another network
    seen: list[int] = []
    with pytest.raises(CheckpointError, match="does not fit this configuration"):
        train(
            CLASSIFIER,
            builtin_registry,
            data,
            max_epochs=EPOCHS,
            seed=0,
            listeners=[lambda e, m: seen.append(e)],
            checkpointing=Checkpointing(policy, path, resume=state),
        )
    assert seen == []


def test_a_failed_write_lets_the_trial_go_on_and_is_reported_once(builtin_registry, tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", disk_full)
    out = io.StringIO()
    report = checkpoints.warn_once(out)
    policy = CheckpointPolicy(tmp_path, every_epochs=1, min_seconds=0.0)
    result = train(
        CLASSIFIER,
        builtin_registry,
        dataset(builtin_registry, "digits"),
        max_epochs=4,
        seed=0,
        checkpointing=Checkpointing(policy, policy.path("study", 0), on_write_error=report),
    )
    assert result.epochs == 4 and result.test_metrics
    assert out.getvalue().count("warning: a checkpoint could not be written") == 1
    assert "No space left on device" in out.getvalue()
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no half-written file either


def test_checkpoints_are_written_at_most_every_min_seconds_and_not_at_the_last_epoch(
    builtin_registry, tmp_path, monkeypatch
):
    written: list[int] = []
    original = checkpoints.save_atomic

    def spy(state, path):
        written.append(state["epoch"])
        original(state, path)

    monkeypatch.setattr(checkpoints, "save_atomic", spy)
    data = dataset(builtin_registry, "digits")
    for min_seconds, expected in ((0.0, [1, 2, 3]), (3600.0, [])):
        written.clear()
        policy = CheckpointPolicy(tmp_path, every_epochs=1, min_seconds=min_seconds)
        train(
            CLASSIFIER,
            builtin_registry,
            data,
            max_epochs=4,
            seed=0,
            checkpointing=Checkpointing(policy, policy.path("study", 0)),
        )
        assert written == expected


def test_sweep_deletes_only_checkpoints_no_trial_will_resume(tmp_path):
    policy = CheckpointPolicy(tmp_path)
    for lineage in (0, 1, 2):
        policy.path("study", lineage).parent.mkdir(parents=True, exist_ok=True)
        policy.path("study", lineage).write_bytes(b"x")
    assert checkpoints.sweep(policy, "study", live={1}) == 2
    assert [p.name for p in (tmp_path / "study").iterdir()] == ["trial-1.pt"]
    assert checkpoints.sweep(policy, "study", live=set()) == 1
    assert not (tmp_path / "study").exists()  # nor an empty folder
