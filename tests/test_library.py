"""The component library's activations, losses and data sets (diabetes, the user's own CSV and .npz files):
each checked against a hand computation or the raw data, and the user-data errors through the CLI."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FixedTrial, TrialState
from torch import nn
from torch.nn import functional as F

from orchestrator.api.components import DataBundle
from orchestrator.api.registry import Registry
from orchestrator.search.space import ComponentOptions, SearchSpace
from orchestrator.study.studyfile import SHARED_PARAMS, StudyFileError, load_study
from orchestrator.training.assembly import assemble
from orchestrator.training.tasks import TASK_METRICS

LIBRARY_MODULES = ("activations", "losses", "datasets")


@pytest.fixture(scope="module")
def registry(builtin_registry: Registry) -> Registry:
    """The built-ins on their own (conftest's shared registry)."""
    return builtin_registry


def sample_config(
    registry: Registry,
    *,
    activation: str = "relu",
    loss: str = "cross_entropy",
    values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An mlp/adam/constant configuration with the given activation and loss, declared defaults elsewhere."""
    chosen = {
        "architecture": "mlp",
        "activation": activation,
        "loss": loss,
        "optimizer": "adam",
        "schedule": "constant",
    }
    components = {
        kind: ComponentOptions(kind, {name: dict(registry.get(kind, name).spec.params)})
        for kind, name in chosen.items()
    }
    fixed: dict[str, Any] = {"batch_size": 100}
    for kind, name in chosen.items():
        for pname, param in registry.get(kind, name).spec.params.items():
            fixed[f"{kind}.{name}.{pname}"] = param.default
    fixed.update(values or {})
    return SearchSpace(components, (), dict(SHARED_PARAMS)).sample(FixedTrial(fixed))


def dataset_params(registry: Registry, name: str, **overrides: Any) -> dict[str, Any]:
    spec = registry.get("dataset", name).spec
    return {**{pname: param.default for pname, param in spec.params.items()}, **overrides}


def splits(data: DataBundle) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test)]


def rmse_in_target_units(outputs: torch.Tensor, targets: torch.Tensor, data: DataBundle) -> float:
    """The regression metric exactly as training reports it: rmse on the data's targets times target_scale."""
    metric = next(m for m in TASK_METRICS["regression"] if m.name == "rmse")
    assert metric.in_target_units
    return float(metric.compute(outputs, targets)) * data.target_scale


def recover_rows(data: DataBundle, raw: np.ndarray, columns: slice = slice(None)) -> list[np.ndarray]:
    """For each split, the raw row index of every row. Standardisation maps each feature by the same strictly
    increasing affine function in every split, so per-feature dense ranks over all splits equal those of the
    raw data: a row's ranks identify it. `columns` picks the features of the inputs that `raw` holds."""

    def rank_keys(a: np.ndarray) -> list[tuple[int, ...]]:
        ranks = np.stack([np.unique(a[:, j], return_inverse=True)[1].reshape(-1) for j in range(a.shape[1])], 1)
        return [tuple(r) for r in ranks]

    raw_keys = rank_keys(raw)
    assert len(set(raw_keys)) == len(raw), "raw rows must be distinguishable"
    where = {key: i for i, key in enumerate(raw_keys)}
    joined = torch.cat([x for x, _ in splits(data)]).numpy().astype(np.float64)[:, columns]
    found = np.array([where[key] for key in rank_keys(joined)])
    sizes = np.cumsum([0] + [len(x) for x, _ in splits(data)])
    return [found[sizes[i] : sizes[i + 1]] for i in range(3)]


# ---------------------------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "module_type", "attributes"),
    [
        ("relu", {}, nn.ReLU, {}),
        ("sigmoid", {}, nn.Sigmoid, {}),
        ("tanh", {}, nn.Tanh, {}),
        ("gelu", {}, nn.GELU, {"approximate": "none"}),
        ("leaky_relu", {"negative_slope": 0.2}, nn.LeakyReLU, {"negative_slope": 0.2}),
        ("silu", {}, nn.SiLU, {}),
        ("elu", {"alpha": 0.5}, nn.ELU, {"alpha": 0.5}),
    ],
)
def test_activation_builds_its_module_with_its_params(registry, name, params, module_type, attributes):
    spec = registry.get("activation", name).spec
    assert set(spec.params) == set(params)
    module = spec.build(params)
    assert type(module) is module_type
    for attr, value in attributes.items():
        assert getattr(module, attr) == value
    # inside a network: after every hidden layer, with the configuration's parameter values
    values = {
        "architecture.mlp.depth": 2,
        "architecture.mlp.width": 16,
        **{f"activation.{name}.{p}": v for p, v in params.items()},
    }
    network = assemble(sample_config(registry, activation=name, values=values), registry, tiny_vectors()).network
    layers = list(network)
    assert [type(layers[i + 1]) for i, m in enumerate(layers[:-1]) if isinstance(m, nn.Linear)] == [module_type] * 2
    for layer in layers:
        if isinstance(layer, module_type):
            for attr, value in attributes.items():
                assert getattr(layer, attr) == value


def test_activations_compute_their_functions():
    """The new activations against their formulas (a wrong module would differ somewhere on this grid)."""
    from automl_plugins.activations import register_activations

    specs = {}
    register_activations(lambda spec: specs.__setitem__(spec.name, spec))
    x = torch.linspace(-6, 6, 121, dtype=torch.float64)
    phi = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
    expected = {
        "tanh": ({}, (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x))),
        "gelu": ({}, x * phi),
        "leaky_relu": ({"negative_slope": 0.05}, torch.where(x >= 0, x, 0.05 * x)),
        "silu": ({}, x / (1 + torch.exp(-x))),
        "elu": ({"alpha": 1.7}, torch.where(x > 0, x, 1.7 * (torch.exp(x) - 1))),
    }
    for name, (params, target) in expected.items():
        assert torch.allclose(specs[name].build(params)(x), target, atol=1e-10), name
    defaults = {name: {p: param.default for p, param in specs[name].params.items()} for name in specs}
    assert defaults["leaky_relu"] == {"negative_slope": 0.01} and defaults["elu"] == {"alpha": 1.0}
    # elu saturates at -alpha; leaky_relu keeps a slope below zero
    assert float(specs["elu"].build({"alpha": 0.3})(torch.tensor(-50.0))) == pytest.approx(-0.3)
    assert float(specs["leaky_relu"].build({"negative_slope": 0.1})(torch.tensor(-4.0))) == pytest.approx(-0.4)


