"""`dataset: image_folder`, as a user meets it: a folder of class sub-folders of PNG files written here with
Pillow, a study that searches the CNN on it, `automl run`, then Optuna and MLflow read back; the splits and the
normalisation; unreadable files refused (exit 2, named, nothing created) or left out with their count."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import load_optuna, mlflow_runs

from orchestrator.testing import DatasetConformance
from plugins.image_folder import build_image_folder
from scripts.make_shapes import write_shapes

STUDY = """
name: tiny
dataset: {{name: image_folder, path: images, size: 12, colour: {colour}{extra}}}
objective: {{metric: val_accuracy, direction: maximize}}
budget: {{trials: 2, max_epochs: 10}}
pruner: none
seed: 0
search:
  architecture:
    cnn: {{channels: 8, depth: 2, kernel_size: 3, norm: batch}}
  activation: relu
  loss: cross_entropy
  optimizer:
    adam: {{lr: 0.01}}
  batch_size: 16
"""


def write_images(root: Path, per_class: int = 30) -> None:
    """Two classes that a CNN tells apart (scripts/make_shapes.py): circles and squares, PNG and JPEG."""
    write_shapes(root, per_class=per_class, size=20, shapes=("circle", "square"))


@pytest.fixture
def images(workdir: Path) -> Path:
    write_images(workdir / "images")
    return workdir / "images"


def params(root: Path, **overrides) -> dict:
    return {
        "path": str(root),
        "size": 12,
        "colour": "rgb",
        "unreadable": "refuse",
        "test_fraction": 0.2,
        "val_fraction": 0.2,
        **overrides,
    }


def test_a_study_on_an_image_folder_searches_the_cnn(images, write_study, workdir, cli):
    write_study(STUDY.format(colour="rgb", extra=""))
    result = cli("run", "study.yaml")
    assert result.code == 0, result.err
    study = load_optuna(workdir)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert max(t.value for t in study.trials) >= 0.75, "circles and squares are told apart"
    _, parents, children = mlflow_runs(workdir)
    assert len(parents) == 1 and len(children) == 2
    assert "best model (trial" in result.out


def test_images_are_resized_split_by_class_and_normalised_with_the_training_split(images):
    data = build_image_folder(params(images), seed=0)
    assert data.x_train.shape[1:] == (3, 12, 12) and data.input_kind == "image" and data.output_size == 2
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 60
    for split in (data.y_train, data.y_val, data.y_test):  # stratified: both classes in the same share
        counts = np.bincount(split.numpy(), minlength=2)
        assert abs(int(counts[0]) - int(counts[1])) <= 1
    channel_means = data.x_train.mean(dim=(0, 2, 3))
    assert channel_means.abs().max() < 1e-4 and (data.x_train.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-2
    grey = build_image_folder(params(images, colour="grey", size=8), seed=0)
    assert grey.x_train.shape[1:] == (1, 8, 8)


def test_an_unreadable_image_is_named_and_the_study_refused_before_anything_is_created(
    images, write_study, workdir, cli
):
    (images / "square" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really an image")
    path = write_study(STUDY.format(colour="grey", extra=""))
    for command in ("validate", "run"):
        result = cli(command, str(path))
        assert result.code == 2, result.err
        assert "1 of 61 image file(s) cannot be read:" in result.err and "square/broken.png" in result.err
        assert "unreadable: skip" in result.err
    assert not (workdir / "optuna.journal").exists() and not (workdir / "mlflow.db").exists()


def test_unreadable_images_can_be_left_out_and_counted(images, capsys):
    (images / "circle" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    data = build_image_folder(params(images, unreadable="skip"), seed=0)
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 60
    assert "left out 1 unreadable image file(s) of 61" in capsys.readouterr().err


def test_validate_shows_classes_sizes_modes_splits_and_what_it_leaves_out(images, write_study, cli):
    from PIL import Image

    (images / "circle" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    Image.new("RGB", (40, 30), "white").save(images / "square" / "large.png")
    result = cli("validate", str(write_study(STUDY.format(colour="grey", extra=", unreadable: skip"))))
    assert result.code == 0, result.err
    for line in (
        "62 image file(s) in 2 classes: 'circle' 31, 'square' 31",
        "20x20 (60)",
        "40x30 (1)",
        "; every image is resized to 12x12",
        "every image is converted to grey (L) (1 channel, colour: grey)",
        "1 unreadable file(s) left out (unreadable: skip): ",
        "truncated.jpg",
        "images for training, validation, test: ",
        "load: memory: every image held in memory as float32",
    ):
        assert line in result.out, (line, result.out)
    assert "modes: RGB (61);" in result.out  # the generated images and the large square, all RGB


@pytest.mark.parametrize(
    "layout, message",
    [
        ("one class", "needs one sub-folder of images per class, at least two; found 1: only"),
        ("empty class", "holds no image"),
        ("no folder", "no such folder"),
    ],
)
def test_a_folder_not_laid_out_by_class_is_refused_with_exit_2(layout, message, write_study, workdir, cli):
    root = workdir / "images"
    if layout == "one class":
        write_images(root, per_class=2)
        for file in (root / "square").iterdir():
            file.unlink()
        (root / "square").rmdir()
        (root / "circle").rename(root / "only")
    elif layout == "empty class":
        write_images(root, per_class=2)
        (root / "empty").mkdir()
    path = write_study(STUDY.format(colour="grey", extra=""))
    result = cli("validate", str(path))
    assert result.code == 2 and message in result.err, result.err


def test_the_example_study_validates_on_the_images_the_script_writes(workdir, cli):
    repo = Path(__file__).resolve().parents[1]
    shutil.copy(repo / "studies" / "shapes.yaml", workdir / "shapes.yaml")
    done = subprocess.run(
        [sys.executable, str(repo / "scripts" / "make_shapes.py"), str(workdir / "shapes"), "--per-class", "5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "wrote 15 images of 24x24" in done.stdout, done.stderr
    result = cli("validate", str(workdir / "shapes.yaml"))
    assert result.code == 0, result.err
    assert "image_folder" in result.out


# --- load: stream, and the best model served on raw image files -------------------------------------------------


def file_bytes(paths):
    """The files' bytes as the served model takes them: a DataFrame with a column `image`."""
    import pandas as pd

    return pd.DataFrame({"image": [Path(p).read_bytes() for p in paths]})


