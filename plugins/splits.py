"""What the built-in data sets share: seeded splits, standardisation with the training split's statistics, the
task of a target, class labels, and the settings every user-file data set has."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator import Choice, DataBundle, Float, Int, Text


def split_train_val(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed permutation (seeded) cut into train and validation indices."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * val_fraction)))
    return order[n_val:], order[:n_val]


def standardized_bundle(
    x_train, y_train, x_val, y_val, x_test, y_test, *, input_kind, task, output_size, target_dtype=None
) -> DataBundle:
    """Standardise inputs with the training split's mean and std only, and wrap as tensors (targets as
    `target_dtype`, default int64)."""
    import torch

    target_dtype = target_dtype or torch.long
    mean, std = x_train.mean(), x_train.std() + 1e-8

    def inputs(x):
        return torch.as_tensor((x - mean) / std, dtype=torch.float32)

    def targets(y):
        return torch.as_tensor(y, dtype=target_dtype)

    return bundle_of_splits(
        [inputs(x_train), inputs(x_val), inputs(x_test)],
        [targets(y_train), targets(y_val), targets(y_test)],
        input_kind=input_kind,
        task=task,
        output_size=output_size,
    )


def bundle_of_splits(xs: Sequence[Any], ys: Sequence[Any], **fields: Any) -> DataBundle:
    """A DataBundle of the inputs `xs` and targets `ys` (tensors) of the train, validation and test splits, in that
    order; `fields` are the DataBundle's other fields."""
    return DataBundle(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], **fields)


MAX_AUTO_CLASSES = 20  # task "auto": an integer-valued target with at most this many values is classification
TASK_CHOICE_HELP = (
    "classification, regression, or auto: a non-numeric target, or an integer one with at most "
    f"{MAX_AUTO_CLASSES} distinct values, is classification; anything else regression"
)
# The `task` parameter of every data set that reads a user's file (see infer_task).
TASK_PARAM = Choice(("auto", "classification", "regression"), default="auto", help=TASK_CHOICE_HELP)
# The file and delimiter of every data set that reads a CSV file (`csv`, `text`: see user_files.read_csv).
CSV_PATH_PARAM = Text("", help="the CSV file (relative to the study file)", is_path=True)
DELIMITER_PARAM = Text(",", help="the character between columns")

STUDY_SEED = -1  # `split_seed`: the split follows the study's seed


def fraction_params(test_default: float = 0.2, val_default: float = 0.2) -> dict:
    return {
        "test_fraction": Float(0.05, 0.5, default=test_default, help="share of all rows held out for the test split"),
        "val_fraction": Float(
            0.05, 0.5, default=val_default, help="share of the remaining rows held out for validation"
        ),
        "split_seed": Int(
            STUDY_SEED,
            2**31 - 1,
            default=STUDY_SEED,
            help="seed of the train/validation/test split, so that studies with other seeds train "
            "and test on the same rows; -1: the study's seed",
        ),
    }


def split_seed(params, seed: int) -> int:
    """The seed of a data set's split: its own `split_seed`, or the study's `seed` where that is -1 (or unset)."""
    own = int(params.get("split_seed", STUDY_SEED))
    return seed if own == STUDY_SEED else own