# ---------------------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------------------


def tiny_vectors(task: str = "classification") -> DataBundle:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 6, generator=g)
    y = torch.arange(24) % 3 if task == "classification" else torch.randn(24, 1, generator=g)
    return DataBundle(
        x,
        y,
        x[:6],
        y[:6],
        x[6:12],
        y[6:12],
        input_kind="vector",
        task=task,
        output_size=3 if task == "classification" else 1,
    )


def build_loss(registry: Registry, name: str, task: str, **params: Any):
    config = sample_config(registry, loss=name, values={f"loss.{name}.{p}": v for p, v in params.items()})
    return assemble(config, registry, tiny_vectors(task)).loss_fn


def test_losses_declare_their_tasks(registry):
    tasks = {name: registry.get("loss", name).spec.tasks for name in ("nll", "mse", "mae", "huber")}
    assert tasks == {
        "nll": ("classification",),
        "mse": ("regression",),
        "mae": ("regression",),
        "huber": ("regression",),
    }
    assert set(registry.get("loss", "huber").spec.params) == {"delta"}
    assert registry.get("loss", "huber").spec.params["delta"].default == 1.0


def test_nll_is_the_log_softmax_likelihood_and_equals_cross_entropy(registry):
    loss = build_loss(registry, "nll", "classification")
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0], [1.0, 1.0, 1.0], [-2.0, 4.0, 0.0]], requires_grad=True)
    targets = torch.tensor([0, 2, 1, 0])
    value = loss(logits, targets)
    # by hand: -mean over rows of (logit of the target - log sum exp of the row)
    rows = logits.detach().tolist()
    by_hand = -sum(rows[i][t] - math.log(sum(math.exp(v) for v in rows[i])) for i, t in enumerate(targets.tolist())) / 4
    assert value.item() == pytest.approx(by_hand, rel=1e-6)
    assert value.item() == pytest.approx(F.cross_entropy(logits, targets).item(), rel=1e-6)
    (grad,) = torch.autograd.grad(value, logits)
    (ce_grad,) = torch.autograd.grad(F.cross_entropy(logits, targets), logits)
    assert torch.allclose(grad, ce_grad)
    # confident and right: ~0; confident and wrong: large
    assert float(loss(torch.tensor([[30.0, 0.0, 0.0]]), torch.tensor([0]))) < 1e-6
    assert float(loss(torch.tensor([[30.0, 0.0, 0.0]]), torch.tensor([1]))) == pytest.approx(30.0, rel=1e-4)


def test_mae_is_the_mean_absolute_error(registry):
    loss = build_loss(registry, "mae", "regression")
    outputs = torch.tensor([[1.0], [2.0], [-3.0], [0.5]])
    targets = torch.tensor([[1.5], [0.0], [-3.0], [4.5]])
    assert float(loss(outputs, targets)) == pytest.approx((0.5 + 2.0 + 0.0 + 4.0) / 4)
    assert float(loss(outputs, targets.view(-1))) == pytest.approx(1.625)  # a flat target is not broadcast


