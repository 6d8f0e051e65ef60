"""The built-in benchmark data sets, generated or shipped offline (nothing is downloaded), and the registration of
every built-in data set (the user's own CSV and .npz files are read by user_files)."""

from functools import lru_cache

import numpy as np

from orchestrator import Choice, DataBundle, Dataset, Float, Int, Text, hookimpl

from .image_folder import build_image_folder, describe_image_folder, probe_image_folder
from .splits import (
    CSV_PATH_PARAM,
    DELIMITER_PARAM,
    TASK_PARAM,
    bundle_of_splits,
    fraction_params,
    scale_targets,
    split_rows,
    split_train_val,
    standardise,
    standardized_bundle,
)
from .table_encoding import DEFAULT_MAX_CATEGORIES
from .user_files import build_csv, build_npz, describe_csv, probe_csv, probe_npz


@lru_cache(maxsize=1)
def _mnist1d_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The official MNIST-1D (4000 train, 1000 test), generated offline (~2.5 s, cached per process)."""
    from mnist1d.data import get_dataset_args, make_dataset  # never `get_dataset`: it downloads

    data = make_dataset(get_dataset_args())
    return data["x"], data["y"], data["x_test"], data["y_test"]


def build_mnist1d(params, seed: int) -> DataBundle:
    """MNIST-1D as sequences (N, 40, 1); validation cut from the official training set."""
    x, y, x_test, y_test = _mnist1d_arrays()
    train_idx, val_idx = split_train_val(len(x), params["val_fraction"], seed)
    train_idx = train_idx[: params["train_samples"]]
    as_seq = lambda a: a[..., None]  # noqa: E731 - (N, 40) -> (N, 40, 1)
    return standardized_bundle(
        as_seq(x[train_idx]),
        y[train_idx],
        as_seq(x[val_idx]),
        y[val_idx],
        as_seq(x_test),
        y_test,
        input_kind="sequence",
        task="classification",
        output_size=10,
    )


def build_digits(params, seed: int) -> DataBundle:
    """scikit-learn's 8x8 digits as images (N, 1, 8, 8); stratified test split, then validation."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float32)[:, None]
    x_rest, x_test, y_rest, y_test = train_test_split(
        images, digits.target, test_size=params["test_fraction"], stratify=digits.target, random_state=seed
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=params["val_fraction"], stratify=y_rest, random_state=seed
    )
    return standardized_bundle(
        x_train, y_train, x_val, y_val, x_test, y_test, input_kind="image", task="classification", output_size=10
    )


def build_diabetes(params, seed: int) -> DataBundle:
    """scikit-learn's diabetes (442 patients, 10 features, disease progression after a year): seeded test
    split, then validation; features and the target standardised with the training split."""
    import torch
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    train, val, test = split_rows(params, len(x), seed)
    xs = standardise(x[train], x[val], x[test])
    ys, scale = scale_targets(y[train, None], y[val, None], y[test, None])
    return bundle_of_splits(
        [torch.as_tensor(a) for a in xs],
        [torch.as_tensor(a) for a in ys],
        input_kind="vector",
        task="regression",
        output_size=1,
        target_scale=scale,
    )


@hookimpl
def register_datasets(register):
    register(_mnist1d_dataset())
    register(_digits_dataset())
    register(_diabetes_dataset())
    register(_csv_dataset())
    register(_image_folder_dataset())
    register(_npz_dataset())


def _mnist1d_dataset() -> Dataset:
    return Dataset(
        "mnist1d",
        "MNIST-1D (Greydanus & Kobak): 10 classes, sequences of length 40, generated offline.",
        params={
            "val_fraction": Float(0.05, 0.5, default=0.1, help="share of the official training set held out"),
            "train_samples": Int(50, 3800, default=3800, help="cap on training samples (small for quick tests)"),
        },
        build=build_mnist1d,
        input_kind="sequence",
        tasks=("classification",),
    )