def holdout(
    indices: np.ndarray, fraction: float, seed: int, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split `indices` into (kept, held out) with a seeded shuffle; stratified by `labels` where every class
    allows it (at least two members, and room for each class in the held-out part), plain otherwise."""
    from sklearn.model_selection import train_test_split

    if labels is not None:
        try:
            kept, held = train_test_split(indices, test_size=fraction, random_state=seed, stratify=labels[indices])
            return np.sort(kept), np.sort(held)
        except ValueError:
            pass  # a class too small to stratify: fall back to a plain split
    try:
        kept, held = train_test_split(indices, test_size=fraction, random_state=seed)
    except ValueError as exc:
        raise ValueError(f"{len(indices)} rows are too few to hold out {fraction:g} of them: {exc}") from None
    return np.sort(kept), np.sort(held)


def three_way_split(
    n: int, test_fraction: float, val_fraction: float, seed: int, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint seeded (train, val, test) indices: the test share of all rows, then the validation share of the rest."""
    rest, test = holdout(np.arange(n), test_fraction, seed, labels)
    train, val = holdout(rest, val_fraction, seed, labels)
    return train, val, test


def split_rows(
    params, n: int, seed: int, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A data set's (train, val, test) indices of its `n` rows: its `test_fraction` and `val_fraction`, seeded by
    its `split_seed` (see split_seed), stratified by `labels` where given."""
    return three_way_split(n, params["test_fraction"], params["val_fraction"], split_seed(params, seed), labels)


def standardise(train: np.ndarray, *others: np.ndarray, axes: tuple[int, ...] = (0,)) -> list[np.ndarray]:
    """Each feature (or channel: statistics over `axes`) centred and scaled with the training split's mean and
    std only; a constant feature is only centred. Returns float32 arrays: train first, then `others`."""
    train = np.asarray(train, dtype=np.float64)
    mean = train.mean(axis=axes, keepdims=True)
    std = train.std(axis=axes, keepdims=True)
    std = np.where(std > 1e-12, std, 1.0)
    return [((np.asarray(a, dtype=np.float64) - mean) / std).astype(np.float32) for a in (train, *others)]


def scale_targets(train: np.ndarray, *others: np.ndarray) -> tuple[list[np.ndarray], float]:
    """Regression targets (N, outputs) centred per output with the training mean and divided by one scale,
    the training targets' std (pooled over outputs), so errors times the scale are in the original units."""
    train = np.asarray(train, dtype=np.float64)
    mean = train.mean(axis=0, keepdims=True)
    scale = float(np.sqrt(((train - mean) ** 2).mean()))
    if not np.isfinite(scale) or scale < 1e-12:
        scale = 1.0
    scaled = [((np.asarray(a, dtype=np.float64) - mean) / scale).astype(np.float32) for a in (train, *others)]
    return scaled, scale


def is_numeric(values) -> bool:
    import pandas as pd

    if isinstance(values, pd.Series):
        return bool(pd.api.types.is_numeric_dtype(values))
    return np.asarray(values).dtype.kind in "biuf"


def infer_task(values, requested: str, what: str) -> str:
    """The task for a 1-D target (missing values already dropped): `requested`, or inferred for "auto".
    Raises ValueError when the target cannot serve the task."""
    numeric = is_numeric(values)
    values = np.asarray(values, dtype=np.float64 if numeric else None)
    if len(values) == 0:
        raise ValueError(f"{what} has no values")
    if requested == "regression" and not numeric:
        example = next(iter(values))
        raise ValueError(
            f"{what} is not numeric (e.g. {example!r}), so it cannot be a regression target; set task: classification"
        )
    if requested == "auto":
        if not numeric:
            requested = "classification"
        else:
            as_float = values.astype(np.float64)
            integral = bool(np.all(np.isfinite(as_float)) and np.all(as_float == np.round(as_float)))
            requested = "classification" if integral and len(np.unique(as_float)) <= MAX_AUTO_CLASSES else "regression"
    if requested == "classification":
        labels = np.unique(values if numeric else values.astype(str))
        if len(labels) < 2:
            raise ValueError(
                f"{what} has a single value ({labels[0].item()!r}): classification needs two classes or more"
            )
    return requested


def class_indices(values) -> tuple[np.ndarray, np.ndarray]:
    """(sorted labels, int64 index of each value's label): numeric labels sort by value, others as text."""
    numeric = is_numeric(values)
    values = np.asarray(values, dtype=np.float64) if numeric else np.asarray(values).astype(str)
    classes, indices = np.unique(values, return_inverse=True)
    return classes, indices.astype(np.int64).reshape(-1)


def required_path(params, what: str) -> Path:
    raw = params.get("path") or ""
    if not raw:
        raise ValueError(f"`path` is required: the {what} file to read (relative to the study file)")
    path = Path(raw).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a {what} file")
    return path