def test_huber_is_quadratic_within_delta_and_linear_beyond(registry):
    outputs = torch.tensor([[0.0], [0.0], [0.0], [0.0]])
    targets = torch.tensor([[0.2], [-0.5], [3.0], [-10.0]])

    def by_hand(delta: float) -> float:
        terms = [0.5 * e * e if abs(e) <= delta else delta * (abs(e) - 0.5 * delta) for e in targets.view(-1).tolist()]
        return sum(terms) / len(terms)

    for delta in (0.3, 1.0, 2.5):
        loss = build_loss(registry, "huber", "regression", delta=delta)
        assert float(loss(outputs, targets)) == pytest.approx(by_hand(delta), rel=1e-6), delta
    small, large = build_loss(registry, "huber", "regression", delta=1.0), nn.MSELoss()
    errors = torch.tensor([[0.5], [-0.25]])
    assert float(small(errors, torch.zeros(2, 1))) == pytest.approx(0.5 * float(large(errors, torch.zeros(2, 1))))
    # beyond delta the gradient is delta * sign(error), whatever the size of the error
    out = torch.tensor([[100.0], [-50.0]], requires_grad=True)
    build_loss(registry, "huber", "regression", delta=0.5)(out, torch.zeros(2, 1)).backward()
    assert torch.allclose(out.grad, torch.tensor([[0.25], [-0.25]]))


@pytest.mark.parametrize("loss", ["mae", "huber"])
def test_regression_losses_fit_a_linear_target(registry, loss):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.tensor([[1.5], [-2.0], [0.5], [1.0]]) + 0.5
    data = DataBundle(x, y, x[:8], y[:8], x[8:16], y[8:16], input_kind="vector", task="regression", output_size=1)
    torch.manual_seed(0)
    module = assemble(
        sample_config(
            registry,
            loss=loss,
            values={"architecture.mlp.depth": 1, "architecture.mlp.width": 32, "optimizer.adam.lr": 0.01},
        ),
        registry,
        data,
    )
    optimizer = module.configure_optimizers()
    with torch.no_grad():
        initial = float((module(x) - y).abs().mean())
    for _ in range(200):
        optimizer.zero_grad()
        module.training_step((x, y), 0).backward()
        optimizer.step()
    with torch.no_grad():
        assert module(x).shape == (64, 1)
        assert float((module(x) - y).abs().mean()) < 0.2 * initial


def test_study_files_refuse_losses_of_the_other_task(registry, tmp_path):
    def study(dataset: str, loss: str) -> Path:
        path = tmp_path / f"{dataset}-{loss}.yaml"
        path.write_text(
            f"name: s\ndataset: {dataset}\nsearch: {{architecture: mlp, activation: gelu, "
            f"loss: {loss}, optimizer: adam}}\n"
        )
        return path

    assert load_study(study("diabetes", "huber"), registry).task == "regression"
    assert load_study(study("digits", "nll"), registry).task == "classification"
    with pytest.raises(StudyFileError, match="loss 'nll' is for classification, this study's task is regression"):
        load_study(study("diabetes", "nll"), registry)
    with pytest.raises(StudyFileError, match="loss 'mae' is for regression, this study's task is classification"):
        load_study(study("digits", "mae"), registry)


# ---------------------------------------------------------------------------------------------------------
# diabetes
# ---------------------------------------------------------------------------------------------------------


def test_diabetes_splits_standardisation_and_target_scale(registry):
    from sklearn.datasets import load_diabetes

    raw_x, raw_y = load_diabetes(return_X_y=True)
    spec = registry.get("dataset", "diabetes").spec
    assert (spec.input_kind, spec.tasks, spec.probe) == ("vector", ("regression",), None)
    params = dataset_params(registry, "diabetes")
    assert params == {"test_fraction": 0.2, "val_fraction": 0.2, "split_seed": -1}
    data = spec.build(params, 0)
    assert (data.input_kind, data.task, data.output_size) == ("vector", "regression", 1)
    n_test = math.ceil(0.2 * 442)
    n_val = math.ceil(0.2 * (442 - n_test))
    assert [len(x) for x, _ in splits(data)] == [442 - n_test - n_val, n_val, n_test]
    for x, y in splits(data):
        assert x.dtype == torch.float32 and x.shape[1:] == (10,)
        assert y.dtype == torch.float32 and y.shape == (len(x), 1)

    train, val, test = recover_rows(data, raw_x)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(442))  # disjoint, complete
    mean, std = raw_x[train].mean(0), raw_x[train].std(0)
    y_mean, y_std = raw_y[train].mean(), raw_y[train].std()
    assert np.abs(mean - raw_x.mean(0)).max() > 1e-4  # the training split's statistics differ from all rows'
    for (x, y), rows in zip(splits(data), (train, val, test)):
        assert np.allclose(x.numpy(), (raw_x[rows] - mean) / std, atol=1e-5)
        assert np.allclose(y.numpy()[:, 0], (raw_y[rows] - y_mean) / y_std, atol=1e-5)
    assert data.target_scale == pytest.approx(y_std)
    assert 70 < data.target_scale < 85

    # Predicting the training mean everywhere: the validation RMSE, in the target's units, is its spread.
    mean_rmse = rmse_in_target_units(torch.zeros_like(data.y_val), data.y_val, data)
    assert mean_rmse == pytest.approx(float(np.sqrt(((raw_y[val] - y_mean) ** 2).mean())), rel=1e-5)
    assert 65 < mean_rmse < 95
    # A least-squares linear model on the training split: the known ~54-58 (features and targets aligned).
    design = lambda x: torch.cat([x, torch.ones(len(x), 1)], 1).double()  # noqa: E731
    weights = torch.linalg.lstsq(design(data.x_train), data.y_train.double()).solution
    linear_rmse = rmse_in_target_units(design(data.x_test) @ weights, data.y_test.double(), data)
    assert 50 < linear_rmse < 62

    again, other = spec.build(params, 0), spec.build(params, 1)
    assert torch.equal(again.x_train, data.x_train) and torch.equal(again.y_test, data.y_test)
    assert set(recover_rows(other, raw_x)[2]) != set(test)
    assert len(spec.build({"test_fraction": 0.3, "val_fraction": 0.1}, 0).x_test) == math.ceil(0.3 * 442)