@pytest.fixture(scope="module")
def streamed_run(tmp_path_factory) -> Path:
    """One `automl run` of the tiny study with `load: stream`, as a user runs it (in this process; the supervisor
    starts its worker). `workers: 0`: the training process reads the files (DataLoader worker processes are
    checked on their own below)."""
    import contextlib
    import io
    import os

    from orchestrator.cli import main

    folder = tmp_path_factory.mktemp("streamed")
    write_images(folder / "images")
    (folder / "study.yaml").write_text(STUDY.format(colour="rgb", extra=", load: stream, workers: 0"))
    saved, out, err = Path.cwd(), io.StringIO(), io.StringIO()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["run", "study.yaml"])
    finally:
        os.chdir(saved)
    assert code == 0, err.getvalue()[-3000:]
    assert "best model (trial" in out.getvalue()
    return folder


def best_model_uri(folder: Path) -> str:
    _, parents, _ = mlflow_runs(folder)
    assert len(parents) == 1
    return parents[0].data.tags["best_model.uri"]


def test_a_streamed_study_trains_on_files_read_one_by_one(streamed_run):
    study = load_optuna(streamed_run)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert max(t.value for t in study.trials) >= 0.75, "circles and squares are told apart from streamed files"
    assert study.best_trial.user_attrs["test_metrics"]["test_accuracy"] >= 0.6
    _, _, children = mlflow_runs(streamed_run)
    assert len(children) == 2


