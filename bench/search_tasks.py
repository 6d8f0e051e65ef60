"""The search benchmark's tasks (protocol: bench/search_protocol.md): development tasks, on which the default search
strategy is chosen, and evaluation tasks, only measured. Each has a study template in bench/search_tasks/ and a data
file generated offline with fixed seeds (the same bytes each time), every test split large so that a model's test
quality is measured precisely.

    .venv/bin/python bench/search_tasks.py [--cache DIR]    # prepare every task's data; print files, sizes, digests
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
STUDIES = ROOT / "bench" / "search_tasks"
CACHE = ROOT / "bench" / ".search-data"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # every member's timestamp: numpy.savez writes the current time


@dataclass(frozen=True)
class Task:
    """One benchmark task: its data, its study template and the test metric that measures a run's quality."""

    name: str
    role: str
    description: str
    study: str
    quality: str
    sign: int
    data_file: str
    write_data: Callable[[Path], None]
    unfit: str = ""  # why the task cannot measure yet (the calibration found no room): left out of its role's group


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """numpy.savez without timestamps: the same arrays give the same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, array in arrays.items():
            with archive.open(zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_TIME), "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def mnist1d_npz(folder: Path, changes: dict[str, object], test: int) -> None:
    """MNIST-1D generated offline (`make_dataset`, never `get_dataset`, which downloads) with the standard arguments
    and `changes`: 4000 training samples (1000 of them for validation, a permutation with seed 0) and `test` test
    samples, as sequences (N, length, 1)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    for key, value in {**changes, "num_samples": 4000 + test, "train_split": 4000 / (4000 + test)}.items():
        setattr(args, key, value)
    data = make_dataset(args)
    x, y, x_test, y_test = data["x"], data["y"], data["x_test"], data["y_test"]
    assert len(x) == 4000 and len(x_test) == test, (len(x), len(x_test))
    order = np.random.default_rng(0).permutation(len(x))
    val, train = order[:1000], order[1000:]
    as_seq = lambda a: a[..., None].astype(np.float32)  # noqa: E731 - (N, length) -> (N, length, 1)
    save_npz(
        folder / "data.npz",
        x=as_seq(x[train]),
        y=y[train].astype(np.int64),
        x_val=as_seq(x[val]),
        y_val=y[val].astype(np.int64),
        x_test=as_seq(x_test),
        y_test=y_test.astype(np.int64),
    )


def write_dev_mnist1d(folder: Path) -> None:
    """MNIST-1D with the standard generation arguments, 10,000 test samples."""
    mnist1d_npz(folder, {}, test=10_000)


def write_eval_mnist1d_variant(folder: Path) -> None:
    """MNIST-1D with other arguments: stronger noise, more shear and scaling, a longer final sequence, seed 7."""
    mnist1d_npz(
        folder,
        {
            "corr_noise_scale": 0.4,
            "iid_noise_scale": 0.05,
            "shear_scale": 1.0,
            "scale_coeff": 0.6,
            "final_seq_length": 48,
            "seed": 7,
        },
        test=10_000,
    )