# ---------------------------------------------------------------------------------------------------------
# csv
# ---------------------------------------------------------------------------------------------------------

LABELS = ("emu", "cat", "dog")  # in order of appearance; class indices follow the sorted labels


def classification_frame(n: int = 80) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "id": np.arange(n) * 3 + 11,  # unique: identifies each row after standardisation
            "color": rng.choice(["red", "green", "blue"], n).astype(object),
            "size": rng.normal(50, 10, n).round(3),
            "label": [LABELS[i % 3] for i in range(n)],
        }
    )
    frame.loc[5, "color"] = None  # a missing category
    frame.loc[9, "color"] = "purple"  # a rare category: seen in training for some seeds only
    frame.loc[17, "size"] = np.nan  # a missing number
    return frame


def write_csv(folder: Path, frame: pd.DataFrame, name: str = "table.csv", sep: str = ",") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    frame.to_csv(path, index=False, sep=sep)
    return path


def csv_rows(data: DataBundle, frame: pd.DataFrame) -> list[np.ndarray]:
    """Raw row indices of each split, from the id column (the first feature)."""
    return recover_rows(data, frame[["id"]].to_numpy(dtype=np.float64), columns=slice(0, 1))


def test_csv_classification_encodes_on_the_training_split(registry, tmp_path):
    frame = classification_frame()
    path = write_csv(tmp_path, frame)
    spec = registry.get("dataset", "csv").spec
    assert spec.tasks == ("classification", "regression")
    params = dataset_params(registry, "csv", path=str(path))
    assert (params["target"], params["task"], params["delimiter"]) == ("", "auto", ",")
    assert spec.probe(params) == ("classification", "vector")

    widths = {}
    for seed in range(12):
        data = spec.build(params, seed)
        assert (data.input_kind, data.task, data.output_size, data.target_scale) == ("vector", "classification", 3, 1.0)
        rows = csv_rows(data, frame)
        train = rows[0]
        assert [len(r) for r in rows] == [51, 13, 16]  # test: ceil(0.2 * 80); val: ceil(0.2 * 64)
        assert sorted(np.concatenate(rows).tolist()) == list(range(80))
        for _, y in splits(data)[1:]:  # stratified: each class keeps its share (27, 27, 26 of 80) in val and test
            assert all(abs(int((y == c).sum()) - len(y) * 27 / 80) <= 1 for c in range(3)), y.bincount()
        colors = sorted(set(frame.loc[train, "color"].dropna()))
        widths[9 in train] = len(colors)
        assert data.x_train.shape[1] == 1 + len(colors) + 1  # id, one-hot colours seen in training, size
        id_mean, id_std = frame.loc[train, "id"].mean(), frame.loc[train, "id"].std(ddof=0)
        known = frame.loc[train, "size"].dropna()
        for (x, y), idx in zip(splits(data), rows):
            assert x.dtype == torch.float32 and y.dtype == torch.int64 and y.shape == (len(x),)
            part = frame.loc[idx]
            assert y.tolist() == [sorted(LABELS).index(label) for label in part["label"]]
            assert np.allclose(x[:, 0].numpy(), (part["id"] - id_mean) / id_std, atol=1e-5)
            onehot = x[:, 1:-1].numpy()
            assert np.array_equal(onehot, np.array([[float(c == k) for k in colors] for c in part["color"]]))
            expected_size = (part["size"].fillna(known.mean()) - known.mean()) / known.std(ddof=0)
            assert np.allclose(x[:, -1].numpy(), expected_size, atol=1e-5)
        if 5 in train:  # missing colour: no category
            assert x_row(data, rows, 5)[1:-1].sum() == 0
        if 9 not in train:  # unseen colour: all zeros
            assert x_row(data, rows, 9)[1:-1].sum() == 0
        if 17 in train:  # missing size filled with the training mean: 0 once standardised
            assert x_row(data, rows, 17)[-1] == pytest.approx(0.0, abs=1e-6)
    assert widths == {True: 4, False: 3}  # both cases happened among the seeds

    first, again, other = spec.build(params, 3), spec.build(params, 3), spec.build(params, 4)
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.y_test, again.y_test)
    assert set(csv_rows(first, frame)[2]) != set(csv_rows(other, frame)[2])