def test_training_reads_a_streamed_folder_through_its_datasets(images, monkeypatch):
    """In this process: every epoch reads each training file once through the split's Dataset."""
    from orchestrator.api.registry import load_registry
    from orchestrator.training.fit import train
    from plugins.image_files import ImageFiles

    data = build_image_folder(params(images, load="stream", workers=0), seed=0)
    assert data.streaming and data.loader_workers == 0 and data.input_shape == (3, 12, 12)
    reads: list[str] = []
    original = ImageFiles.__getitem__

    def counted(self, index):
        reads.append(self.files[index])
        return original(self, index)

    monkeypatch.setattr(ImageFiles, "__getitem__", counted)
    config = {
        "architecture": "cnn",
        "architecture.cnn.channels": 8,
        "architecture.cnn.depth": 2,
        "architecture.cnn.kernel_size": 3,
        "architecture.cnn.growth": 1.5,
        "architecture.cnn.pooling": "max",
        "activation": "relu",
        "loss": "cross_entropy",
        "optimizer": "adam",
        "optimizer.adam.lr": 0.01,
        "optimizer.adam.beta1": 0.9,
        "optimizer.adam.beta2": 0.999,
        "schedule": "constant",
        "batch_size": 16,
    }
    history: list[dict] = []
    train(config, load_registry(), data, max_epochs=2, seed=0, listeners=[lambda epoch, m: history.append(m)])
    assert len(history) == 2 and all(0.0 <= m["val_accuracy"] <= 1.0 for m in history)
    train_reads = Counter(f for f in reads if f in set(data.x_train.files))
    assert set(train_reads) == set(data.x_train.files) and min(train_reads.values()) == 2  # once per epoch
    assert sum(train_reads.values()) <= 2 * len(data.x_train) + 2  # (and the first sample's shape looked up)
    assert set(data.x_val.files) <= set(reads)


