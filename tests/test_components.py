"""The built-in components, one at a time: configurations are sampled through the search space with
`optuna.trial.FixedTrial`, assembled into a model and run forward and backward on tiny data."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
import pytest
import pytorch_lightning as pl
import torch
from optuna.trial import FixedTrial
from torch import nn

from orchestrator.api.components import DataBundle
from orchestrator.api.registry import Registry
from orchestrator.quiet import quiet_libraries
from orchestrator.search.space import ComponentOptions, RegularizerOption, SearchSpace
from orchestrator.study.studyfile import SHARED_PARAMS, load_study
from orchestrator.training.assembly import assemble
from orchestrator.training.devices import training_device
from orchestrator.training.fit import train


@pytest.fixture(scope="module")
def registry(builtin_registry: Registry) -> Registry:
    """The built-ins on their own (conftest's shared registry)."""
    return builtin_registry


def sample_config(
    registry: Registry,
    *,
    architecture: str = "mlp",
    activation: str = "relu",
    loss: str = "cross_entropy",
    optimizer: str = "adam",
    schedule: str = "constant",
    regularizers: tuple[str, ...] = (),
    values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A flat configuration from `SearchSpace.sample`: declared defaults unless `values` says otherwise."""
    chosen = {
        "architecture": architecture,
        "activation": activation,
        "loss": loss,
        "optimizer": optimizer,
        "schedule": schedule,
    }
    components = {
        kind: ComponentOptions(kind, {name: dict(registry.get(kind, name).spec.params)})
        for kind, name in chosen.items()
    }
    regs = tuple(RegularizerOption(name, dict(registry.get("regularizer", name).spec.params)) for name in regularizers)
    space = SearchSpace(components, regs, dict(SHARED_PARAMS))
    fixed: dict[str, Any] = {"batch_size": 100}
    for kind, name in chosen.items():
        for pname, param in registry.get(kind, name).spec.params.items():
            fixed[f"{kind}.{name}.{pname}"] = param.default
    for name in regularizers:
        fixed[f"regularizer.{name}"] = True
        for pname, param in registry.get("regularizer", name).spec.params.items():
            fixed[f"regularizer.{name}.{pname}"] = param.default
    fixed.update(values or {})
    return space.sample(FixedTrial(fixed))


def tiny_data(
    shape: tuple[int, ...] = (6,), n: int = 24, classes: int = 3, input_kind: str = "vector", seed: int = 0
) -> DataBundle:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g)
    y = torch.arange(n) % classes
    return DataBundle(
        x, y, x[:6], y[:6], x[6:12], y[6:12], input_kind=input_kind, task="classification", output_size=classes
    )


def linear_shapes(network: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in network.modules() if isinstance(m, nn.Linear)]


def forward_backward(module, data: DataBundle) -> torch.Tensor:
    """One training step's loss on the training split, backpropagated; returns the outputs."""
    outputs = module(data.x_train)
    loss = module.training_step((data.x_train, data.y_train), 0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for name, param in module.network.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert any(param.grad.abs().sum() > 0 for param in module.network.parameters())
    return outputs


# ---------------------------------------------------------------------------
# Search space -> configuration
# ---------------------------------------------------------------------------


def test_study_file_space_samples_only_the_chosen_components_params(registry, tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(
        textwrap.dedent("""
        name: components
        dataset: digits
        search:
          architecture: {mlp: {depth: [1, 3], width: {low: 16, high: 64}}}
          activation: [relu, sigmoid]
          loss: [cross_entropy, label_smoothing]
          optimizer: [sgd, adam]
          regularizers: {dropout: {p: {low: 0.1, high: 0.5}}, l2: {}}
          batch_size: 32
    """)
    )
    spec = load_study(path, registry)
    config = spec.space.sample(
        FixedTrial(
            {
                "architecture.mlp.depth": 3,
                "architecture.mlp.width": 24,
                "activation": "sigmoid",
                "loss": "label_smoothing",
                "loss.label_smoothing.smoothing": 0.2,
                "optimizer": "sgd",
                "optimizer.sgd.lr": 0.1,
                "optimizer.sgd.momentum": 0.5,
                "optimizer.sgd.nesterov": False,
                "regularizer.dropout": True,
                "regularizer.dropout.p": 0.4,
                "regularizer.l2": False,
                # Parameters of components not chosen: never asked for, so absent from the configuration.
                "optimizer.adam.lr": 0.01,
                "regularizer.l2.weight": 0.001,
            }
        )
    )
    assert config == {
        "architecture": "mlp",
        "architecture.mlp.depth": 3,
        "architecture.mlp.width": 24,
        "activation": "sigmoid",
        "loss": "label_smoothing",
        "loss.label_smoothing.smoothing": 0.2,
        "optimizer": "sgd",
        "optimizer.sgd.lr": 0.1,
        "optimizer.sgd.momentum": 0.5,
        "optimizer.sgd.nesterov": False,
        "schedule": "constant",  # the study names no schedule
        "regularizer.dropout": True,
        "regularizer.dropout.p": 0.4,
        "regularizer.l2": False,
        "batch_size": 32,
    }

    module = assemble(config, registry, tiny_data(shape=(1, 8, 8), classes=10, n=30, input_kind="image"))
    assert linear_shapes(module.network) == [(64, 24), (24, 24), (24, 24), (24, 10)]
    assert sum(isinstance(m, nn.Sigmoid) for m in module.network.modules()) == 3
    assert [m.p for m in module.network.modules() if isinstance(m, nn.Dropout)] == [0.4] * 3
    assert module.penalties == []
    assert module.loss_fn.label_smoothing == 0.2
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["lr"] == 0.1 and optimizer.param_groups[0]["momentum"] == 0.5


SCHEDULE_STUDY = """
name: schedules
dataset: digits
search:
  architecture: {mlp: {depth: 1, width: [16, 32]}}
  activation: [relu, sigmoid]
  loss: cross_entropy
  optimizer: [sgd, adam]
  batch_size: 64
"""


@pytest.mark.parametrize("schedule", [None, "all"], ids=["omitted", "all"])
def test_schedule_is_constant_unless_the_study_searches_it(registry, tmp_path, schedule):
    path = tmp_path / "study.yaml"
    path.write_text(textwrap.dedent(SCHEDULE_STUDY) + (f"  schedule: {schedule}\n" if schedule else ""))
    spec = load_study(path, registry)
    names = ["constant"] if schedule is None else registry.names("schedule")
    if schedule == "all":
        assert {"constant", "cosine", "step", "one_cycle"} <= set(names)
    assert list(spec.space.components["schedule"].options) == names

    # Trials as the study runner asks for them: the sampler is offered exactly these schedules.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    configs = []
    for _ in range(30):
        trial = study.ask()
        config = spec.space.sample(trial)
        configs.append(config)
        if schedule is None:
            assert "schedule" not in trial.distributions  # fixed, not searched
        else:
            assert trial.distributions["schedule"].choices == tuple(names)
        study.tell(trial, 0.0)
    if schedule is None:
        assert all(config["schedule"] == "constant" for config in configs)
        assert not any(key.startswith("schedule.") for config in configs for key in config)

    # Each schedule, when chosen, brings exactly its own declared parameters.
    for name in names:
        declared = registry.get("schedule", name).spec.params
        config = spec.space.sample(
            FixedTrial(
                {
                    "architecture.mlp.width": 16,
                    "activation": "relu",
                    "optimizer": "adam",
                    "schedule": name,
                    **{
                        f"optimizer.adam.{p}": v.default
                        for p, v in registry.get("optimizer", "adam").spec.params.items()
                    },
                    **{f"schedule.{name}.{p}": v.default for p, v in declared.items()},
                }
            )
        )
        assert config["schedule"] == name
        assert {key for key in config if key.startswith("schedule.")} == {f"schedule.{name}.{p}" for p in declared}


def test_every_schedule_builds_a_scheduler_stepping_at_its_interval(registry):
    data = tiny_data()
    names = registry.names("schedule")
    assert {"constant", "cosine", "step", "one_cycle"} <= set(names)
    for name in names:
        spec = registry.get("schedule", name).spec
        config = sample_config(registry, schedule=name)
        assert config["schedule"] == name
        setup = assemble(config, registry, data, max_epochs=3, steps_per_epoch=4).configure_optimizers()
        if name == "constant":  # the optimizer's own learning rate: no scheduler at all
            assert isinstance(setup, torch.optim.Adam)
            continue
        assert isinstance(setup["optimizer"], torch.optim.Adam), name
        assert setup["lr_scheduler"]["interval"] == spec.interval, name
        assert isinstance(setup["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.LRScheduler), name


# ---------------------------------------------------------------------------
# Architecture and activations
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("depth, width, shape", [(1, 16, (6,)), (3, 40, (2, 3)), (4, 20, (1, 4, 4))])
def test_mlp_depth_and_width_give_the_expected_layers(registry, depth, width, shape):
    config = sample_config(registry, values={"architecture.mlp.depth": depth, "architecture.mlp.width": width})
    data = tiny_data(shape=shape, classes=5)
    module = assemble(config, registry, data)
    features = math.prod(shape)
    assert linear_shapes(module.network) == [(features, width)] + [(width, width)] * (depth - 1) + [(width, 5)]
    assert isinstance(module.network[0], nn.Flatten)
    outputs = forward_backward(module, data)
    assert outputs.shape == (len(data.x_train), 5)


@pytest.mark.parametrize(
    "activation, present, absent", [("relu", nn.ReLU, nn.Sigmoid), ("sigmoid", nn.Sigmoid, nn.ReLU)]
)
def test_activation_is_used_after_every_hidden_layer(registry, activation, present, absent):
    config = sample_config(registry, activation=activation, values={"architecture.mlp.depth": 3})
    data = tiny_data()
    module = assemble(config, registry, data)
    layers = list(module.network)
    linears = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear)]
    assert [type(layers[i + 1]) for i in linears[:-1]] == [present] * 3
    assert not any(isinstance(m, absent) for m in layers)
    forward_backward(module, data)
    # The activation is what bounds the hidden values: sigmoid in (0, 1), relu >= 0 and unbounded.
    hidden = module.network[:3](data.x_train * 100)
    if activation == "sigmoid":
        assert hidden.min() >= 0 and hidden.max() <= 1
    else:
        assert hidden.min() == 0 and hidden.max() > 1


# ---------------------------------------------------------------------------
# Regularizers
# ---------------------------------------------------------------------------


def test_dropout_regularizer_inserts_dropout_with_its_rate(registry):
    data = tiny_data(n=200)
    config = sample_config(
        registry, regularizers=("dropout",), values={"architecture.mlp.depth": 2, "regularizer.dropout.p": 0.35}
    )
    module = assemble(config, registry, data)
    layers = list(module.network)
    assert [m.p for m in layers if isinstance(m, nn.Dropout)] == [0.35, 0.35]
    assert [type(m) for m in layers[1:4]] == [nn.Linear, nn.ReLU, nn.Dropout]
    forward_backward(module, data)
    module.train()
    assert not torch.equal(module(data.x_train), module(data.x_train))  # stochastic while training
    module.eval()
    assert torch.equal(module(data.x_train), module(data.x_train))

    off = sample_config(registry, regularizers=("dropout",), values={"regularizer.dropout": False})
    assert off["regularizer.dropout"] is False and "regularizer.dropout.p" not in off
    assert not any(isinstance(m, nn.Dropout) for m in assemble(off, registry, data).network.modules())
    plain = sample_config(registry)
    assert not any(isinstance(m, nn.Dropout) for m in assemble(plain, registry, data).network.modules())


def test_l2_regularizer_adds_a_penalty_that_grows_with_the_weights(registry):
    data = tiny_data()
    torch.manual_seed(0)
    config = sample_config(registry, regularizers=("l2",), values={"regularizer.l2.weight": 1e-3})
    module = assemble(config, registry, data)
    assert len(module.penalties) == 1
    penalty = module.penalties[0]
    squares = sum(p.detach().pow(2).sum() for p in module.network.parameters() if p.ndim > 1)
    value = penalty(module.network)
    assert value > 0
    assert torch.allclose(value, 1e-3 * squares)

    # The penalty is part of the training loss, and so of the gradient.
    loss = module.training_step((data.x_train, data.y_train), 0)
    assert torch.allclose(loss, module.loss_fn(module(data.x_train), data.y_train) + value)

    # Twice the weights: four times the penalty (biases are not penalised).
    with torch.no_grad():
        for m in module.network.modules():
            if isinstance(m, nn.Linear):
                m.weight.mul_(2)
                m.bias.add_(10)
    assert torch.allclose(penalty(module.network), 4 * value)

    stronger = assemble(
        sample_config(registry, regularizers=("l2",), values={"regularizer.l2.weight": 1e-2}), registry, data
    )
    stronger.network.load_state_dict(module.network.state_dict())
    assert torch.allclose(stronger.penalties[0](stronger.network), 10 * penalty(module.network))

    off = sample_config(registry, regularizers=("l2",), values={"regularizer.l2": False})
    assert assemble(off, registry, data).penalties == []


@pytest.mark.parametrize("optimizer, extra_decay", [("sgd", 0.0), ("adam", 0.0), ("adamw", 0.01), ("rmsprop", 0.0)])
def test_l2_decay_form_sets_weight_decay_and_adds_no_penalty(registry, optimizer, extra_decay):
    data = tiny_data()
    torch.manual_seed(0)
    values = {"regularizer.l2.weight": 1e-3, "regularizer.l2.form": "decay"}
    if optimizer == "adamw":
        values["optimizer.adamw.weight_decay"] = extra_decay  # AdamW's own decay adds to the regularizer's
    config = sample_config(registry, optimizer=optimizer, regularizers=("l2",), values=values)
    assert config["regularizer.l2.form"] == "decay"
    module = assemble(config, registry, data)
    assert module.penalties == []
    loss = module.training_step((data.x_train, data.y_train), 0)
    assert torch.equal(loss, module.loss_fn(module(data.x_train), data.y_train))  # nothing added to the loss
    group = module.configure_optimizers().param_groups[0]
    assert group["weight_decay"] == pytest.approx(1e-3 + extra_decay)

    penalty = sample_config(
        registry, optimizer=optimizer, regularizers=("l2",), values={**values, "regularizer.l2.form": "penalty"}
    )
    module = assemble(penalty, registry, data)
    assert len(module.penalties) == 1
    assert module.configure_optimizers().param_groups[0]["weight_decay"] == pytest.approx(extra_decay)


def test_l2_decay_shrinks_the_weights_in_the_optimizer_step(registry):
    data = tiny_data()
    values = {"optimizer.sgd.lr": 0.5, "optimizer.sgd.momentum": 0.0, "optimizer.sgd.nesterov": False}
    steps = {}
    for form in ("decay", None):
        torch.manual_seed(0)
        regs = ("l2",) if form else ()
        extra = {"regularizer.l2.weight": 0.1, "regularizer.l2.form": form} if form else {}
        module = assemble(
            sample_config(registry, optimizer="sgd", regularizers=regs, values={**values, **extra}), registry, data
        )
        optimizer = module.configure_optimizers()
        before = [p.detach().clone() for p in module.network.parameters()]
        forward_backward(module, data)
        grads = [p.grad.detach().clone() for p in module.network.parameters()]
        optimizer.step()
        steps[form] = before, grads, [p.detach().clone() for p in module.network.parameters()]
    (before, grads, after), (plain_before, plain_grads, _) = steps["decay"], steps[None]
    for b, g, a, pb, pg in zip(before, grads, after, plain_before, plain_grads):
        assert torch.equal(b, pb) and torch.allclose(g, pg)  # same start, same gradient: no penalty term
        assert torch.allclose(a, b - 0.5 * (g + 0.1 * b), atol=1e-6)  # SGD with weight decay 0.1


def test_batchnorm_trains_whatever_the_batch_size(registry):
    data = tiny_data(n=25)  # 25 training rows in batches of 8: the last batch holds a single row
    config = sample_config(registry, regularizers=("batchnorm",), values={"batch_size": 8})
    assert any(isinstance(m, nn.BatchNorm1d) for m in assemble(config, registry, data).network.modules())
    result = train(config, registry, data, max_epochs=1, seed=0)
    assert result.epochs == 1 and math.isfinite(result.history[0]["train_loss"])


# ---------------------------------------------------------------------------
# Optimizers
# ---------------------------------------------------------------------------


def test_sgd_gets_lr_momentum_and_nesterov_from_the_config(registry):
    data = tiny_data()
    config = sample_config(
        registry,
        optimizer="sgd",
        values={"optimizer.sgd.lr": 0.07, "optimizer.sgd.momentum": 0.5, "optimizer.sgd.nesterov": True},
    )
    module = assemble(config, registry, data)
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.SGD)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (0.07, 0.5, True, 0.0)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(module.network.parameters()))

    before = [p.detach().clone() for p in module.network.parameters()]
    forward_backward(module, data)
    optimizer.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, module.network.parameters()))

    # Nesterov needs momentum: with none it is switched off instead of failing.
    no_momentum = sample_config(
        registry, optimizer="sgd", values={"optimizer.sgd.momentum": 0.0, "optimizer.sgd.nesterov": True}
    )
    group = assemble(no_momentum, registry, data).configure_optimizers().param_groups[0]
    assert (group["momentum"], group["nesterov"]) == (0.0, False)


