"""Built-in data sets, generated or shipped offline (nothing is downloaded)."""

from functools import lru_cache

import numpy as np
import torch

from orchestrator import DataBundle, Dataset, Float, Int, hookimpl


@lru_cache(maxsize=1)
def _mnist1d_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The official MNIST-1D (4000 train, 1000 test), generated offline (~2.5 s, cached per process)."""
    from mnist1d.data import get_dataset_args, make_dataset  # never `get_dataset`: it downloads

    data = make_dataset(get_dataset_args())
    return data["x"], data["y"], data["x_test"], data["y_test"]


def split_train_val(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed permutation (seeded) cut into train and validation indices."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * val_fraction)))
    return order[n_val:], order[:n_val]


def standardized_bundle(x_train, y_train, x_val, y_val, x_test, y_test, *, input_kind, task, output_size,
                        target_dtype=torch.long) -> DataBundle:
    """Standardise inputs with the training split's mean and std only, and wrap as tensors."""
    mean, std = x_train.mean(), x_train.std() + 1e-8

    def inputs(x):
        return torch.as_tensor((x - mean) / std, dtype=torch.float32)

    def targets(y):
        return torch.as_tensor(y, dtype=target_dtype)

    return DataBundle(inputs(x_train), targets(y_train), inputs(x_val), targets(y_val), inputs(x_test), targets(y_test),
                      input_kind=input_kind, task=task, output_size=output_size)


def build_mnist1d(params, seed: int) -> DataBundle:
    """MNIST-1D as sequences (N, 40, 1); validation cut from the official training set."""
    x, y, x_test, y_test = _mnist1d_arrays()
    train_idx, val_idx = split_train_val(len(x), params["val_fraction"], seed)
    train_idx = train_idx[: params["train_samples"]]
    as_seq = lambda a: a[..., None]  # noqa: E731 - (N, 40) -> (N, 40, 1)
    return standardized_bundle(as_seq(x[train_idx]), y[train_idx], as_seq(x[val_idx]), y[val_idx],
                               as_seq(x_test), y_test, input_kind="sequence", task="classification", output_size=10)


def build_digits(params, seed: int) -> DataBundle:
    """scikit-learn's 8x8 digits as images (N, 1, 8, 8); stratified test split, then validation."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float32)[:, None]
    x_rest, x_test, y_rest, y_test = train_test_split(images, digits.target, test_size=params["test_fraction"],
                                                      stratify=digits.target, random_state=seed)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=params["val_fraction"],
                                                      stratify=y_rest, random_state=seed)
    return standardized_bundle(x_train, y_train, x_val, y_val, x_test, y_test,
                               input_kind="image", task="classification", output_size=10)


@hookimpl
def register_datasets(register):
    register(Dataset(
        "mnist1d", "MNIST-1D (Greydanus & Kobak): 10 classes, sequences of length 40, generated offline.",
        params={
            "val_fraction": Float(0.05, 0.5, default=0.1, help="share of the official training set held out"),
            "train_samples": Int(50, 3800, default=3800, help="cap on training samples (small for quick tests)"),
        },
        build=build_mnist1d, input_kind="sequence", tasks=("classification",)))
    register(Dataset(
        "digits", "scikit-learn's handwritten digits: 1797 images of 8x8 pixels, 10 classes.",
        params={
            "test_fraction": Float(0.1, 0.5, default=0.25, help="stratified test share"),
            "val_fraction": Float(0.05, 0.5, default=0.15, help="stratified validation share of the rest"),
        },
        build=build_digits, input_kind="image", tasks=("classification",)))
