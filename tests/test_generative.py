"""The generative task: MMD as a two-sample distance, the GAN's training step, a study end to end."""

from __future__ import annotations

import torch
from optuna.trial import TrialState

from orchestrator.api.registry import load_registry
from orchestrator.training.fit import train
from orchestrator.training.gan import GANModule, mmd

GAN_STUDY = """
name: tiny-gan
dataset: {name: rings, samples: 600}
task: generative
budget: {trials: 2, max_epochs: 3}
pruner: median  # trials train to the end (not paused at asha rungs)
search:
  architecture: {gan: {latent_dim: 4, width: 32, depth: 1}}
  activation: relu
  loss: [gan_bce, gan_lsgan]
  optimizer: {adam: {lr: 0.002}}
  batch_size: 64
"""


def test_mmd_is_zero_for_one_distribution_and_grows_with_a_shift():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 2, generator=gen), torch.randn(400, 2, generator=gen)
    same = float(mmd(a, a))
    close = float(mmd(a, b))
    shifted = [float(mmd(a + shift, b)) for shift in (0.5, 1.0, 2.0)]
    assert same == 0.0
    assert close < shifted[0] < shifted[1] < shifted[2]


def test_gan_training_moves_the_generator_towards_the_data():
    registry = load_registry()
    data = registry.get("dataset", "rings").spec.build({"modes": 8, "noise": 0.05, "samples": 1500}, 0)
    config = {
        "architecture": "gan",
        "architecture.gan.latent_dim": 4,
        "architecture.gan.width": 64,
        "architecture.gan.depth": 2,
        "activation": "relu",
        "loss": "gan_bce",
        "optimizer": "adam",
        "optimizer.adam.lr": 0.002,
        "optimizer.adam.beta1": 0.5,
        "optimizer.adam.beta2": 0.999,
        "schedule": "constant",
        "batch_size": 64,
    }
    result = train(config, registry, data, max_epochs=12, seed=0)
    assert isinstance(result.model, GANModule)
    history = [epoch["val_mmd"] for epoch in result.history]
    assert len(history) == 12 and "val_loss" not in result.history[0]
    assert min(history[-3:]) < history[0]  # the generated points end closer to the real ones
    assert set(result.test_metrics) == {"test_mmd"}
    samples, real = result.model.evaluation_pair(data.x_test, data.y_test)
    assert samples.shape == real.shape == data.x_test.shape


def test_a_generative_study_runs_and_minimises_mmd(write_study, workdir, cli):
    assert cli("run", write_study(GAN_STUDY), "--no-tracking").code == 0
    from test_run_e2e import load_optuna

    study = load_optuna(workdir, "tiny-gan")
    assert study.direction.name == "MINIMIZE"
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert all(t.value == t.intermediate_values[2] and t.value > 0 for t in study.trials)


def test_validation_refuses_a_classification_loss_on_a_generative_study(write_study, cli):
    result = cli("validate", write_study(GAN_STUDY.replace("[gan_bce, gan_lsgan]", "cross_entropy")))
    assert result.code == 2
    assert "search.loss: incompatible: loss 'cross_entropy' is for classification" in result.err
