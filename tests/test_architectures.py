"""The built-in architectures beyond `mlp`: cnn, rnn/lstm/gru and transformer. Each is built directly from
its declared params and a BuildContext on tiny tensors; two short training runs check that defaults learn."""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import pytest
import torch
from torch import nn

from orchestrator import BuildContext
from orchestrator.api.components import DataBundle
from orchestrator.api.params import Choice
from orchestrator.api.registry import Registry
from orchestrator.quiet import quiet_libraries
from orchestrator.study.studyfile import incompatibility
from orchestrator.training.fit import train

NEW = ("cnn", "rnn", "lstm", "gru", "transformer")
RECURRENT = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
INPUT_KINDS = {
    "cnn": ("sequence", "image"),
    "rnn": ("sequence",),
    "lstm": ("sequence",),
    "gru": ("sequence",),
    "transformer": ("sequence", "image"),
}
PARAMS = {
    "cnn": {"channels", "growth", "kernel_size", "depth", "pooling", "norm"},
    **{name: {"hidden_size", "layers", "bidirectional", "readout"} for name in RECURRENT},
    "transformer": {"heads", "head_dim", "patch", "layers", "ff_width", "positional"},
}
# Every axis a different size, so that a mixed-up or miscounted axis shows.
SHAPES = {"sequence": (12, 3), "image": (2, 6, 5)}
CASES = [(name, kind) for name in NEW for kind in INPUT_KINDS[name]]
N = 6


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tensors run fastest on one thread; on a busy machine, two contending threads ran the
    training tests 20 times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def registry(builtin_registry: Registry) -> Registry:
    """The built-ins on their own (conftest's shared registry)."""
    return builtin_registry


def defaults(registry: Registry, name: str) -> dict[str, Any]:
    return {pname: param.default for pname, param in registry.get("architecture", name).spec.params.items()}


def context(kind: str, output_size: int = 4, task: str = "classification", **fields: Any) -> BuildContext:
    return BuildContext(input_shape=SHAPES[kind], input_kind=kind, output_size=output_size, task=task, **fields)


def build(registry: Registry, name: str, kind: str, ctx: BuildContext | None = None, **params: Any) -> nn.Module:
    """The architecture built from its defaults with `params` overriding them."""
    spec = registry.get("architecture", name).spec
    return spec.build({**defaults(registry, name), **params}, ctx or context(kind))


def inputs(kind: str, n: int = N, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, *SHAPES[kind], generator=torch.Generator().manual_seed(seed))


def modules(network: nn.Module, cls: type | tuple[type, ...]) -> list[nn.Module]:
    return [m for m in network.modules() if isinstance(m, cls)]


def norm_factory(registry: Registry, name: str):
    return registry.get("regularizer", name).spec.build({}).norm


class CountingTanh(nn.Tanh):
    """A tanh that counts its calls: shows that an architecture both builds and runs ctx.activation()."""

    calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        CountingTanh.calls += 1
        return super().forward(x)


# ---------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW)
def test_registered_with_params_input_kinds_and_tasks(registry, name):
    spec = registry.get("architecture", name).spec
    assert spec.input_kinds == INPUT_KINDS[name]
    assert spec.tasks == ("classification", "regression")
    assert set(spec.params) == PARAMS[name]
    for pname, param in spec.params.items():
        assert param.contains(param.default), (pname, param)
        assert param.help, pname
    # The declared input kinds are what a study's compatibility check goes by.
    for kind in ("vector", "sequence", "image"):
        reason = incompatibility("architecture", registry.get("architecture", name), kind, "classification")
        assert (reason is None) == (kind in INPUT_KINDS[name]), (kind, reason)
    assert incompatibility("architecture", registry.get("architecture", name), "sequence", "generative")