def x_row(data: DataBundle, rows: list[np.ndarray], raw_index: int) -> np.ndarray:
    for (x, _), idx in zip(splits(data), rows):
        if raw_index in idx:
            return x[list(idx).index(raw_index)].numpy()
    raise AssertionError(f"row {raw_index} is in no split")


def test_csv_regression_target_delimiter_and_task_inference(registry, tmp_path):
    rng = np.random.default_rng(1)
    n = 60
    frame = pd.DataFrame(
        {
            "price": rng.normal(300, 40, n).round(2),
            "id": np.arange(n),
            "rooms": rng.integers(1, 6, n),
            "town": rng.choice(["a", "b"], n),
        }
    )
    path = write_csv(tmp_path, frame, sep=";")
    spec = registry.get("dataset", "csv").spec
    params = dataset_params(registry, "csv", path=str(path), target="price", delimiter=";")
    assert spec.probe(params) == ("regression", "vector")
    data = spec.build(params, 0)
    assert (data.task, data.output_size) == ("regression", 1)
    assert data.x_train.shape[1] == 2 + 2  # id, rooms, town=a, town=b
    rows = recover_rows(data, frame[["id"]].to_numpy(dtype=np.float64), columns=slice(0, 1))  # id: 1st feature
    train = rows[0]
    y_mean, y_std = frame.loc[train, "price"].mean(), frame.loc[train, "price"].std(ddof=0)
    assert data.target_scale == pytest.approx(y_std)
    for (x, y), idx in zip(splits(data), rows):
        assert y.dtype == torch.float32 and y.shape == (len(x), 1)
        assert np.allclose(y.numpy()[:, 0], (frame.loc[idx, "price"] - y_mean) / y_std, atol=1e-5)
    assert abs(float(data.y_train.mean())) < 1e-5

    # The same file, other targets: integers with few values are classes (sorted as numbers), many are numbers.
    assert spec.probe({**params, "target": "rooms"}) == ("classification", "vector")
    assert spec.probe({**params, "target": "id"}) == ("regression", "vector")  # 60 distinct integers
    assert spec.probe({**params, "target": "town"}) == ("classification", "vector")
    assert spec.probe({**params, "target": "price", "task": "classification"}) == ("classification", "vector")
    with pytest.raises(ValueError, match="target column 'town' is not numeric .* cannot be a regression target"):
        spec.probe({**params, "target": "town", "task": "regression"})
    numeric_labels = pd.DataFrame({"x": np.arange(30.0), "grade": [10, 2, 30] * 10})
    labelled = spec.build(dataset_params(registry, "csv", path=str(write_csv(tmp_path, numeric_labels, "g.csv"))), 0)
    rows = recover_rows(labelled, numeric_labels[["x"]].to_numpy())
    for (_, y), idx in zip(splits(labelled), rows):
        assert y.tolist() == [[2, 10, 30].index(g) for g in numeric_labels.loc[idx, "grade"]]  # 10 after 2