@pytest.mark.filterwarnings("ignore:.*validate_serving_input.*:FutureWarning")  # (its successor runs a subprocess)
def test_the_served_best_model_takes_image_file_bytes_and_returns_class_names(streamed_run):
    import mlflow
    import pandas as pd
    from mlflow.models import validate_serving_input

    uri = best_model_uri(streamed_run)
    mlflow.set_tracking_uri(f"sqlite:///{streamed_run / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(uri)
    assert str(model.metadata.get_input_schema()) == "['image': binary (required)]"

    paths = sorted((streamed_run / "images").glob("*/*"))
    predictions = model.predict(file_bytes(paths))
    truth = [p.parent.name for p in paths]
    assert set(predictions) <= {"circle", "square"} and len(predictions) == len(paths)
    accuracy = float(np.mean(np.array(predictions) == np.array(truth)))
    assert accuracy >= 0.85, accuracy

    # the held-out test files score exactly as the trial's test accuracy: the same preprocessing as in training
    data = build_image_folder(params(streamed_run / "images", load="stream"), seed=0)
    test_files = data.x_test.files
    served = model.predict(file_bytes(test_files))
    served_accuracy = float(np.mean(np.array(served) == np.array([Path(f).parent.name for f in test_files])))
    best = load_optuna(streamed_run).best_trial
    assert served_accuracy == pytest.approx(best.user_attrs["test_metrics"]["test_accuracy"], abs=1e-6)

    # a JSON request as `mlflow models serve` takes it: the logged example, the bytes base64-encoded
    example = (Path(mlflow.artifacts.download_artifacts(uri)) / "serving_input_example.json").read_text()
    assert set(validate_serving_input(uri, example)) <= {"circle", "square"}

    with pytest.raises(ValueError, match=r"row 1 of column 'image' is not a readable image \(12 bytes"):
        model.predict(pd.DataFrame({"image": [paths[0].read_bytes(), b"not an image"]}))


def test_the_encoder_gives_exactly_what_training_saw(images):
    import torch

    for colour in ("rgb", "grey"):
        memory = build_image_folder(params(images, colour=colour), seed=0)
        streamed = build_image_folder(params(images, colour=colour, load="stream"), seed=0)
        assert memory.classes == streamed.classes == ("circle", "square")
        assert memory.encoder == streamed.encoder  # the same statistics either way
        for split in ("train", "val", "test"):
            files = getattr(streamed, f"x_{split}").files
            encoded = torch.as_tensor(memory.encoder.transform(file_bytes(files)))
            assert encoded.dtype == torch.float32 and encoded.shape[1:] == memory.input_shape
            assert torch.equal(encoded, getattr(memory, f"x_{split}")), (colour, split)
            items = [getattr(streamed, f"x_{split}")[i] for i in range(len(files))]
            assert torch.equal(torch.stack([x for x, _ in items]), encoded)
            assert torch.equal(torch.stack([y for _, y in items]), getattr(memory, f"y_{split}"))
            assert all(y.dtype == torch.int64 and y.ndim == 0 for _, y in items)
    example = memory.encoder.example
    assert list(example.columns) == ["image"] and len(example) == 2  # one training image of each class
    assert all(isinstance(v, bytes) for v in example["image"])


def test_a_streamed_split_is_picklable_and_read_by_dataloader_worker_processes(images):
    import pickle

    import torch
    from torch.utils.data import DataLoader

    data = build_image_folder(params(images, load="stream"), seed=0)
    copy = pickle.loads(pickle.dumps(data.x_train))
    assert len(copy) == len(data.x_train) and torch.equal(copy[3][0], data.x_train[3][0])
    in_process = list(DataLoader(data.x_train, batch_size=8))
    in_workers = list(DataLoader(data.x_train, batch_size=8, num_workers=2))
    assert len(in_workers) == len(in_process)
    for (a, y), (b, z) in zip(in_process, in_workers):
        assert torch.equal(a, b) and torch.equal(y, z)


def test_the_encoder_names_what_is_wrong_with_its_input(images):
    import pandas as pd

    encoder = build_image_folder(params(images), seed=0).encoder
    with pytest.raises(ValueError, match=r"the input has no column 'image' \(columns: 'picture'\): pass a DataFrame"):
        encoder.transform(pd.DataFrame({"picture": [b"x"]}))
    with pytest.raises(
        ValueError,
        match=r"row 0 of column 'image' is not a readable image \(17 bytes starting "
        r"b'\\x89PNG",
    ):
        encoder.transform(pd.DataFrame({"image": [b"\x89PNG\r\n\x1a\nnot a png"]}))
    with pytest.raises(
        ValueError,
        match=r"row 0 of column 'image' holds str 'circle/1.png', not an image file's "
        r"bytes",
    ):
        encoder.transform(pd.DataFrame({"image": ["circle/1.png"]}))
    empty = encoder.transform(pd.DataFrame({"image": pd.Series([], dtype=object)}))
    assert empty.shape == (0, 3, 12, 12) and empty.dtype == np.float32


def test_a_streamed_folder_leaves_out_unreadable_files_too(images, capsys):
    (images / "circle" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    data = build_image_folder(params(images, unreadable="skip", load="stream"), seed=0)
    files = data.x_train.files + data.x_val.files + data.x_test.files
    assert len(files) == 60 and not any(f.endswith("truncated.jpg") for f in files)
    assert "left out 1 unreadable image file(s) of 61" in capsys.readouterr().err


class TestStreamedImageFolderConformance(DatasetConformance):
    """The conformance kit on `load: stream` (tests/test_conformance.py checks the defaults)."""

    @pytest.fixture
    def component(self):
        return "image_folder"

    @pytest.fixture
    def dataset_params(self, tmp_path):
        write_images(tmp_path / "images", per_class=10)
        return {"path": str(tmp_path / "images"), "size": 8, "load": "stream"}


DIGITS_STUDY = """
name: tiny
dataset: {name: image_folder, path: digits, size: 16, colour: grey}
objective: {metric: val_accuracy, direction: maximize}
budget: {trials: 2, max_epochs: 10}
pruner: none
seed: 0
search:
  architecture:                 # each at its declared defaults, named here; the CNN's norm is left to its default
    mlp: {depth: 2, width: 128}
    cnn: {channels: 32, growth: 1.5, kernel_size: 5, depth: 3, pooling: max}
  activation: relu
  loss: cross_entropy
  optimizer: {adam: {lr: 0.001, beta1: 0.9, beta2: 0.999}}
  batch_size: 32
enqueue: [{architecture: mlp}, {architecture: cnn}]
"""


def test_the_cnn_at_its_defaults_learns_a_small_digit_folder_as_well_as_the_mlp(write_study, workdir, cli):
    """Issue 24's case: 358 training PNGs of 16x16 digits, 10 epochs, batch 32, Adam at its defaults. Without
    a norm the CNN reached 0.90 [0.86-0.94] validation accuracy over 5 seeds against the MLP's 0.97; with batch
    norm, its default now, 0.99 (bench/baselines/cnn-defaults-bfa3e93.txt)."""
    from scripts.make_digits import write_digits

    write_digits(workdir / "digits")
    result = cli("run", str(write_study(DIGITS_STUDY)), "--no-tracking")
    assert result.code == 0, result.err
    trials = load_optuna(workdir).trials
    accuracy = {t.params["architecture"]: t.value for t in trials if t.state.name == "COMPLETE"}
    assert set(accuracy) == {"mlp", "cnn"}, [(t.params, t.state) for t in trials]
    assert trials[1].user_attrs["config"]["architecture.cnn.norm"] == "batch"
    assert accuracy["cnn"] >= 0.95 and accuracy["cnn"] >= accuracy["mlp"] - 0.02, accuracy