def write_dev_tabular(folder: Path) -> None:
    """A make_classification table: 4 classes in 6 clusters each, 8 informative, 4 redundant and 8 noise features,
    3% of the labels redrawn at random; 12,000 train, 4,000 validation, 10,000 test vectors (session 8: 3000 and
    1000 before; the control read 1.8x [1.1-5.2] at T/2: a flat curve by T/2, and a validation split that picked
    the incumbent with a standard error of 0.01)."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=26_000,
        n_features=20,
        n_informative=8,
        n_redundant=4,
        n_classes=4,
        n_clusters_per_class=6,
        flip_y=0.03,
        class_sep=2.0,
        random_state=11,
    )
    x = x.astype(np.float32)
    save_npz(
        folder / "data.npz",
        x=x[:12_000],
        y=y[:12_000],
        x_val=x[12_000:16_000],
        y_val=y[12_000:16_000],
        x_test=x[16_000:],
        y_test=y[16_000:],
    )


REGIONS = {"north": -3.0, "south": 0.0, "east": 2.0, "west": 4.0, "central": -1.0}  # additive offsets
MATERIALS = {"wood": 0.5, "steel": 1.0, "glass": 1.5, "stone": 2.0}  # multiply the effect of x4


def write_eval_regression_csv(folder: Path) -> None:
    """9000 rows: Friedman #1 of x1..x5 plus a region offset, a material that scales x4's effect, Gaussian noise
    (sd 1); x6..x8 useless numbers (uniform, normal, skewed but bounded: an outlier in a useless column would make
    the test RMSE hinge on a few rows). Columns x1..x8, region, material, y."""
    rng = np.random.default_rng(23)
    rows = 9000
    x = rng.uniform(0.0, 1.0, size=(rows, 8))
    x[:, 6] = rng.normal(0.0, 1.0, rows)
    x[:, 7] = rng.uniform(0.0, 1.0, rows) ** 3
    region = rng.choice(list(REGIONS), size=rows)
    material = rng.choice(list(MATERIALS), size=rows)
    y = (
        10 * np.sin(np.pi * x[:, 0] * x[:, 1])
        + 20 * (x[:, 2] - 0.5) ** 2
        + 10 * x[:, 3] * np.array([MATERIALS[m] for m in material])
        + 5 * x[:, 4]
        + np.array([REGIONS[r] for r in region])
        + rng.normal(0.0, 1.0, rows)
    )
    with (folder / "table.csv").open("w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow([*(f"x{i + 1}" for i in range(8)), "region", "material", "y"])
        for values, r, m, target in zip(x, region, material, y):
            writer.writerow([*(f"{v:.5f}" for v in values), r, m, f"{target:.5f}"])


def write_eval_text(folder: Path) -> None:
    """scripts/make_corpus.py's reviews (whose sentiment hangs on word order): 12,000 rows of five clauses each,
    labelled by the majority of what the clauses leave (--clauses 5), seed 7, 5% of the labels flipped."""
    spec = importlib.util.spec_from_file_location("make_corpus", ROOT / "scripts" / "make_corpus.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_corpus(folder / "corpus.csv", rows=12_000, seed=7, flip=0.05, clauses=5)


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "dev-mnist1d",
            "development",
            "MNIST-1D, standard generation arguments: 10 classes of noisy, shifted, sheared 1-D digit templates "
            "(sequences of 40); convolutions win, a wide space of architectures",
            "dev-mnist1d.yaml",
            "test_accuracy",
            +1,
            "data.npz",
            write_dev_mnist1d,
        ),
        Task(
            "dev-tabular",
            "development",
            "synthetic tabular classification (make_classification, 4 classes in 24 clusters, 3% label noise): "
            "vectors where MLP depth, width and regularization decide",
            "dev-tabular.yaml",
            "test_accuracy",
            +1,
            "data.npz",
            write_dev_tabular,
        ),
        Task(
            "eval-mnist1d-variant",
            "evaluation",
            "MNIST-1D generated with other arguments (more noise, shear and scaling, length 48, seed 7): a sequence "
            "task of another difficulty than the one the default was chosen on",
            "eval-mnist1d-variant.yaml",
            "test_accuracy",
            +1,
            "data.npz",
            write_eval_mnist1d_variant,
        ),
        Task(
            "eval-regression-csv",
            "evaluation",
            "a CSV regression table (Friedman #1 with noise, a categorical offset, a categorical interaction, useless "
            "columns): one-hot encoding, a regression loss, RMSE",
            "eval-regression-csv.yaml",
            "test_rmse",
            -1,
            "table.csv",
            write_eval_regression_csv,
        ),
        Task(
            "eval-text",
            "evaluation",
            "generated film reviews of five clauses, each negated or not, labelled by the majority of what they leave "
            "(seed 7), 5% of labels flipped (ceiling ~0.95): token sequences where recurrent, convolutional and "
            "attention models compete",
            "eval-text.yaml",
            "test_accuracy",
            +1,
            "corpus.csv",
            write_eval_text,
        ),
    )
}


def data_digest(path: Path) -> str:
    """The sha256 of a file, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare(task: Task, cache: Path = CACHE) -> Path:
    """The task's data file in cache/<task.name>/, written unless present with the digest stored beside it."""
    folder = cache / task.name
    path, stored = folder / task.data_file, folder / f"{task.data_file}.sha256"
    if path.exists() and stored.exists() and stored.read_text().strip() == data_digest(path):
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        task.write_data(Path(scratch))
        os.replace(Path(scratch) / task.data_file, path)
    stored.write_text(data_digest(path) + "\n")
    return path


def split_sizes(task: Task, path: Path) -> dict[str, int]:
    """Samples for training, validation and test: the arrays of a presplit .npz, or the splits the study's data set
    cuts from a table (their sizes do not depend on the seed)."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            return {"train": len(arrays["y"]), "val": len(arrays["y_val"]), "test": len(arrays["y_test"])}
    from automl_plugins.splits import three_way_split

    dataset = yaml.safe_load((STUDIES / task.study).read_text())["dataset"]
    with path.open(newline="") as file:
        rows = sum(1 for _ in csv.reader(file)) - 1
    splits = three_way_split(rows, dataset.get("test_fraction", 0.2), dataset.get("val_fraction", 0.2), 0)
    return dict(zip(("train", "val", "test"), map(len, splits)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the data files are written")
    args = parser.parse_args()
    for task in TASKS.values():
        path = prepare(task, args.cache)
        sizes = ", ".join(f"{split} {n}" for split, n in split_sizes(task, path).items())
        print(
            f"{task.name} ({task.role}, {task.quality}): {path} {path.stat().st_size:,} bytes; {sizes}; "
            f"sha256 {data_digest(path)}"
        )


if __name__ == "__main__":
    main()
