"""The user's own data: a CSV table (`csv`) or numpy arrays (`npz`), read, checked and split; a table's encoder
goes with the best model so that raw rows can be scored."""

import numpy as np

from orchestrator import DataBundle

from .splits import (
    bundle_of_splits,
    class_indices,
    holdout,
    infer_task,
    is_numeric,
    required_path,
    scale_targets,
    split_rows,
    split_seed,
    standardise,
)
from .table_encoding import DEFAULT_MAX_CATEGORIES, TableEncoder, column_kinds, quoted

# ---------------------------------------------------------------------------------------------------------
# csv: the user's own table
# ---------------------------------------------------------------------------------------------------------


def read_csv(params, **options):
    """The CSV file of `params` as a DataFrame; unreadable files raise OSError or ValueError saying why."""
    import pandas as pd

    path = required_path(params, "CSV")
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
        raise ValueError(
            f"target column {target!r} is not in {params['path']}; its columns are: "
            + ", ".join(repr(c) for c in columns)
            + hint
        )
    if len(columns) < 2:
        raise ValueError(f"{params['path']} has only the target column {target!r}, no feature columns{hint}")
    return target


def probe_csv(params):
    """(task, "vector") from the CSV's header and target column."""
    header = read_csv(params, nrows=0).columns
    target = csv_target(header, params)
    features = [str(c) for c in header if str(c) != target]
    column_kinds(params.get("encode", ""), features, ignored_columns(params, features))
    values = read_csv(params, usecols=[target])[target].dropna()
    return infer_task(values, params["task"], f"target column {target!r}"), "vector"


def ignored_columns(params, features: list[str]) -> tuple[str, ...]:
    """The feature columns `ignore` names (comma-separated), each checked to be one of `features`."""
    names = tuple(name.strip() for name in (params.get("ignore") or "").split(",") if name.strip())
    unknown = [name for name in names if name not in features]
    if unknown:
        raise ValueError(
            f"`ignore` names no feature column {quoted(unknown)}; the feature columns are: "
            + ", ".join(repr(c) for c in features)
        )
    return names


def _labels(values) -> tuple:
    """Class labels as the CSV wrote them: text, or numbers (whole numbers as int)."""
    labels = []
    for value in values:
        value = value.item() if isinstance(value, np.generic) else value
        labels.append(int(value) if isinstance(value, float) and value.is_integer() else value)
    return tuple(labels)


def _csv_table(params, seed: int):
    """The table with a target, its target, task, the three splits and the fitted encoder; and the count of
    rows dropped for a missing target."""
    frame = read_csv(params)
    target = csv_target(frame.columns, params)
    keep = frame[target].notna().to_numpy()
    dropped = int((~keep).sum())
    frame = frame[keep].reset_index(drop=True)
    task = infer_task(frame[target], params["task"], f"target column {target!r}")
    classes, labels = class_indices(frame[target].to_numpy()) if task == "classification" else (None, None)
    train, val, test = split_rows(params, len(frame), seed, labels)
    features = frame.drop(columns=[target])
    names = [str(c) for c in features.columns]
    ignored = ignored_columns(params, names)
    encoder = TableEncoder.fit(
        features,
        train,
        ignored,
        column_kinds(params.get("encode", ""), names, ignored),
        int(params.get("max_categories", DEFAULT_MAX_CATEGORIES)),
    )
    if encoder.width() == 0:
        raise ValueError(f"the feature columns of {params['path']} have no values in the training split")
    return frame, target, task, classes, labels, (train, val, test), encoder, dropped


def build_csv(params, seed: int) -> DataBundle:
    """A table: one target column, the rest features (see TableEncoder; rows without a target are dropped)."""
    import torch

    frame, target, task, classes, labels, splits, encoder, _ = _csv_table(params, seed)
    x = encoder.transform(frame.drop(columns=[target]))
    xs = [torch.as_tensor(x[idx]) for idx in splits]
    if task == "classification":
        ys, scale, offset = [torch.as_tensor(labels[idx]) for idx in splits], 1.0, None
        output_size = len(classes)
    else:
        y = frame[target].to_numpy(dtype=np.float64)[:, None]
        scaled, scale = scale_targets(*(y[idx] for idx in splits))
        ys, offset, output_size = [torch.as_tensor(a) for a in scaled], tuple(y[splits[0]].mean(axis=0)), 1
    return bundle_of_splits(
        xs,
        ys,
        input_kind="vector",
        task=task,
        output_size=output_size,
        target_scale=scale,
        encoder=encoder,
        classes=_labels(classes) if classes is not None else None,
        target_offset=offset,
    )


