"""The user's own data: a CSV table (`csv`) or numpy arrays (`npz`), read, checked and split; a table's encoder
goes with the best model so that raw rows can be scored."""

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from orchestrator import DataBundle

from .splits import class_indices, holdout, infer_task, is_numeric, required_path, scale_targets, split_rows, \
    split_seed, standardise


# ---------------------------------------------------------------------------------------------------------
# csv: the user's own table
# ---------------------------------------------------------------------------------------------------------

ID_MIN_ROWS = 20  # a column can look like an identifier only in a table of at least this many training rows
MAX_NUMBER_TOKENS = 3  # a text column of numbers but for at most this many distinct tokens ("?", "-") is numeric


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
        raise ValueError(f"target column {target!r} is not in {params['path']}; its columns are: "
                         + ", ".join(repr(c) for c in columns) + hint)
    if len(columns) < 2:
        raise ValueError(f"{params['path']} has only the target column {target!r}, no feature columns{hint}")
    return target


def probe_csv(params):
    """(task, "vector") from the CSV's header and target column."""
    header = read_csv(params, nrows=0).columns
    target = csv_target(header, params)
    ignored_columns(params, [str(c) for c in header if str(c) != target])
    values = read_csv(params, usecols=[target])[target].dropna()
    return infer_task(values, params["task"], f"target column {target!r}"), "vector"


def ignored_columns(params, features: list[str]) -> tuple[str, ...]:
    """The feature columns `ignore` names (comma-separated), each checked to be one of `features`."""
    names = tuple(name.strip() for name in (params.get("ignore") or "").split(",") if name.strip())
    unknown = [name for name in names if name not in features]
    if unknown:
        raise ValueError(f"`ignore` names no feature column {_quoted(unknown)}; the feature columns are: "
                         + ", ".join(repr(c) for c in features))
    return names


def _text(series) -> np.ndarray:
    """A column's values as stripped text (object array); missing values stay None."""
    import pandas as pd

    values = pd.Series(series, dtype=object).reset_index(drop=True)
    present = values.notna().to_numpy()
    text = np.full(len(values), None, dtype=object)
    text[present] = values[present].astype(str).str.strip().to_numpy()
    return text


def _numbers(series) -> np.ndarray:
    """A column's values as floats: anything that is not a number (missing, "?", "n/a") is NaN."""
    return _text_numbers(_text(series))


def _text_numbers(text: np.ndarray) -> np.ndarray:
    import pandas as pd

    return pd.to_numeric(pd.Series(text, dtype=object), errors="coerce").to_numpy(dtype=np.float64)


def _quoted(values, limit: int = 6) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


@dataclass(frozen=True)
class ColumnCode:
    """How one feature column becomes model inputs, fitted on the training rows: `number` (missing values filled
    with the mean, then standardised; `tokens` are non-numeric values read as missing), `category` (one-hot over
    `categories`; a missing or unseen value is all zeros) or `left out` (`why` says why; for a number, `why` is a
    warning)."""

    name: str
    kind: str
    mean: float = 0.0
    std: float = 1.0
    categories: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()
    token_rows: int = 0
    missing_rows: int = 0
    why: str = ""

    def encode(self, series) -> np.ndarray:
        """The column's block of the input matrix, (rows, width)."""
        if self.kind == "number":
            values = _numbers(series)
            return ((np.where(np.isnan(values), self.mean, values) - self.mean) / self.std)[:, None]
        if self.kind == "category":
            text = _text(series)
            return (text[:, None] == np.array(self.categories, dtype=object)[None, :]).astype(np.float64)
        return np.zeros((len(series), 0))

    def describe(self) -> str:
        missing = f"; {self.missing_rows} training row(s) missing" if self.missing_rows else ""
        if self.kind == "number":
            tokens = (f"; the token(s) {_quoted(self.tokens)} ({self.token_rows} training row(s)) read as missing"
                      if self.tokens else "")
            warning = f"; warning: {self.why}" if self.why else ""
            return f"{self.name!r}: number{tokens}{missing}{warning}"
        if self.kind == "category":
            return f"{self.name!r}: one-hot, {len(self.categories)} categories ({_quoted(self.categories)}){missing}"
        return f"{self.name!r}: left out: {self.why}"