def _digits_dataset() -> Dataset:
    return Dataset(
        "digits",
        "scikit-learn's handwritten digits: 1797 images of 8x8 pixels, 10 classes.",
        params={
            "test_fraction": Float(0.1, 0.5, default=0.25, help="stratified test share"),
            "val_fraction": Float(0.05, 0.5, default=0.15, help="stratified validation share of the rest"),
        },
        build=build_digits,
        input_kind="image",
        tasks=("classification",),
    )


def _diabetes_dataset() -> Dataset:
    return Dataset(
        "diabetes",
        "scikit-learn's diabetes: 442 patients, 10 features, regression of disease progression.",
        params=fraction_params(),
        build=build_diabetes,
        input_kind="vector",
        tasks=("regression",),
    )


def _csv_dataset() -> Dataset:
    return Dataset(
        "csv",
        "Your own table: a CSV file with a header row; one column is the target, the others features "
        "(numbers standardised, dates as numbers, text one-hot encoded, identifiers, free text and constant "
        "columns left out: `automl validate` shows how).",
        params={
            "path": CSV_PATH_PARAM,
            "target": Text("", help="the target column (default: the last column)"),
            "task": TASK_PARAM,
            "delimiter": DELIMITER_PARAM,
            "ignore": Text("", help="feature columns to leave out, comma-separated (e.g. an ID or row number)"),
            "encode": Text(
                "",
                help="how to encode columns where the guess is wrong, comma-separated column=kind "
                "pairs, kind number, category or date (e.g. 'zip=category, opened=date')",
            ),
            "max_categories": Int(
                2,
                100_000,
                default=DEFAULT_MAX_CATEGORIES,
                help="one-hot columns of a text column at most: past it the most frequent levels "
                "are kept and the rest share one '(other)' column",
            ),
            **fraction_params(),
        },
        build=build_csv,
        input_kind="vector",
        tasks=("classification", "regression"),
        probe=probe_csv,
        describe=describe_csv,
    )


def _image_folder_dataset() -> Dataset:
    return Dataset(
        "image_folder",
        "Your own images: a folder with one sub-folder per class of PNG/JPEG files, resized to "
        "size x size, grey or RGB, normalised per channel with the training split's statistics; held "
        "in memory or streamed file by file. The best model takes image file bytes, returns class "
        "names.",
        params={
            "path": Text("", help="the folder of class sub-folders (relative to the study file)", is_path=True),
            "size": Int(4, 512, default=32, help="images are resized to size x size pixels"),
            "colour": Choice(("grey", "rgb"), default="grey", help="grey: 1 channel; rgb: 3"),
            "unreadable": Choice(
                ("refuse", "skip"),
                default="refuse",
                help="an unreadable file: refuse the study (exit 2, named) or leave it out (counted)",
            ),
            "load": Choice(
                ("memory", "stream"),
                default="memory",
                help="memory: every image held as one tensor; stream: one file read per sample as "
                "training asks (folders larger than memory)",
            ),
            "workers": Choice(
                ("auto", 0, 1, 2, 4, 8),
                default="auto",
                help="load: stream: processes that read the files while the network trains (0: "
                "the training process reads them; auto: chosen for the machine)",
            ),
            **fraction_params(),
        },
        build=build_image_folder,
        input_kind="image",
        tasks=("classification",),
        probe=probe_image_folder,
        describe=describe_image_folder,
    )


def _npz_dataset() -> Dataset:
    return Dataset(
        "npz",
        "Your own arrays: an .npz file (numpy.savez) with inputs x (N, features), (N, length, channels) "
        "or (N, channels, height, width) and targets y; x_test/y_test and x_val/y_val are used if present.",
        params={
            "path": Text("", help="the .npz file (relative to the study file)", is_path=True),
            "x": Text("x", help="the inputs' array name (presplit: <x>_val, <x>_test)"),
            "y": Text("y", help="the targets' array name (presplit: <y>_val, <y>_test)"),
            "task": TASK_PARAM,
            **fraction_params(),
        },
        build=build_npz,
        input_kind="vector",
        tasks=("classification", "regression"),
        probe=probe_npz,
    )