def test_declared_ranges(registry):
    cnn = registry.get("architecture", "cnn").spec.params
    assert (cnn["channels"].low, cnn["channels"].high, cnn["channels"].log) == (8, 256, True)
    assert (cnn["depth"].low, cnn["depth"].high) == (1, 5)
    assert cnn["kernel_size"].choices == (3, 5, 7) and all(k % 2 == 1 for k in cnn["kernel_size"].choices)
    assert set(cnn["pooling"].choices) == {"max", "avg", "none"}
    assert cnn["norm"].choices == ("batch", "none") and cnn["norm"].default == "batch"
    for name in RECURRENT:
        params = registry.get("architecture", name).spec.params
        assert (params["hidden_size"].low, params["hidden_size"].high, params["hidden_size"].log) == (16, 512, True)
        assert (params["layers"].low, params["layers"].high) == (1, 3)
        assert set(params["bidirectional"].choices) == {True, False}
        assert set(params["readout"].choices) == {"last", "mean"}
    tf = registry.get("architecture", "transformer").spec.params
    assert tf["heads"].choices == (1, 2, 4, 8)
    assert (tf["layers"].low, tf["layers"].high) == (1, 6)
    assert (tf["ff_width"].low, tf["ff_width"].high, tf["ff_width"].log) == (32, 1024, True)
    assert set(tf["positional"].choices) == {"learned", "sinusoidal"}


def test_plugins_json_lists_the_architectures_with_their_params(cli, workdir):
    result = cli("plugins", "--json")
    assert result.code == 0, result.err
    rows = {row["name"]: row for row in json.loads(result.out) if row["kind"] == "architecture"}
    assert set(NEW) | {"mlp"} <= set(rows)
    for name in NEW:
        row = rows[name]
        assert set(row["params"]) == PARAMS[name]
        assert row["input_kinds"] == list(INPUT_KINDS[name])
        assert row["tasks"] == ["classification", "regression"]
        assert row["plugin"] == rows["mlp"]["plugin"]  # registered by the built-in library, like mlp
    assert rows["cnn"]["params"]["kernel_size"] == {
        "type": "categorical",
        "choices": [3, 5, 7],
        "default": 5,
        "help": rows["cnn"]["params"]["kernel_size"]["help"],
    }
    assert rows["gru"]["params"]["hidden_size"]["type"] == "int" and rows["gru"]["params"]["hidden_size"]["log"]


# ---------------------------------------------------------------------------
# Shapes, gradients, the whole declared range
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,kind", CASES)
@pytest.mark.parametrize("task,output_size", [("classification", 7), ("regression", 2), ("regression", 1)])
def test_output_shape_and_backward(registry, name, kind, task, output_size):
    torch.manual_seed(0)
    network = build(registry, name, kind, context(kind, output_size, task))
    x = inputs(kind)
    outputs = network(x)
    assert outputs.shape == (N, output_size)
    if task == "classification":
        loss = nn.functional.cross_entropy(outputs, torch.arange(N) % output_size)
    else:
        loss = nn.functional.mse_loss(outputs, torch.randn(N, output_size))
    loss.backward()
    for pname, param in network.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), pname
        assert param.grad.abs().sum() > 0, pname
    network.eval()
    with torch.no_grad():
        assert network(x[:1]).shape == (1, output_size)  # a single sample, in eval mode


def corner(registry: Registry, name: str, end: str) -> dict[str, Any]:
    """Every declared param at the low (first choice) or high (last choice) end of its range."""
    values = {}
    for pname, param in registry.get("architecture", name).spec.params.items():
        if isinstance(param, Choice):
            values[pname] = param.choices[0 if end == "low" else -1]
        else:
            values[pname] = type(param.default)(param.low if end == "low" else param.high)
    return values


@pytest.mark.parametrize("name,kind", CASES)
@pytest.mark.parametrize("end", ["low", "high"])
def test_builds_and_runs_at_both_ends_of_every_range(registry, name, kind, end):
    network = build(registry, name, kind, **corner(registry, name, end))
    with torch.no_grad():
        outputs = network(inputs(kind, n=2))
    assert outputs.shape == (2, 4) and torch.isfinite(outputs).all()


# ---------------------------------------------------------------------------
# Params shape the structure as declared
# ---------------------------------------------------------------------------


