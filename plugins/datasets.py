"""Built-in data sets, generated or shipped offline (nothing is downloaded), and the user's own CSV or .npz files."""

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from orchestrator import Choice, DataBundle, Dataset, Float, Int, Text, hookimpl


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

# ---------------------------------------------------------------------------------------------------------
# Tabular and user data: shared helpers
# ---------------------------------------------------------------------------------------------------------

MAX_AUTO_CLASSES = 20  # task "auto": an integer-valued target with at most this many values is classification
TASK_CHOICE_HELP = ("classification, regression, or auto: a non-numeric target, or an integer one with at most "
                    f"{MAX_AUTO_CLASSES} distinct values, is classification; anything else regression")
# The `task` parameter of every data set that reads a user's file (see infer_task).
TASK_PARAM = Choice(("auto", "classification", "regression"), default="auto", help=TASK_CHOICE_HELP)


def fraction_params(test_default: float = 0.2, val_default: float = 0.2) -> dict:
    return {
        "test_fraction": Float(0.05, 0.5, default=test_default, help="share of all rows held out for the test split"),
        "val_fraction": Float(0.05, 0.5, default=val_default,
                              help="share of the remaining rows held out for validation"),
    }


def holdout(indices: np.ndarray, fraction: float, seed: int,
            labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
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


def three_way_split(n: int, test_fraction: float, val_fraction: float, seed: int,
                    labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint seeded (train, val, test) indices: the test share of all rows, then the validation share of the rest."""
    rest, test = holdout(np.arange(n), test_fraction, seed, labels)
    train, val = holdout(rest, val_fraction, seed, labels)
    return train, val, test


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


def _is_numeric(values) -> bool:
    import pandas as pd

    if isinstance(values, pd.Series):
        return bool(pd.api.types.is_numeric_dtype(values))
    return np.asarray(values).dtype.kind in "biuf"


def infer_task(values, requested: str, what: str) -> str:
    """The task for a 1-D target (missing values already dropped): `requested`, or inferred for "auto".
    Raises ValueError when the target cannot serve the task."""
    numeric = _is_numeric(values)
    values = np.asarray(values, dtype=np.float64 if numeric else None)
    if len(values) == 0:
        raise ValueError(f"{what} has no values")
    if requested == "regression" and not numeric:
        example = next(iter(values))
        raise ValueError(f"{what} is not numeric (e.g. {example!r}), so it cannot be a regression target; "
                         "set task: classification")
    if requested == "auto":
        if not numeric:
            requested = "classification"
        else:
            as_float = values.astype(np.float64)
            integral = bool(np.all(np.isfinite(as_float)) and np.all(as_float == np.round(as_float)))
            requested = ("classification" if integral and len(np.unique(as_float)) <= MAX_AUTO_CLASSES
                         else "regression")
    if requested == "classification":
        labels = np.unique(values if numeric else values.astype(str))
        if len(labels) < 2:
            raise ValueError(f"{what} has a single value ({labels[0]!r}): classification needs two classes or more")
    return requested


def class_indices(values) -> tuple[np.ndarray, np.ndarray]:
    """(sorted labels, int64 index of each value's label): numeric labels sort by value, others as text."""
    numeric = _is_numeric(values)
    values = np.asarray(values, dtype=np.float64) if numeric else np.asarray(values).astype(str)
    classes, indices = np.unique(values, return_inverse=True)
    return classes, indices.astype(np.int64).reshape(-1)


def _required_path(params, what: str) -> Path:
    raw = params.get("path") or ""
    if not raw:
        raise ValueError(f"`path` is required: the {what} file to read (relative to the study file)")
    path = Path(raw).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a {what} file")
    return path


# ---------------------------------------------------------------------------------------------------------
# diabetes
# ---------------------------------------------------------------------------------------------------------


def build_diabetes(params, seed: int) -> DataBundle:
    """scikit-learn's diabetes (442 patients, 10 features, disease progression after a year): seeded test
    split, then validation; features and the target standardised with the training split."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    train, val, test = three_way_split(len(x), params["test_fraction"], params["val_fraction"], seed)
    xs = standardise(x[train], x[val], x[test])
    ys, scale = scale_targets(y[train, None], y[val, None], y[test, None])
    tensors = [torch.as_tensor(a) for pair in zip(xs, ys) for a in pair]
    return DataBundle(*tensors, input_kind="vector", task="regression", output_size=1, target_scale=scale)


# ---------------------------------------------------------------------------------------------------------
# csv: the user's own table
# ---------------------------------------------------------------------------------------------------------


def read_csv(params, **options):
    """The CSV file of `params` as a DataFrame; unreadable files raise OSError or ValueError saying why."""
    import pandas as pd

    path = _required_path(params, "CSV")
    delimiter = params.get("delimiter", ",")
    if not delimiter:
        raise ValueError("`delimiter` is empty: give the character between columns, e.g. ',' or ';'")
    engine = "python" if len(delimiter) > 1 else "c"
    try:
        return pd.read_csv(path, sep=delimiter, engine=engine, skipinitialspace=True, **options)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty: a CSV file needs a header row and data rows") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except pd.errors.ParserError as exc:
        raise ValueError(f"{path} cannot be read as CSV with delimiter {delimiter!r}: {exc}") from None


def csv_target(columns, params) -> str:
    """The target column's name (`target`, or the last column), checked against the file's columns."""
    columns = [str(c) for c in columns]
    target = params.get("target") or columns[-1]
    hint = ""
    if len(columns) == 1:
        hint = f" (a single column: is the delimiter {params.get('delimiter', ',')!r} the file's?)"
    if target not in columns:
        raise ValueError(f"target column {target!r} is not in {params['path']}; its columns are: "
                         + ", ".join(repr(c) for c in columns) + hint)
    if len(columns) < 2:
        raise ValueError(f"{params['path']} has only the target column {target!r}, no feature columns{hint}")
    return target


def probe_csv(params):
    """(task, "vector") from the CSV's header and target column."""
    header = read_csv(params, nrows=0).columns
    target = csv_target(header, params)
    values = read_csv(params, usecols=[target])[target].dropna()
    return infer_task(values, params["task"], f"target column {target!r}"), "vector"


def encode_features(frame, train: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Feature columns as one float matrix, all statistics from the `train` rows only.

    Numeric columns: missing values filled with the training mean, then standardised with the training
    mean and std. Other columns: one-hot over the categories seen in training (sorted); a missing or
    unseen category is all zeros. Returns the matrix (rows as in `frame`) and its column names.
    """
    import pandas as pd

    blocks, names = [], []
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series):
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            known = values[train][~np.isnan(values[train])]
            mean = float(known.mean()) if len(known) else 0.0
            std = float(known.std()) if len(known) else 1.0
            std = std if std > 1e-12 else 1.0
            filled = np.where(np.isnan(values), mean, values)
            blocks.append(((filled - mean) / std)[:, None])
            names.append(str(column))
        else:
            present = series.notna().to_numpy()
            text = series.astype(str).to_numpy(dtype=object)
            categories = sorted(set(text[train][present[train]]))
            if categories:
                blocks.append(((text[:, None] == np.array(categories, dtype=object)[None, :])
                               & present[:, None]).astype(np.float64))
                names.extend(f"{column}={category}" for category in categories)
    matrix = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(frame), 0))
    return matrix, names


def build_csv(params, seed: int) -> DataBundle:
    """A table: one target column, the rest features (rows without a target are dropped)."""
    frame = read_csv(params)
    target = csv_target(frame.columns, params)
    frame = frame[frame[target].notna()].reset_index(drop=True)
    task = infer_task(frame[target], params["task"], f"target column {target!r}")
    if task == "classification":
        classes, y = class_indices(frame[target].to_numpy())
        output_size, labels = len(classes), y
    else:
        y = frame[target].to_numpy(dtype=np.float64)[:, None]
        output_size, labels = 1, None
    train, val, test = three_way_split(len(frame), params["test_fraction"], params["val_fraction"], seed, labels)
    x, names = encode_features(frame.drop(columns=[target]), train)
    if x.shape[1] == 0:
        raise ValueError(f"the feature columns of {params['path']} have no values in the training split")
    xs = [torch.as_tensor(x[idx].astype(np.float32)) for idx in (train, val, test)]
    if task == "classification":
        ys, scale = [torch.as_tensor(y[idx]) for idx in (train, val, test)], 1.0
    else:
        scaled, scale = scale_targets(y[train], y[val], y[test])
        ys = [torch.as_tensor(a) for a in scaled]
    return DataBundle(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], input_kind="vector", task=task,
                      output_size=output_size, target_scale=scale)


# ---------------------------------------------------------------------------------------------------------
# npz: the user's own arrays
# ---------------------------------------------------------------------------------------------------------

NPZ_INPUT_KINDS = {2: "vector", 3: "sequence", 4: "image"}
# Statistics for standardisation: per feature (vector), per channel (sequence (N, L, C), image (N, C, H, W)).
NPZ_AXES = {"vector": (0,), "sequence": (0, 1), "image": (0, 2, 3)}


def open_npz(params):
    """The .npz archive of `params` (never unpickling anything) and its key names (x, y, optional splits)."""
    import pickle
    import zipfile

    path = _required_path(params, ".npz")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, pickle.UnpicklingError):  # neither a zip nor an .npy: numpy would have to unpickle it
        raise ValueError(f"{path} is not an .npz archive of arrays (as written by numpy.savez)") from None
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path} is not a readable .npz archive (as written by numpy.savez): {exc}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} holds one array (.npy), not an .npz archive of named arrays (numpy.savez)")
    x_key, y_key = params.get("x") or "x", params.get("y") or "y"
    keys = set(archive.files)
    missing = [k for k in (x_key, y_key) if k not in keys]
    if missing:
        archive.close()
        raise ValueError(f"{path} has no array named {' or '.join(repr(k) for k in missing)}; its arrays are: "
                         + (", ".join(repr(k) for k in archive.files) or "none"))
    splits = {}
    for split in ("val", "test"):
        pair = (f"{x_key}_{split}", f"{y_key}_{split}")
        present = [k for k in pair if k in keys]
        if len(present) == 1:
            archive.close()
            raise ValueError(f"{path} has {present[0]!r} but not {(set(pair) - set(present)).pop()!r}: "
                             f"a presplit {split} split needs both")
        if present:
            splits[split] = pair
    return archive, path, (x_key, y_key), splits


def _npz_array(archive, key: str, path) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:
        raise ValueError(f"array {key!r} in {path} cannot be read without unpickling (object arrays are not "
                         f"allowed; save numbers or fixed-width strings): {exc}") from None


def _npz_shape(archive, key: str, path) -> tuple[tuple[int, ...], np.dtype]:
    """An array's shape and dtype from its header only, without reading the data (read it where that fails)."""
    try:
        with archive.zip.open(f"{key}.npy") as member:
            version = np.lib.format.read_magic(member)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(member)
            return tuple(shape), dtype
    except Exception:  # noqa: BLE001 - an unusual member layout: read the array itself
        array = _npz_array(archive, key, path)
        return array.shape, array.dtype


def _check_npz_x(shape, dtype, key: str, path) -> str:
    if dtype.kind not in "biuf":
        raise ValueError(f"array {key!r} in {path} holds {'Python objects' if dtype.kind == 'O' else dtype} "
                         "values: inputs must be numbers")
    if len(shape) not in NPZ_INPUT_KINDS:
        raise ValueError(f"array {key!r} in {path} has shape {shape}: inputs must be 2-D (N, features), "
                         "3-D sequences (N, length, channels) or 4-D images (N, channels, height, width)")
    return NPZ_INPUT_KINDS[len(shape)]


def _npz_targets(y: np.ndarray, key: str, path) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim not in (1, 2):
        raise ValueError(f"array {key!r} in {path} has shape {y.shape}: targets must be (N,) or (N, outputs)")
    if _is_numeric(y) and not np.all(np.isfinite(y.astype(np.float64))):
        raise ValueError(f"array {key!r} in {path} has missing (NaN) or infinite targets")
    return y


def _npz_task(ys: list[np.ndarray], requested: str, key: str) -> str:
    joined = np.concatenate(ys)
    if joined.ndim == 2:  # several outputs per sample
        if requested == "classification":
            raise ValueError(f"targets {key!r} have {joined.shape[1]} columns: classification needs one class "
                             "label per sample (N,)")
        return infer_task(joined.reshape(-1), "regression", f"targets {key!r}")
    return infer_task(joined, requested, f"targets {key!r}")


def _npz_load(params):
    """Every array the data set uses, checked: {split or "pool": (x, y)}, the input kind and the task."""
    archive, path, (x_key, y_key), splits = open_npz(params)
    with archive:
        parts = {"pool": (x_key, y_key), **splits}
        arrays = {}
        for part, (xk, yk) in parts.items():
            x = _npz_array(archive, xk, path)
            input_kind = _check_npz_x(x.shape, x.dtype, xk, path)
            y = _npz_targets(_npz_array(archive, yk, path), yk, path)
            if len(x) != len(y):
                raise ValueError(f"{path}: {xk!r} has {len(x)} samples but {yk!r} has {len(y)}")
            arrays[part] = (x, y)
    _check_npz_parts(arrays, parts, path)
    task = _npz_task([y for _, y in arrays.values()], params["task"], y_key)
    return arrays, input_kind, task


def _check_npz_parts(arrays, parts, path) -> None:
    x_shape, y_shape = arrays["pool"][0].shape[1:], arrays["pool"][1].shape[1:]
    for part, (x, y) in arrays.items():
        if x.shape[1:] != x_shape or y.shape[1:] != y_shape:
            raise ValueError(f"{path}: {parts[part][0]!r}/{parts[part][1]!r} have sample shapes {x.shape[1:]}/"
                             f"{y.shape[1:]}, unlike {parts['pool'][0]!r}/{parts['pool'][1]!r} "
                             f"({x_shape}/{y_shape})")


def probe_npz(params):
    """(task, input kind) from the archive: x's header gives the kind, y's values the task."""
    archive, path, (x_key, y_key), splits = open_npz(params)
    with archive:
        shape, dtype = _npz_shape(archive, x_key, path)
        input_kind = _check_npz_x(shape, dtype, x_key, path)
        ys = []
        for xk, yk in [(x_key, y_key), *splits.values()]:
            y = _npz_targets(_npz_array(archive, yk, path), yk, path)
            x_shape, x_dtype = _npz_shape(archive, xk, path) if xk != x_key else (shape, dtype)
            _check_npz_x(x_shape, x_dtype, xk, path)
            if x_shape[0] != len(y):
                raise ValueError(f"{path}: {xk!r} has {x_shape[0]} samples but {yk!r} has {len(y)}")
            if x_shape[1:] != shape[1:] or y.shape[1:] != (ys[0].shape[1:] if ys else y.shape[1:]):
                raise ValueError(f"{path}: {xk!r}/{yk!r} have sample shapes {x_shape[1:]}/{y.shape[1:]}, unlike "
                                 f"{x_key!r}/{y_key!r}")
            ys.append(y)
    return _npz_task(ys, params["task"], y_key), input_kind


def build_npz(params, seed: int) -> DataBundle:
    """Arrays x (N, ...) and y: presplit `<x>_test`/`<y>_test` and `<x>_val`/`<y>_val` are used as they are,
    the splits not given are held out of x/y (seeded, stratified for classification where possible)."""
    arrays, input_kind, task = _npz_load(params)
    x_pool, y_pool = arrays["pool"]
    if task == "classification":
        classes, indices = class_indices(np.concatenate([y for _, y in arrays.values()]))
        offsets = np.cumsum([0] + [len(y) for _, y in arrays.values()])
        labels = {part: indices[offsets[i]:offsets[i + 1]] for i, part in enumerate(arrays)}
        output_size = len(classes)
    else:
        labels = {part: y.reshape(len(y), -1).astype(np.float64) for part, (_, y) in arrays.items()}
        output_size = labels["pool"].shape[1]
    strata = labels["pool"] if task == "classification" else None
    rest = np.arange(len(x_pool))
    if "test" not in arrays:
        rest, test = holdout(rest, params["test_fraction"], seed, strata)
        arrays["test"], labels["test"] = (x_pool[test], None), labels["pool"][test]
    if "val" not in arrays:
        rest, val = holdout(rest, params["val_fraction"], seed, strata)
        arrays["val"], labels["val"] = (x_pool[val], None), labels["pool"][val]
    arrays["train"], labels["train"] = (x_pool[rest], None), labels["pool"][rest]
    order = ("train", "val", "test")
    xs = standardise(*(arrays[part][0] for part in order), axes=NPZ_AXES[input_kind])
    if task == "classification":
        ys, scale = [labels[part] for part in order], 1.0
    else:
        ys, scale = scale_targets(*(labels[part] for part in order))
    tensors = [torch.as_tensor(a) for pair in zip(xs, ys) for a in pair]
    return DataBundle(*tensors, input_kind=input_kind, task=task, output_size=output_size, target_scale=scale)


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
    register(Dataset(
        "diabetes", "scikit-learn's diabetes: 442 patients, 10 features, regression of disease progression.",
        params=fraction_params(),
        build=build_diabetes, input_kind="vector", tasks=("regression",)))
    register(Dataset(
        "csv", "Your own table: a CSV file with a header row; one column is the target, the others features "
               "(numeric ones standardised, text ones one-hot encoded).",
        params={
            "path": Text("", help="the CSV file (relative to the study file)", is_path=True),
            "target": Text("", help="the target column (default: the last column)"),
            "task": TASK_PARAM,
            "delimiter": Text(",", help="the character between columns"),
            **fraction_params(),
        },
        build=build_csv, input_kind="vector", tasks=("classification", "regression"), probe=probe_csv))
    register(Dataset(
        "npz", "Your own arrays: an .npz file (numpy.savez) with inputs x (N, features), (N, length, channels) "
               "or (N, channels, height, width) and targets y; x_test/y_test and x_val/y_val are used if present.",
        params={
            "path": Text("", help="the .npz file (relative to the study file)", is_path=True),
            "x": Text("x", help="the inputs' array name (presplit: <x>_val, <x>_test)"),
            "y": Text("y", help="the targets' array name (presplit: <y>_val, <y>_test)"),
            "task": TASK_PARAM,
            **fraction_params(),
        },
        build=build_npz, input_kind="vector", tasks=("classification", "regression"), probe=probe_npz))