def describe_csv(params, seed: int) -> list[str]:
    """What the encoding will do to the table, for `automl validate`."""
    frame, target, task, classes, _, splits, encoder, dropped = _csv_table(params, seed)
    kind = f"{len(classes)} classes: {quoted(_labels(classes))}" if task == "classification" else "regression"
    lines = [
        f"{params['path']}: {len(frame) + dropped} rows; target {target!r} ({kind}); rows for training, "
        f"validation, test: {', '.join(str(len(s)) for s in splits)}"
    ]
    if dropped:
        lines.append(f"{dropped} row(s) without a value in {target!r} dropped")
    return lines + encoder.describe()


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

    path = required_path(params, ".npz")
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
        raise ValueError(
            f"{path} has no array named {' or '.join(repr(k) for k in missing)}; its arrays are: "
            + (", ".join(repr(k) for k in archive.files) or "none")
        )
    splits = {}
    for split in ("val", "test"):
        pair = (f"{x_key}_{split}", f"{y_key}_{split}")
        present = [k for k in pair if k in keys]
        if len(present) == 1:
            archive.close()
            raise ValueError(
                f"{path} has {present[0]!r} but not {(set(pair) - set(present)).pop()!r}: "
                f"a presplit {split} split needs both"
            )
        if present:
            splits[split] = pair
    return archive, path, (x_key, y_key), splits


def _npz_array(archive, key: str, path) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:
        raise ValueError(
            f"array {key!r} in {path} cannot be read without unpickling (object arrays are not "
            f"allowed; save numbers or fixed-width strings): {exc}"
        ) from None


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
        raise ValueError(
            f"array {key!r} in {path} holds {'Python objects' if dtype.kind == 'O' else dtype} "
            "values: inputs must be numbers"
        )
    if len(shape) not in NPZ_INPUT_KINDS:
        raise ValueError(
            f"array {key!r} in {path} has shape {shape}: inputs must be 2-D (N, features), "
            "3-D sequences (N, length, channels) or 4-D images (N, channels, height, width)"
        )
    return NPZ_INPUT_KINDS[len(shape)]


def _npz_targets(y: np.ndarray, key: str, path) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim not in (1, 2):
        raise ValueError(f"array {key!r} in {path} has shape {y.shape}: targets must be (N,) or (N, outputs)")
    if is_numeric(y) and not np.all(np.isfinite(y.astype(np.float64))):
        raise ValueError(f"array {key!r} in {path} has missing (NaN) or infinite targets")
    return y


def _npz_task(ys: list[np.ndarray], requested: str, key: str) -> str:
    joined = np.concatenate(ys)
    if joined.ndim == 2:  # several outputs per sample
        if requested == "classification":
            raise ValueError(
                f"targets {key!r} have {joined.shape[1]} columns: classification needs one class label per sample (N,)"
            )
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
            raise ValueError(
                f"{path}: {parts[part][0]!r}/{parts[part][1]!r} have sample shapes {x.shape[1:]}/"
                f"{y.shape[1:]}, unlike {parts['pool'][0]!r}/{parts['pool'][1]!r} "
                f"({x_shape}/{y_shape})"
            )


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
                raise ValueError(
                    f"{path}: {xk!r}/{yk!r} have sample shapes {x_shape[1:]}/{y.shape[1:]}, unlike {x_key!r}/{y_key!r}"
                )
            ys.append(y)
    return _npz_task(ys, params["task"], y_key), input_kind


def build_npz(params, seed: int) -> DataBundle:
    """Arrays x (N, ...) and y: presplit `<x>_test`/`<y>_test` and `<x>_val`/`<y>_val` are used as they are,
    the splits not given are held out of x/y (seeded, stratified for classification where possible)."""
    import torch

    arrays, input_kind, task = _npz_load(params)
    x_pool, y_pool = arrays["pool"]
    if task == "classification":
        classes, indices = class_indices(np.concatenate([y for _, y in arrays.values()]))
        offsets = np.cumsum([0] + [len(y) for _, y in arrays.values()])
        labels = {part: indices[offsets[i] : offsets[i + 1]] for i, part in enumerate(arrays)}
        output_size = len(classes)
    else:
        labels = {part: y.reshape(len(y), -1).astype(np.float64) for part, (_, y) in arrays.items()}
        output_size = labels["pool"].shape[1]
    strata = labels["pool"] if task == "classification" else None
    rest = np.arange(len(x_pool))
    if "test" not in arrays:
        rest, test = holdout(rest, params["test_fraction"], split_seed(params, seed), strata)
        arrays["test"], labels["test"] = (x_pool[test], None), labels["pool"][test]
    if "val" not in arrays:
        rest, val = holdout(rest, params["val_fraction"], split_seed(params, seed), strata)
        arrays["val"], labels["val"] = (x_pool[val], None), labels["pool"][val]
    arrays["train"], labels["train"] = (x_pool[rest], None), labels["pool"][rest]
    order = ("train", "val", "test")
    xs = standardise(*(arrays[part][0] for part in order), axes=NPZ_AXES[input_kind])
    if task == "classification":
        ys, scale = [labels[part] for part in order], 1.0
    else:
        ys, scale = scale_targets(*(labels[part] for part in order))
    return bundle_of_splits(
        [torch.as_tensor(a) for a in xs],
        [torch.as_tensor(a) for a in ys],
        input_kind=input_kind,
        task=task,
        output_size=output_size,
        target_scale=scale,
    )