def test_cnn_depth_kernel_channels_and_growth(registry):
    network = build(registry, "cnn", "sequence", channels=16, growth=2.0, kernel_size=7, depth=4, pooling="none")
    convs = modules(network, nn.Conv1d)
    assert len(convs) == 4 and not modules(network, nn.Conv2d)
    assert [c.out_channels for c in convs] == [16, 32, 64, 128]
    assert [c.in_channels for c in convs] == [3, 16, 32, 64]  # the sequence's 3 channels come first
    assert all(c.kernel_size == (7,) for c in convs)
    assert modules(network, nn.Linear)[-1].in_features == 128
    # 'same' padding and no pooling: the maps before global pooling keep the sequence's length.
    assert network[:-2](inputs("sequence")).shape == (N, 128, 12)

    image = build(registry, "cnn", "image", channels=8, growth=1.5, kernel_size=3, depth=3, pooling="none")
    convs = modules(image, nn.Conv2d)
    assert [c.out_channels for c in convs] == [8, 12, 18] and [c.in_channels for c in convs] == [2, 8, 12]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert image[:-2](inputs("image")).shape == (N, 18, 6, 5)

    # growth stops at 512 channels
    wide = build(registry, "cnn", "sequence", channels=256, growth=2.0, kernel_size=3, depth=3)
    assert [c.out_channels for c in modules(wide, nn.Conv1d)] == [256, 512, 512]
    assert [len(modules(build(registry, "cnn", "image", depth=d), nn.Conv2d)) for d in (1, 2, 5)] == [1, 2, 5]


@pytest.mark.parametrize("pooling,cls", [("max", (nn.MaxPool1d, nn.MaxPool2d)), ("avg", (nn.AvgPool1d, nn.AvgPool2d))])
def test_cnn_pools_between_layers_while_the_maps_allow(registry, pooling, cls):
    # A sequence of 12: pooled after every conv layer but the last (global pooling follows): 12 -> 6 -> 3.
    network = build(registry, "cnn", "sequence", depth=3, pooling=pooling, kernel_size=3)
    pools = modules(network, cls)
    assert len(pools) == 2 and all(p.kernel_size in (2, (2,)) for p in pools)
    assert network[:-2](inputs("sequence")).shape[-1] == 3
    # A 6 x 5 image: 6x5 -> 3x2 -> 1x1, and no further pooling for the remaining layers.
    image = build(registry, "cnn", "image", depth=5, pooling=pooling, kernel_size=3)
    assert len(modules(image, cls)) == 2
    assert image[:-2](inputs("image")).shape[-2:] == (1, 1)
    none = build(registry, "cnn", "image", depth=5, pooling="none")
    assert not modules(none, (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d))
    # max and avg pooling are different networks
    torch.manual_seed(0)
    a = build(registry, "cnn", "image", pooling="max")
    torch.manual_seed(0)
    b = build(registry, "cnn", "image", pooling="avg")
    assert not torch.allclose(a(inputs("image")), b(inputs("image")))


def test_cnn_reads_sequences_as_channels_over_time(registry):
    """A sequence (N, L, C) is convolved over its L steps with C input channels, i.e. as (N, C, L)."""
    network = build(registry, "cnn", "sequence", depth=1, pooling="none", kernel_size=3, norm="none").eval()
    conv = modules(network, nn.Conv1d)[0]
    x = inputs("sequence")
    expected = network[-1](torch.relu(conv(x.transpose(1, 2))).mean(-1))
    assert torch.allclose(network(x), expected, atol=1e-6)


@pytest.mark.parametrize("name", list(RECURRENT))
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True), (3, False)])
def test_recurrent_module_reflects_params(registry, name, layers, bidirectional):
    ctx = context("sequence", dropout=0.25)
    network = build(registry, name, "sequence", ctx, hidden_size=24, layers=layers, bidirectional=bidirectional)
    (recurrent,) = modules(network, nn.RNNBase)
    assert type(recurrent) is RECURRENT[name]
    assert (recurrent.input_size, recurrent.hidden_size, recurrent.num_layers) == (3, 24, layers)
    assert recurrent.bidirectional == bidirectional and recurrent.batch_first
    assert recurrent.dropout == (0.25 if layers > 1 else 0.0)  # between layers only
    head = modules(network, nn.Linear)[-1]
    assert (head.in_features, head.out_features) == (24 * (2 if bidirectional else 1), 4)


