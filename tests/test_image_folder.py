"""`dataset: image_folder`, as a user meets it: a folder of class sub-folders of PNG files written here with
Pillow, a study that searches the CNN on it, `automl run`, then Optuna and MLflow read back; the splits and the
normalisation; unreadable files refused (exit 2, named, nothing created) or left out with their count."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import load_optuna, mlflow_runs
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
    cnn: {{channels: 8, depth: 2, kernel_size: 3}}
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
    return {"path": str(root), "size": 12, "colour": "rgb", "unreadable": "refuse", "test_fraction": 0.2,
            "val_fraction": 0.2, **overrides}


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


def test_an_unreadable_image_is_named_and_the_study_refused_before_anything_is_created(images, write_study, workdir,
                                                                                       cli):
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


@pytest.mark.parametrize("layout, message", [
    ("one class", "needs one sub-folder of images per class, at least two; found 1: only"),
    ("empty class", "holds no image"),
    ("no folder", "no such folder"),
])
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
    done = subprocess.run([sys.executable, str(repo / "scripts" / "make_shapes.py"), str(workdir / "shapes"),
                           "--per-class", "5"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "wrote 15 images of 24x24" in done.stdout, done.stderr
    result = cli("validate", str(workdir / "shapes.yaml"))
    assert result.code == 0, result.err
    assert "image_folder" in result.out