def test_adam_gets_lr_and_betas_from_the_config(registry):
    data = tiny_data()
    config = sample_config(
        registry,
        optimizer="adam",
        values={"optimizer.adam.lr": 0.003, "optimizer.adam.beta1": 0.8, "optimizer.adam.beta2": 0.95},
    )
    module = assemble(config, registry, data)
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam)
    group = optimizer.param_groups[0]
    assert (group["lr"], tuple(group["betas"]), group["weight_decay"]) == (0.003, (0.8, 0.95), 0.0)
    before = [p.detach().clone() for p in module.network.parameters()]
    forward_backward(module, data)
    optimizer.step()
    # Adam's first step moves every parameter by about lr.
    for b, p in zip(before, module.network.parameters()):
        step = (p.detach() - b).abs().max()
        assert 0.001 < step <= 0.0031


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------


def test_label_smoothing_sets_label_smoothing(registry):
    data = tiny_data()
    smooth = assemble(
        sample_config(registry, loss="label_smoothing", values={"loss.label_smoothing.smoothing": 0.2}), registry, data
    )
    plain = assemble(sample_config(registry, loss="cross_entropy"), registry, data)
    assert isinstance(smooth.loss_fn, nn.CrossEntropyLoss) and smooth.loss_fn.label_smoothing == 0.2
    assert isinstance(plain.loss_fn, nn.CrossEntropyLoss) and plain.loss_fn.label_smoothing == 0.0
    forward_backward(smooth, data)
    # Confident, correct logits: no loss without smoothing, a clear loss with it.
    logits = 30 * nn.functional.one_hot(data.y_train, 3).float()
    assert plain.loss_fn(logits, data.y_train) < 1e-6
    assert smooth.loss_fn(logits, data.y_train) > 1.0