def write_split_source(dataset: str, folder: Path) -> dict[str, Any]:
    """Parameters of `dataset` on a small source of 80 distinguishable samples, two classes, written to `folder`."""
    n = 80
    folder.mkdir(parents=True)
    frame = pd.DataFrame({"id": np.arange(n, dtype=np.float64), "y": np.arange(n) % 2})
    if dataset == "csv":
        return {"path": str(write_csv(folder, frame))}
    if dataset in ("npz", "npy"):
        x, y = frame[["id"]].to_numpy(), frame["y"].to_numpy()
        if dataset == "npz":
            np.savez(folder / "rows.npz", x=x, y=y)
            return {"path": str(folder / "rows.npz")}
        np.save(folder / "x.npy", x)
        np.save(folder / "y.npy", y)
        return {"path": str(folder / "x.npy"), "targets": str(folder / "y.npy")}
    if dataset == "text":
        texts = pd.DataFrame(
            {"text": [f"review number w{i} of {i % 7} stars" for i in range(n)], "label": ["good", "bad"] * (n // 2)}
        )
        return {"path": str(write_csv(folder, texts, "texts.csv"))}
    if dataset == "image_folder":
        from scripts.make_shapes import write_shapes

        write_shapes(folder / "images", per_class=n // 2, size=12, shapes=("circle", "square"))
        return {"path": str(folder / "images"), "size": 12}
    assert dataset == "diabetes", f"no small source for data set {dataset!r}: add one here"
    return {}


def digest_of_test_split(data: DataBundle) -> str:
    """A digest of the test split's inputs and targets, read sample by sample where the split is streamed."""
    import hashlib

    if data.y_test is None:
        pairs = [data.x_test[i] for i in range(len(data.x_test))]
        x, y = torch.stack([torch.as_tensor(a) for a, _ in pairs]), torch.stack([torch.as_tensor(b) for _, b in pairs])
    else:
        x, y = data.x_test, data.y_test
    return hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()


def test_every_data_set_with_a_test_split_keeps_it_when_the_study_seed_changes_under_a_split_seed(registry, tmp_path):
    names = [name for name in registry.names("dataset") if "split_seed" in registry.get("dataset", name).spec.params]
    assert {"csv", "npz", "npy", "text", "image_folder", "diabetes"} <= set(names)
    for name in names:
        spec, source = registry.get("dataset", name).spec, write_split_source(name, tmp_path / name)

        def test_split(seed: int, spec: Any = spec, name: str = name, source: Any = source, **params: Any) -> str:
            return digest_of_test_split(spec.build(dataset_params(registry, name, **source, **params), seed))

        assert test_split(1) != test_split(2), name  # by default the split follows the study's seed
        assert test_split(1, split_seed=5) == test_split(2, split_seed=5) == test_split(5), name
        assert test_split(1, split_seed=5) != test_split(1, split_seed=6), name


def test_csv_unusable_files_raise_readable_errors(registry, tmp_path):
    spec = registry.get("dataset", "csv").spec
    path = write_csv(tmp_path, classification_frame())
    with pytest.raises(ValueError, match="`path` is required"):
        spec.probe(dataset_params(registry, "csv"))
    with pytest.raises(FileNotFoundError, match="no such file: .*missing.csv"):
        spec.probe(dataset_params(registry, "csv", path=str(tmp_path / "missing.csv")))
    unknown = dataset_params(registry, "csv", path=str(path), target="species")
    for call in (spec.probe, lambda p: spec.build(p, 0)):
        with pytest.raises(
            ValueError,
            match="target column 'species' is not in .*table.csv; its columns are: 'id', 'color', 'size', 'label'",
        ):
            call(unknown)
    with pytest.raises(ValueError, match="is the delimiter ';' the file's"):
        spec.probe(dataset_params(registry, "csv", path=str(path), delimiter=";", target="label"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty.csv is empty"):
        spec.probe(dataset_params(registry, "csv", path=str(tmp_path / "empty.csv")))
    with pytest.raises(
        ValueError,
        match="`ignore` names no feature column 'colour', 'label'; the feature columns are: 'id', 'color', 'size'",
    ):
        spec.probe(dataset_params(registry, "csv", path=str(path), ignore="colour, label"))


def test_csv_encoding_is_described_and_kept_for_raw_rows(registry, tmp_path):
    """What `automl validate` prints of a table, and the encoder that goes with the model: raw rows in, the same
    inputs as training out; regression keeps the target's mean for values in its own units."""
    rng = np.random.default_rng(5)
    n = 60
    frame = pd.DataFrame(
        {
            "code": [f"c{i:03d}" for i in rng.permutation(n)],
            "n": np.arange(n),
            "dose": [str(v) for v in rng.integers(1, 9, n)],
            "arm": rng.choice(["a", "b"], n),
            "y": rng.normal(20, 4, n),
        }
    )
    frame.loc[::10, "dose"] = "?"
    frame.loc[3, "y"] = np.nan
    path = write_csv(tmp_path, frame)
    spec = registry.get("dataset", "csv").spec
    params = dataset_params(registry, "csv", path=str(path))
    lines = spec.describe(params, 0)
    assert lines[0].startswith(f"{path}: 60 rows; target 'y' (regression); rows for training, validation, test: ")
    assert lines[1] == "1 row(s) without a value in 'y' dropped"
    assert lines[2].startswith("'code': left out: looks like an identifier (all ")
    assert lines[3].startswith("'n': number; warning: looks like a row number")
    assert lines[4].startswith("'dose': number; the token(s) '?' (")
    assert lines[5].startswith("'arm': one-hot, 2 categories ('a', 'b')")
    assert (
        lines[-1] == "inputs: 4 (2 number column(s), 2 one-hot column(s) from 1 text column(s); 1 column(s) left out)"
    )
    data = spec.build(params, 0)
    assert data.x_train.shape[1] == 4 and data.encoder is not None and data.classes is None
    kept = frame[frame["y"].notna()].reset_index(drop=True)
    encoded = data.encoder.transform(kept.drop(columns=["y"]))
    train_rows = [i for i in range(len(kept)) if any(np.allclose(encoded[i], x) for x in data.x_train.numpy())]
    assert len(train_rows) == len(data.x_train)
    y_train = kept.loc[train_rows, "y"].to_numpy()
    assert data.target_offset == pytest.approx((y_train.mean(),))
    # (the training rows are in file order) output * target_scale + target_offset: the target in its own units
    assert np.allclose(data.y_train.numpy()[:, 0] * data.target_scale + data.target_offset[0], y_train, atol=1e-4)
    ignored = spec.build({**params, "ignore": "n"}, 0)
    assert ignored.x_train.shape[1] == 3


# ---------------------------------------------------------------------------------------------------------
# npz
# ---------------------------------------------------------------------------------------------------------


def test_npz_vectors_sequences_and_images(registry, tmp_path):
    spec = registry.get("dataset", "npz").spec
    rng = np.random.default_rng(0)
    cases = {
        "vector": (rng.normal(5, 3, (60, 4)), rng.choice(["no", "yes"], 60), "classification", 2),
        "sequence": (rng.normal(0, 2, (60, 9, 2)), rng.normal(10, 5, 60), "regression", 1),
        "image": (rng.normal(1, 4, (60, 3, 5, 5)), rng.integers(0, 4, 60), "classification", 4),
    }
    for kind, (x, y, task, outputs) in cases.items():
        x[:, 0] += 100  # the first feature / channel is far from the others: one global mean would not do
        np.savez(tmp_path / f"{kind}.npz", x=x, y=y)
        params = dataset_params(registry, "npz", path=str(tmp_path / f"{kind}.npz"))
        assert spec.probe(params) == (task, kind)
        data = spec.build(params, 0)
        assert (data.input_kind, data.task, data.output_size) == (kind, task, outputs)
        assert [len(a) for a, _ in splits(data)] == [38, 10, 12]
        assert data.input_shape == x.shape[1:]
        axes = {"vector": (0,), "sequence": (0, 1), "image": (0, 2, 3)}[kind]
        assert np.allclose(data.x_train.numpy().mean(axis=axes), 0, atol=1e-5)  # per feature / channel
        assert np.allclose(data.x_train.numpy().std(axis=axes), 1, atol=1e-4)
        assert abs(float(data.x_val.mean())) > 1e-3 or abs(float(data.x_test.mean())) > 1e-3  # train stats only
        for a, b in splits(data):
            assert a.dtype == torch.float32
            assert b.dtype == (torch.int64 if task == "classification" else torch.float32)
        if task == "regression":
            assert data.y_train.shape == (38, 1) and abs(float(data.y_train.mean())) < 1e-5
            assert 3 < data.target_scale < 7  # y's std (5), restored in the metrics
        else:
            labels = sorted(set(y.tolist()))
            joined = torch.cat([b for _, b in splits(data)])
            assert sorted(set(joined.tolist())) == list(range(len(labels)))
            assert sorted(joined.bincount().tolist()) == sorted(np.unique(y, return_counts=True)[1].tolist())


def test_npz_presplit_test_arrays_are_used_as_given(registry, tmp_path):
    spec = registry.get("dataset", "npz").spec
    rng = np.random.default_rng(1)
    x, x_test = rng.normal(3, 2, (50, 6)), rng.normal(3, 2, (7, 6))
    y, y_test = rng.integers(0, 3, 50), np.array([2, 0, 1, 1, 0, 2, 2])
    np.savez(tmp_path / "pre.npz", inputs=x, targets=y, inputs_test=x_test, targets_test=y_test)
    params = dataset_params(registry, "npz", path=str(tmp_path / "pre.npz"), x="inputs", y="targets")
    assert spec.probe(params) == ("classification", "vector")
    data = spec.build(params, 0)
    assert [len(a) for a, _ in splits(data)] == [40, 10, 7]  # val: 0.2 of the 50; test: the given 7
    assert data.y_test.tolist() == y_test.tolist()
    pool_only = DataBundle(
        data.x_train,
        data.y_train,
        data.x_val,
        data.y_val,
        data.x_val[:0],
        data.y_val[:0],
        input_kind="vector",
        task="classification",
        output_size=3,
    )
    train, val = recover_rows(pool_only, x)[:2]
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(50))
    mean, std = x[train].mean(0), x[train].std(0)
    assert np.allclose(data.x_test.numpy(), (x_test - mean) / std, atol=1e-5)
    assert data.y_train.tolist() == y[train].tolist()


def test_npz_unusable_files_raise_readable_errors(registry, tmp_path):
    spec = registry.get("dataset", "npz").spec

    def probe(**arrays: np.ndarray):
        np.savez(tmp_path / "bad.npz", **arrays)
        return spec.probe(dataset_params(registry, "npz", path=str(tmp_path / "bad.npz")))

    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="has no array named 'y'; its arrays are: 'x', 'labels'"):
        probe(x=x, labels=np.arange(10))
    with pytest.raises(ValueError, match=r"shape \(10, 1, 1, 1, 3\): inputs must be 2-D"):
        probe(x=x.reshape(10, 1, 1, 1, 3), y=np.arange(10))
    with pytest.raises(ValueError, match="'x' has 10 samples but 'y' has 9"):
        probe(x=x, y=np.arange(9))
    with pytest.raises(ValueError, match="has 'x_test' but not 'y_test'"):
        probe(x=x, y=np.arange(10), x_test=x)
    with pytest.raises(ValueError, match="Python objects"):
        probe(x=np.array([{"a": 1}] * 10, dtype=object), y=np.arange(10))
    with pytest.raises(FileNotFoundError, match="no such file"):
        spec.probe(dataset_params(registry, "npz", path=str(tmp_path / "nothing.npz")))
    (tmp_path / "text.npz").write_text("not an archive\n")
    with pytest.raises(ValueError, match="is not an .npz archive"):
        spec.probe(dataset_params(registry, "npz", path=str(tmp_path / "text.npz")))


# ---------------------------------------------------------------------------------------------------------
# The user's data through the CLI
# ---------------------------------------------------------------------------------------------------------

CSV_STUDY = """
name: own-table
dataset:
  name: csv
  path: {path}
  target: {target}
task: classification
objective: {{metric: val_accuracy, direction: maximize}}
budget: {{trials: 2, max_epochs: 3}}
pruner: median  # trials train to the end (not paused at asha rungs)
seed: 0
search:
  architecture:
    mlp: {{depth: 1, width: 16}}
  activation: [gelu, tanh]
  loss: [nll, cross_entropy]
  optimizer:
    adam: {{lr: 0.01}}
  batch_size: 16
"""


@pytest.mark.parametrize(
    ("path", "target", "reason"),
    [
        ("data/missing.csv", "label", "no such file: {folder}/data/missing.csv"),
        (
            "data/table.csv",
            "species",
            "target column 'species' is not in {folder}/data/table.csv; its columns are: "
            "'id', 'color', 'size', 'label'",
        ),
    ],
    ids=["missing-file", "unknown-target"],
)
def test_unusable_csv_is_refused_before_anything_is_created(workdir, cli, path, target, reason):
    folder = workdir / "project"
    write_csv(folder / "data", classification_frame())
    study = folder / "study.yaml"
    study.write_text(textwrap.dedent(CSV_STUDY.format(path=path, target=target)))
    for command in ("validate", "run"):
        result = cli(command, study)
        assert result.code == 2, result.out
        assert result.err.startswith(f"error: {study}: dataset: data set 'csv' cannot use this data: ")
        assert reason.format(folder=folder) in result.err
        assert not {"mlflow.db", "optuna.journal", "mlruns"} & {p.name for p in workdir.iterdir()}
        assert not {"mlflow.db", "optuna.journal"} & {p.name for p in folder.iterdir()}


def test_csv_study_validates_and_runs_end_to_end(workdir, cli):
    folder = workdir / "project"
    table = write_csv(folder / "data", classification_frame(120))
    study = folder / "study.yaml"
    study.write_text(textwrap.dedent(CSV_STUDY.format(path="data/table.csv", target="label")))

    result = cli("validate", study)  # from the working directory, not the study's folder
    assert result.code == 0, result.err
    assert f"'path': '{table}'" in result.out and "(vector inputs)" in result.out
    assert "task       classification" in result.out

    result = cli("run", study, "--no-tracking")
    assert result.code == 0, result.err
    assert "Done: 2 trial(s) in the study: 2 complete, 0 pruned, 0 failed." in result.out
    assert not (workdir / "mlflow.db").exists()
    storage = JournalStorage(JournalFileBackend(str(workdir / "optuna.journal")))
    trials = optuna.load_study(study_name="own-table", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for t in trials:
        assert 0.0 <= t.value <= 1.0
        assert t.user_attrs["config"]["loss"] in ("nll", "cross_entropy")


def test_a_csv_that_fails_to_build_stops_the_run_with_the_workers_error(workdir, cli):
    folder = workdir / "project"
    (folder / "data").mkdir(parents=True)
    # the header and the target pass validation; the only feature column is an identifier (left out): no inputs
    (folder / "data" / "table.csv").write_text("name,label\n" + "".join(f"id{i},{'ab'[i % 2]}\n" for i in range(40)))
    study = folder / "study.yaml"
    study.write_text(textwrap.dedent(CSV_STUDY.format(path="data/table.csv", target="label")))
    result = cli("run", study)
    assert result.code == 1, result.out + result.err
    assert "have no values in the training split" in result.err, result.err
    assert "error: worker cpu0 stopped with a study error (above)" in result.err, result.err
    assert "Done:" not in result.out