@pytest.mark.parametrize("name", list(RECURRENT))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_readout_last_is_each_directions_final_state_and_mean_averages(registry, name, bidirectional):
    def seeded(readout: str) -> nn.Module:
        torch.manual_seed(0)
        return build(
            registry, name, "sequence", hidden_size=8, layers=2, bidirectional=bidirectional, readout=readout
        ).eval()

    last, mean = seeded("last"), seeded("mean")
    (recurrent,) = modules(last, nn.RNNBase)
    head = last.head  # the readout head: hidden Linear, activation, output Linear
    assert [type(m) for m in head] == [nn.Linear, nn.ReLU, nn.Linear]
    x = inputs("sequence")
    with torch.no_grad():
        outputs, state = recurrent(x)
        h_n = state[0] if name == "lstm" else state  # (layers * directions, N, hidden)
        final = torch.cat(list(h_n[-2:]), dim=1) if bidirectional else h_n[-1]
        assert torch.allclose(last(x), head(final), atol=1e-6)
        assert torch.allclose(mean(x), head(outputs.mean(1)), atol=1e-6)  # same weights: same seed
        assert not torch.allclose(mean(x), last(x))


def test_transformer_heads_layers_widths_and_patches(registry):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's nested-tensor warning for norm_first layers
        network = build(registry, "transformer", "sequence", heads=2, head_dim=12, layers=3, ff_width=40, patch=5)
        network(inputs("sequence"))
    encoder = modules(network, nn.TransformerEncoder)[0]
    assert len(encoder.layers) == 3 and not encoder.use_nested_tensor
    for layer in encoder.layers:
        assert layer.self_attn.num_heads == 2 and layer.self_attn.embed_dim == 24  # d_model = heads x head_dim
        assert (layer.linear1.in_features, layer.linear1.out_features) == (24, 40)
        assert layer.self_attn.batch_first and layer.norm_first
    # 12 steps of 3 channels in patches of 5 (zero-padded to 15): 3 tokens of 15 features
    assert (network.embed.in_features, network.embed.out_features) == (15, 24)
    assert network.positions.shape == (3, 24)
    assert modules(network, nn.Linear)[-1].in_features == 24
    # an image: each row is a step of C x W features
    image = build(registry, "transformer", "image", heads=4, head_dim=8, patch=1)
    assert network.embed.in_features == 15 and image.embed.in_features == 2 * 5
    assert image.positions.shape == (6, 32)
    assert [
        len(modules(build(registry, "transformer", "sequence", layers=k), nn.TransformerEncoderLayer)) for k in (1, 6)
    ] == [1, 6]


def test_transformer_positional_encodings(registry):
    learned = build(registry, "transformer", "sequence", positional="learned", patch=1, heads=1, head_dim=8)
    fixed = build(registry, "transformer", "sequence", positional="sinusoidal", patch=1, heads=1, head_dim=8)
    assert isinstance(learned.positions, nn.Parameter)
    assert any(p is learned.positions for p in learned.parameters())
    assert not any(p is fixed.positions for p in fixed.parameters()) and "positions" in dict(fixed.named_buffers())
    table = fixed.positions
    assert table.shape == (12, 8)
    assert torch.allclose(table[0], torch.tensor([0.0, 1.0] * 4))
    assert torch.allclose(table[3, :2], torch.tensor([math.sin(3.0), math.cos(3.0)]))
    assert torch.allclose(table[5, 2:4], torch.tensor([math.sin(5 / 10000 ** (2 / 8)), math.cos(5 / 10000 ** (2 / 8))]))
    # Positions make the model order-sensitive: mean pooling alone would not be.
    x = inputs("sequence")
    for network in (learned.eval(), fixed.eval()):
        with torch.no_grad():
            assert not torch.allclose(network(x), network(x.flip(1)), atol=1e-5)


# ---------------------------------------------------------------------------
# The BuildContext: norm, dropout and activation are used where given
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,kind", CASES)
def test_without_norm_or_dropout_none_is_added(registry, name, kind):
    network = build(registry, name, kind, **({"norm": "none"} if name == "cnn" else {}))
    assert not modules(network, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm))
    dropouts = modules(network, nn.Dropout)
    assert all(d.p == 0.0 for d in dropouts)  # the transformer layers hold p = 0 dropouts; others none
    if name != "transformer":
        assert not dropouts and not modules(network, nn.LayerNorm)