def test_mse_fits_a_regression_target(registry):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.tensor([[1.5], [-2.0], [0.5], [1.0]]) + 0.5
    data = DataBundle(x, y, x[:8], y[:8], x[8:16], y[8:16], input_kind="vector", task="regression", output_size=1)
    torch.manual_seed(0)
    config = sample_config(
        registry,
        loss="mse",
        values={"architecture.mlp.depth": 1, "architecture.mlp.width": 32, "optimizer.adam.lr": 0.01},
    )
    module = assemble(config, registry, data)
    assert isinstance(module.loss_fn, nn.MSELoss)
    assert module(x).shape == (64, 1)
    optimizer = module.configure_optimizers()
    with torch.no_grad():
        initial = float(module.loss_fn(module(x), y))
        assert initial == pytest.approx(float(((module(x) - y) ** 2).mean()))
    for _ in range(150):
        optimizer.zero_grad()
        module.training_step((x, y), 0).backward()
        optimizer.step()
    with torch.no_grad():
        final = float(module.loss_fn(module(x), y))
    assert final < 0.05 * initial


# ---------------------------------------------------------------------------
# Data sets
# ---------------------------------------------------------------------------


def row_indices(rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For each row, the index of the identical row of `reference` up to one global affine map
    (standardisation): rows are compared after per-row centring and scaling."""

    def normalise(a: np.ndarray) -> torch.Tensor:
        a = a.reshape(len(a), -1).astype(np.float64)
        a = a - a.mean(axis=1, keepdims=True)
        return torch.as_tensor(a / np.linalg.norm(a, axis=1, keepdims=True))

    distances = torch.cdist(normalise(rows), normalise(reference))
    best = distances.min(dim=1)
    assert float(best.values.max()) < 1e-4, "a row is not in the reference data"
    return best.indices.numpy()


def test_mnist1d_shapes_classes_and_sizes(registry):
    dataset = registry.get("dataset", "mnist1d").spec
    assert dataset.input_kind == "sequence"
    data = dataset.build({"val_fraction": 0.1, "train_samples": 3800}, 0)
    assert (data.input_kind, data.task, data.output_size) == ("sequence", "classification", 10)
    assert data.x_train.shape == (3600, 40, 1) and data.x_val.shape == (400, 40, 1)
    assert data.x_test.shape == (1000, 40, 1)
    for x in (data.x_train, data.x_val, data.x_test):
        assert x.dtype == torch.float32
    for y in (data.y_train, data.y_val, data.y_test):
        assert y.dtype == torch.int64
        assert set(y.unique().tolist()) == set(range(10))
    assert abs(float(data.x_train.mean())) < 1e-4 and abs(float(data.x_train.std()) - 1) < 1e-3
    capped = dataset.build({"val_fraction": 0.2, "train_samples": 100}, 0)
    assert capped.x_train.shape == (100, 40, 1) and capped.x_val.shape == (800, 40, 1)


def test_mnist1d_is_standardised_with_the_training_split_and_split_by_seed(registry):
    from automl_plugins.datasets import _mnist1d_arrays  # the cached raw arrays

    raw_x, _, raw_test, _ = _mnist1d_arrays()
    dataset = registry.get("dataset", "mnist1d").spec
    params = {"val_fraction": 0.1, "train_samples": 200}  # a small training split: its stats stand out
    data = dataset.build(params, 0)

    train_idx = row_indices(data.x_train.numpy(), raw_x)
    val_idx = row_indices(data.x_val.numpy(), raw_x)
    test_idx = row_indices(data.x_test.numpy(), raw_test)
    assert len(set(train_idx)) == 200 and len(set(val_idx)) == 400
    assert not set(train_idx) & set(val_idx)
    assert sorted(test_idx) == list(range(1000))

    train_raw = raw_x[train_idx][..., None]
    mean, std = train_raw.mean(), train_raw.std()
    assert abs(mean - raw_x.mean()) > 1e-3  # otherwise this test could not tell the two apart
    for x, raw in (
        (data.x_train, train_raw),
        (data.x_val, raw_x[val_idx][..., None]),
        (data.x_test, raw_test[test_idx][..., None]),
    ):
        assert np.allclose(x.numpy(), (raw - mean) / std, atol=1e-5)
    assert abs(float(data.x_train.mean())) < 1e-5 and abs(float(data.x_train.std(unbiased=False)) - 1) < 1e-4

    again = dataset.build(params, 0)
    assert torch.equal(again.x_train, data.x_train) and torch.equal(again.y_val, data.y_val)
    other = dataset.build(params, 1)
    other_idx = row_indices(other.x_train.numpy(), raw_x)
    assert set(other_idx) != set(train_idx)
    assert not set(row_indices(other.x_val.numpy(), raw_x)) & set(other_idx)


def test_digits_images_and_stratified_test_split(registry):
    dataset = registry.get("dataset", "digits").spec
    assert dataset.input_kind == "image"
    defaults = {name: param.default for name, param in dataset.params.items()}
    assert defaults == {"test_fraction": 0.25, "val_fraction": 0.15}
    data = dataset.build(defaults, 0)
    assert (data.input_kind, data.task, data.output_size) == ("image", "classification", 10)
    assert data.x_train.shape[1:] == (1, 8, 8) and data.x_val.shape[1:] == (1, 8, 8)
    assert data.x_test.shape[1:] == (1, 8, 8)
    total = len(data.x_train) + len(data.x_val) + len(data.x_test)
    assert total == 1797
    assert len(data.x_test) == math.ceil(0.25 * 1797)
    assert len(data.x_val) == math.ceil(0.15 * (1797 - len(data.x_test)))
    all_y = torch.cat([data.y_train, data.y_val, data.y_test])
    for c in range(10):
        in_class = int((all_y == c).sum())
        assert abs(int((data.y_test == c).sum()) - 0.25 * in_class) <= 1, c
        assert abs(int((data.y_val == c).sum()) - 0.15 * 0.75 * in_class) <= 1.5, c
    assert abs(float(data.x_train.mean())) < 1e-4 and abs(float(data.x_train.std()) - 1) < 1e-3

    assert torch.equal(dataset.build(defaults, 0).x_test, data.x_test)
    assert not torch.equal(dataset.build(defaults, 1).x_test, data.x_test)


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits(registry) -> DataBundle:
    quiet_libraries()
    return (
        registry.get("dataset", "digits")
        .spec.build({"test_fraction": 0.25, "val_fraction": 0.15}, 0)
        .to(training_device())
    )


def digits_config(registry) -> dict[str, Any]:
    return sample_config(
        registry,
        values={"architecture.mlp.depth": 1, "architecture.mlp.width": 32, "optimizer.adam.lr": 0.01, "batch_size": 64},
    )


@pytest.fixture(scope="module")
def trained(registry, digits):
    """One 2-epoch training run with seed 3 (shared by the tests below: each run costs seconds)."""
    return train(digits_config(registry), registry, digits, max_epochs=2, seed=3)


def test_train_returns_per_epoch_history_and_test_metrics(trained):
    result = trained
    assert result.epochs == 2 and len(result.history) == 2
    for epoch in result.history:
        assert set(epoch) == {"train_loss", "val_loss", "val_accuracy"}
        assert all(math.isfinite(v) for v in epoch.values())
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]
    assert set(result.test_metrics) == {"test_loss", "test_accuracy"}
    assert result.test_metrics["test_accuracy"] > 0.7  # far above chance (0.1) after two epochs
    assert result.pruned_at is None and result.diverged_at is None
    assert result.last("val_accuracy") == result.history[-1]["val_accuracy"]


def test_training_is_reproducible_for_a_seed(registry, digits, trained):
    config = digits_config(registry)
    first = trained
    second = train(config, registry, digits, max_epochs=2, seed=3)
    other = train(config, registry, digits, max_epochs=2, seed=4)
    losses = [e["val_loss"] for e in first.history]
    assert [e["val_loss"] for e in second.history] == losses
    assert second.test_metrics == first.test_metrics
    assert [e["val_loss"] for e in other.history] != losses


def epochs_until_patience_runs_out(values: list[float], patience: int, maximize: bool) -> int | None:
    """How many epochs run before `patience` epochs in a row bring no strict improvement, or None."""
    best, waited = None, 0
    for epoch, value in enumerate(values):
        if best is None or (value > best if maximize else value < best):
            best, waited = value, 0
        else:
            waited += 1
            if waited >= patience:
                return epoch + 1
    return None


class EpochWeights(pl.Callback):
    """The network's weights at the end of every training epoch."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.states.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


def test_early_stopping_ends_training_when_the_objective_stops_improving(registry, digits, tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(
        textwrap.dedent("""
        name: stopping
        dataset: digits
        objective: {metric: val_accuracy, direction: maximize}
        budget: {trials: 1, max_epochs: 30}
        search:
          architecture: {mlp: {depth: 1, width: 32}}
          activation: relu
          loss: cross_entropy
          optimizer: {sgd: {lr: 0.0001, momentum: 0.0, nesterov: false}}
          regularizers: {early_stopping: {optional: false, patience: 2}}
          batch_size: 64
    """)
    )
    spec = load_study(path, registry)
    config = spec.space.sample(FixedTrial({}))  # nothing left to search: always on, patience 2
    assert config["regularizer.early_stopping"] is True and config["regularizer.early_stopping.patience"] == 2
    # A learning rate this small barely moves the network: validation accuracy stops improving at once.
    weights = EpochWeights()
    result = train(
        config,
        registry,
        digits,
        max_epochs=spec.budget.max_epochs,
        seed=0,
        monitor=spec.metric,
        direction=spec.direction,
        callbacks=[weights],
    )
    accuracy = [epoch["val_accuracy"] for epoch in result.history]
    stop = epochs_until_patience_runs_out(accuracy, 2, maximize=True)
    assert stop is not None and stop < spec.budget.max_epochs, accuracy
    assert result.epochs == stop, accuracy  # stopped exactly when the patience ran out
    assert result.pruned_at is None and result.diverged_at is None and "test_accuracy" in result.test_metrics
    # The model it ends with (and is tested with) is the best epoch's: the first with the best accuracy.
    assert result.best_epoch == accuracy.index(max(accuracy))
    assert result.final("val_accuracy") == max(accuracy)
    assert len(weights.states) == stop
    final = result.model.state_dict()
    assert all(torch.equal(final[k], v) for k, v in weights.states[result.best_epoch].items())
    assert not all(torch.equal(final[k], v) for k, v in weights.states[-1].items())

    # The same configuration without it runs every epoch and ends with the last epoch's weights.
    without = {key: value for key, value in config.items() if not key.startswith("regularizer.early_stopping")}
    plain = train(without, registry, digits, max_epochs=stop + 2, seed=0, monitor=spec.metric, direction=spec.direction)
    assert plain.epochs == stop + 2 and plain.best_epoch is None
    assert plain.final("val_accuracy") == plain.history[-1]["val_accuracy"]


class StepRecorder(pl.Callback):
    """Each optimizer step's parameters before, gradients (before any clipping) and parameters after."""

    def __init__(self) -> None:
        self.steps: list[tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.before = [p.detach().clone() for p in pl_module.network.parameters()]

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.grads = [p.grad.detach().clone() for p in pl_module.network.parameters()]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append((self.before, self.grads, [p.detach().clone() for p in pl_module.network.parameters()]))


def total_norm(tensors: list[torch.Tensor]) -> float:
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors])))