def fit_column(name: str, series, train: np.ndarray, ignored: bool = False) -> ColumnCode:
    """Decide how a column is encoded, from its training rows only."""
    import pandas as pd

    if ignored:
        return ColumnCode(name, "left out", why="named in `ignore`")
    all_text = _text(series)
    all_numbers = _text_numbers(all_text)  # every row parsed once; the statistics take the training rows
    text, numbers = all_text[train], all_numbers[train]
    present = text[text != None]  # noqa: E711 - elementwise comparison on an object array
    missing = len(text) - len(present)
    known = numbers[~np.isnan(numbers)]
    tokens = sorted({t for t, n in zip(text, numbers) if t is not None and np.isnan(n)})
    numeric = pd.api.types.is_numeric_dtype(series) or (
        len(known) > 0 and len(tokens) <= MAX_NUMBER_TOKENS and len(known) >= len(present) / 2)
    if numeric:
        ordered = all_numbers[np.sort(train)]
        row_number = (len(known) >= ID_MIN_ROWS and len(np.unique(known)) == len(known)
                      and np.all(known == np.round(known)) and bool(np.all(np.diff(ordered) > 0)))
        std = float(known.std()) if len(known) else 1.0
        token_rows = sum(t in tokens for t in text)
        return ColumnCode(name, "number", mean=float(known.mean()) if len(known) else 0.0,
                          std=std if std > 1e-12 else 1.0, tokens=tuple(tokens), token_rows=token_rows,
                          missing_rows=missing,
                          why="looks like a row number (whole numbers, all distinct, increasing row by row); if it "
                              "is one, leave it out with `ignore`" if row_number else "")
    if len(present) >= ID_MIN_ROWS and len(set(present)) == len(present):
        return ColumnCode(name, "left out", why=f"looks like an identifier (all {len(present)} training values are "
                                                "distinct text: one-hot columns no other row shares)")
    return ColumnCode(name, "category", categories=tuple(sorted(set(present))), missing_rows=missing)


@dataclass(frozen=True)
class TableEncoder:
    """The feature columns of a table as one float matrix, every statistic from the training rows only. It goes
    with the best model, so that raw rows (the CSV's columns without the target) can be scored."""

    columns: tuple[ColumnCode, ...]
    example: Any = field(default=None, compare=False)  # a few raw training rows: the model's input example

    @classmethod
    def fit(cls, features, train: np.ndarray, ignore: tuple[str, ...] = ()) -> "TableEncoder":
        """Each column's encoding from the `train` rows; the columns in `ignore` are left out."""
        columns = tuple(fit_column(str(name), features[name], train, str(name) in ignore) for name in features.columns)
        example = features.iloc[np.sort(train)[:5]].reset_index(drop=True)
        for column in example.columns:  # numbers as floats in the model's signature: a served row may miss one
            if example[column].dtype.kind in "biu":
                example[column] = example[column].astype(np.float64)
        return cls(columns, example=example)

    def transform(self, frame) -> np.ndarray:
        """Raw rows (a DataFrame with the feature columns; extra columns are ignored) as float32 inputs."""
        absent = [c.name for c in self.columns if c.kind != "left out" and c.name not in frame.columns]
        if absent:
            raise ValueError(f"the rows lack the column(s) {_quoted(absent)}; expected: "
                             + ", ".join(repr(c.name) for c in self.columns))
        blocks = [c.encode(frame[c.name]) for c in self.columns if c.kind != "left out"]
        matrix = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(frame), 0))
        return matrix.astype(np.float32)

    def width(self) -> int:
        return sum(1 if c.kind == "number" else len(c.categories) for c in self.columns)

    def describe(self) -> list[str]:
        numbers = sum(c.kind == "number" for c in self.columns)
        one_hot = sum(len(c.categories) for c in self.columns)
        left_out = sum(c.kind == "left out" for c in self.columns)
        return [c.describe() for c in self.columns] + [
            "missing values: numbers take the training mean (then all numbers are standardised with the training "
            "mean and std); a missing or unseen category is all zeros",
            f"inputs: {self.width()} ({numbers} number column(s), {one_hot} one-hot column(s) from "
            f"{sum(c.kind == 'category' for c in self.columns)} text column(s)"
            + (f"; {left_out} column(s) left out" if left_out else "") + ")"]


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
    encoder = TableEncoder.fit(features, train, ignored_columns(params, [str(c) for c in features.columns]))
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
    return DataBundle(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], input_kind="vector", task=task,
                      output_size=output_size, target_scale=scale, encoder=encoder,
                      classes=_labels(classes) if classes is not None else None, target_offset=offset)


def describe_csv(params, seed: int) -> list[str]:
    """What the encoding will do to the table, for `automl validate`."""
    frame, target, task, classes, _, splits, encoder, dropped = _csv_table(params, seed)
    kind = f"{len(classes)} classes: {_quoted(_labels(classes))}" if task == "classification" else "regression"
    lines = [f"{params['path']}: {len(frame) + dropped} rows; target {target!r} ({kind}); rows for training, "
             f"validation, test: {', '.join(str(len(s)) for s in splits)}"]
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
    if is_numeric(y) and not np.all(np.isfinite(y.astype(np.float64))):
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
    import torch

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
    tensors = [torch.as_tensor(a) for pair in zip(xs, ys) for a in pair]
    return DataBundle(*tensors, input_kind=input_kind, task=task, output_size=output_size, target_scale=scale)