@pytest.mark.parametrize("kind,batch_cls", [("sequence", nn.BatchNorm1d), ("image", nn.BatchNorm2d)])
def test_cnn_uses_norm_activation_and_dropout_per_block(registry, kind, batch_cls):
    CountingTanh.calls = 0
    ctx = context(kind, norm=norm_factory(registry, "batchnorm"), dropout=0.3, activation=CountingTanh)
    network = build(registry, "cnn", kind, ctx, depth=3, channels=8, growth=2.0)
    norms = modules(network, batch_cls)
    assert [n.num_features for n in norms] == [8, 16, 32]
    assert len(modules(network, CountingTanh)) == 3 and not modules(network, nn.ReLU)
    assert [d.p for d in modules(network, nn.Dropout)] == [0.3] * 3
    # Each block in order: conv, norm, activation, dropout (then a pool between blocks).
    conv = nn.Conv1d if kind == "sequence" else nn.Conv2d
    blocks = [type(m).__name__ for m in network if not isinstance(m, (nn.MaxPool1d, nn.MaxPool2d))]
    assert blocks[-14:] == [conv.__name__, batch_cls.__name__, "CountingTanh", "Dropout"] * 3 + [
        "GlobalAveragePool",
        "Linear",
    ]
    network(inputs(kind))
    assert CountingTanh.calls == 3

    layer_norm = build(registry, "cnn", kind, context(kind, norm=norm_factory(registry, "layernorm")), depth=2)
    groups = modules(layer_norm, nn.GroupNorm)
    assert len(groups) == 2 and all(g.num_groups == 1 for g in groups)


@pytest.mark.parametrize("kind,batch_cls", [("sequence", nn.BatchNorm1d), ("image", nn.BatchNorm2d)])
def test_cnn_batch_normalises_its_blocks_by_default_and_a_norm_regularizer_replaces_it(registry, kind, batch_cls):
    network = build(registry, "cnn", kind, depth=3, channels=8, growth=2.0)  # no regularizer's norm
    assert [n.num_features for n in modules(network, batch_cls)] == [8, 16, 32]
    assert not modules(build(registry, "cnn", kind, depth=3, norm="none"), (nn.BatchNorm1d, nn.BatchNorm2d))
    replaced = build(registry, "cnn", kind, context(kind, norm=norm_factory(registry, "layernorm")), depth=3)
    assert len(modules(replaced, nn.GroupNorm)) == 3 and not modules(replaced, (nn.BatchNorm1d, nn.BatchNorm2d))
    # A configuration logged before `norm` existed (no such key) is rebuilt as it trained: without a norm.
    params = {k: v for k, v in defaults(registry, "cnn").items() if k != "norm"}
    old = registry.get("architecture", "cnn").spec.build(params, context(kind))
    assert not modules(old, (nn.BatchNorm1d, nn.BatchNorm2d))


@pytest.mark.parametrize("name", list(RECURRENT))
def test_recurrent_readout_gets_norm_and_dropout(registry, name):
    for norm, cls in (("batchnorm", nn.BatchNorm1d), ("layernorm", nn.LayerNorm)):
        ctx = context("sequence", norm=norm_factory(registry, norm), dropout=0.4)
        network = build(registry, name, "sequence", ctx, hidden_size=16, bidirectional=True, layers=2)
        (layer,) = modules(network, cls)
        assert (layer.num_features if cls is nn.BatchNorm1d else layer.normalized_shape) in (32, (32,))
        assert [d.p for d in modules(network, nn.Dropout)] == [0.4]
        assert modules(network, nn.RNNBase)[0].dropout == 0.4
        assert network(inputs("sequence")).shape == (N, 4)
    # The readout really passes through the norm: scaling the norm's output scales the logits' spread.
    network = build(registry, name, "sequence", context("sequence", norm=norm_factory(registry, "layernorm")))
    x = inputs("sequence")
    before = network(x)
    with torch.no_grad():
        modules(network, nn.LayerNorm)[0].weight.mul_(0.0)
    after = network(x)
    assert not torch.allclose(before, after) and torch.allclose(after, after[0].expand_as(after))