@pytest.mark.parametrize("max_norm", [None, 0.01], ids=["off", "on"])
def test_grad_clip_limits_the_gradient_norm_of_every_step(registry, max_norm):
    data = tiny_data(n=24)
    # Plain SGD with lr 1: each step moves the parameters by exactly the (clipped) gradient.
    values = {"optimizer.sgd.lr": 1.0, "optimizer.sgd.momentum": 0.0, "optimizer.sgd.nesterov": False, "batch_size": 8}
    if max_norm is not None:
        values["regularizer.grad_clip.max_norm"] = max_norm
    config = sample_config(registry, optimizer="sgd", regularizers=("grad_clip",) if max_norm else (), values=values)
    recorder = StepRecorder()
    train(config, registry, data, max_epochs=2, seed=0, callbacks=[recorder])
    assert len(recorder.steps) == 6
    for before, grads, after in recorder.steps:
        moved = [b - a for b, a in zip(before, after)]
        norm = total_norm(grads)
        assert norm > 0.1  # far above the clipping threshold tested: the clip has work to do
        if max_norm is None:
            for m, g in zip(moved, grads):
                assert torch.allclose(m, g, atol=1e-6)
        else:
            assert total_norm(moved) == pytest.approx(max_norm, rel=1e-4)
            for m, g in zip(moved, grads):  # scaled down as a whole: same direction
                assert torch.allclose(m, g * (max_norm / norm), atol=1e-6)