@pytest.mark.parametrize("kind", INPUT_KINDS["transformer"])
def test_transformer_uses_norm_activation_and_dropout(registry, kind):
    CountingTanh.calls = 0
    ctx = context(kind, norm=norm_factory(registry, "batchnorm"), dropout=0.2, activation=CountingTanh)
    network = build(registry, "transformer", kind, ctx, layers=2, heads=2, head_dim=8)
    encoder = modules(network, nn.TransformerEncoder)[0]
    assert encoder.norm is not None and modules(encoder.norm, nn.BatchNorm1d)[0].num_features == 16
    for layer in encoder.layers:
        assert isinstance(layer.activation, CountingTanh)
        assert layer.dropout.p == layer.dropout1.p == layer.dropout2.p == 0.2
    assert layer.activation is not encoder.layers[0].activation  # one activation module per layer
    network(inputs(kind))
    assert CountingTanh.calls == 2
    layer_norm = build(registry, "transformer", kind, context(kind, norm=norm_factory(registry, "layernorm")))
    final = modules(layer_norm, nn.TransformerEncoder)[0].norm
    assert isinstance(final, nn.LayerNorm) and final.normalized_shape == (64,)  # default 4 heads x 16
    assert modules(build(registry, "transformer", kind), nn.TransformerEncoder)[0].norm is None


# ---------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,kind", CASES)
def test_deterministic_under_manual_seed(registry, name, kind):
    ctx = context(kind, dropout=0.3)
    x = inputs(kind)

    def seeded(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return build(registry, name, kind, ctx)

    first, second, other = seeded(0), seeded(0), seeded(1)
    state, again = first.state_dict(), second.state_dict()
    assert state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state)
    assert any(not torch.equal(v, other.state_dict()[k]) for k, v in state.items())
    torch.manual_seed(5)
    a = first(x)
    torch.manual_seed(5)
    assert torch.equal(second(x), a)  # dropout masks too, in training mode
    first.eval()
    with torch.no_grad():
        assert torch.equal(first(x), first(x))  # no dropout in eval mode
        assert not torch.allclose(first(x), other.eval()(x))


# ---------------------------------------------------------------------------
# Learning through the orchestrator's training loop
# ---------------------------------------------------------------------------


def config_for(registry: Registry, architecture: str, lr: float, batch_size: int, **params: Any) -> dict[str, Any]:
    config = {
        "architecture": architecture,
        "activation": "relu",
        "loss": "cross_entropy",
        "optimizer": "adam",
        "schedule": "constant",
        "batch_size": batch_size,
    }
    config.update({f"optimizer.adam.{k}": v for k, v in {"lr": lr, "beta1": 0.9, "beta2": 0.999}.items()})
    config.update(
        {f"architecture.{architecture}.{k}": v for k, v in {**defaults(registry, architecture), **params}.items()}
    )
    return config


def dataset(registry: Registry, name: str, **params: Any) -> DataBundle:
    spec = registry.get("dataset", name).spec
    return spec.build({**{k: p.default for k, p in spec.params.items()}, **params}, 0)


def test_cnn_learns_digits_with_its_defaults(registry):
    quiet_libraries()
    data = dataset(registry, "digits")
    result = train(config_for(registry, "cnn", lr=3e-3, batch_size=64), registry, data, max_epochs=5, seed=0)
    assert result.diverged_at is None and result.epochs == 5
    assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"]
    assert result.last("val_accuracy") > 0.8  # chance is 0.1
    assert result.test_metrics["test_accuracy"] > 0.8


def test_transformer_learns_digits_rows_with_its_defaults(registry):
    quiet_libraries()
    data = dataset(registry, "digits")
    result = train(config_for(registry, "transformer", lr=3e-3, batch_size=64), registry, data, max_epochs=3, seed=0)
    assert result.last("val_accuracy") > 0.8


def test_gru_learns_a_small_mnist1d_subset(registry):
    quiet_libraries()
    data = dataset(registry, "mnist1d", train_samples=300)
    assert data.x_train.shape == (300, 40, 1)
    config = config_for(registry, "gru", lr=1e-2, batch_size=32, hidden_size=64, readout="mean")
    result = train(config, registry, data, max_epochs=10, seed=0)
    assert result.diverged_at is None
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.last("val_accuracy") > 0.25  # chance is 0.1; 400 validation samples
