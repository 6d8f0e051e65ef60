"""How a table's feature columns become model inputs (the `csv` data set's encoder), decided column by column
from the training rows only, every decision shown by `automl validate`:

- numbers: missing values take the training mean, then standardised; a few non-numeric tokens ("?", "n/a") read
  as missing;
- dates and times (a format with year, month and day, read from the values): days since 1970, year, month, day
  of the week (and hour where the values have times), each standardised;
- categories: one-hot; past `max_categories` levels, the most frequent are kept and the rest share one "(other)"
  column;
- left out, with the reason: named in `ignore`, constant or empty, an identifier (every value distinct), free
  text (the `text` data set models it).

`encode` (e.g. "zip=category, opened=date") overrides the guess per column."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ID_MIN_ROWS = 20  # a column can look like an identifier only in a table of at least this many training rows
MAX_NUMBER_TOKENS = 3  # a text column of numbers but for at most this many distinct tokens ("?", "-") is numeric
DATE_SHARE = 0.9  # a text column is dates when at least this share of its training values parse with one format
FREE_TEXT_WORDS = 4.0  # ... is free text when its values average at least this many words
FREE_TEXT_DISTINCT = 0.5  # ... and at least this share of them are distinct
DEFAULT_MAX_CATEGORIES = 20
OTHER = "(other)"
KINDS = ("number", "category", "date")  # what `encode` can ask for a column
DATE_PARTS = ("days since 1970", "year", "month", "day of week")
HOUR = "hour"
SECONDS_PER_DAY = 86_400.0


def _text(series) -> np.ndarray:
    """A column's values as stripped text (object array); missing values stay None."""
    import pandas as pd

    values = pd.Series(series, dtype=object).reset_index(drop=True)
    present = values.notna().to_numpy()
    text = np.full(len(values), None, dtype=object)
    text[present] = values[present].astype(str).str.strip().to_numpy()
    return text


def _text_numbers(text: np.ndarray) -> np.ndarray:
    import pandas as pd

    return pd.to_numeric(pd.Series(text, dtype=object), errors="coerce").to_numpy(dtype=np.float64)


def _numbers(series) -> np.ndarray:
    """A column's values as floats: anything that is not a number (missing, "?", "n/a") is NaN."""
    return _text_numbers(_text(series))


def quoted(values, limit: int = 6) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def date_format(example: str, dayfirst: bool = False) -> str:
    """The strftime format of a date (or date and time) with year, month and day, guessed from one value (day or
    month first where the value allows both); "" when it is not one (a month name alone, a number, a word)."""
    from pandas.tseries.api import guess_datetime_format

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guessed = guess_datetime_format(example, dayfirst=dayfirst) or ""
    has = lambda *codes: any(code in guessed for code in codes)  # noqa: E731
    return guessed if has("%Y", "%y") and has("%m", "%b", "%B") and has("%d") else ""


def best_date_format(values: np.ndarray) -> tuple[str, float]:
    """The date format that reads the most of `values` (guessed from the first, month first or day first), and
    the share it reads; ("", 0.0) when the first value is no date."""
    if not len(values):
        return "", 0.0
    formats = dict.fromkeys(f for f in (date_format(str(values[0])), date_format(str(values[0]), True)) if f)
    scored = [(_parsed_share(values, fmt), fmt) for fmt in formats]
    share, fmt = max(scored, key=lambda pair: pair[0], default=(0.0, ""))
    return fmt, share


def date_parts(text: np.ndarray, fmt: str, hour: bool) -> np.ndarray:
    """(rows, parts): DATE_PARTS (and the hour of the day) of each value read with `fmt`; NaN where it does not
    parse or is missing. Times with a zone are taken in UTC."""
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stamps = pd.to_datetime(pd.Series(text, dtype=object), format=fmt, errors="coerce", utc=True)
    ok = stamps.notna().to_numpy()
    parts = np.full((len(text), len(DATE_PARTS) + hour), np.nan)
    if ok.any():
        good = stamps[ok].dt
        epoch = pd.Timestamp(0, tz="UTC")
        parts[ok, 0] = ((stamps[ok] - epoch).dt.total_seconds() / SECONDS_PER_DAY).to_numpy()
        parts[ok, 1], parts[ok, 2], parts[ok, 3] = good.year, good.month, good.dayofweek
        if hour:
            parts[ok, 4] = good.hour + good.minute / 60.0
    return parts


@dataclass(frozen=True)
class ColumnCode:
    """How one feature column becomes model inputs, fitted on the training rows: `number` (missing values filled
    with the mean, then standardised; `tokens` are non-numeric values read as missing), `date` (DATE_PARTS, and
    the hour where the values have times, read with `date_format`, each filled and standardised like a number),
    `category` (one-hot over `categories`, plus an OTHER column for every other value where `other`; a missing
    value, or an unseen one without `other`, is all zeros) or `left out` (`why` says why; for a number, `why` is
    a warning). `chosen` marks a kind the study's `encode` asked for."""

    name: str
    kind: str
    mean: float = 0.0
    std: float = 1.0
    categories: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()
    token_rows: int = 0
    missing_rows: int = 0
    why: str = ""
    other: bool = False
    other_levels: int = 0
    date_format: str = ""
    parts: tuple[str, ...] = ()
    means: tuple[float, ...] = ()
    stds: tuple[float, ...] = ()
    chosen: bool = False

    def width(self) -> int:
        return {"number": 1, "date": len(self.parts), "category": len(self.categories) + self.other}.get(self.kind, 0)

    def encode(self, series) -> np.ndarray:
        """The column's block of the input matrix, (rows, width)."""
        if self.kind == "number":
            values = _numbers(series)
            return ((np.where(np.isnan(values), self.mean, values) - self.mean) / self.std)[:, None]
        if self.kind == "date":
            parts = date_parts(_text(series), self.date_format, HOUR in self.parts)
            means, stds = np.array(self.means), np.array(self.stds)
            return (np.where(np.isnan(parts), means, parts) - means) / stds
        if self.kind == "category":
            text = _text(series)
            block = (text[:, None] == np.array(self.categories, dtype=object)[None, :]).astype(np.float64)
            if self.other:
                rest = np.array([t is not None for t in text]) & (block.sum(axis=1) == 0)
                block = np.concatenate([block, rest[:, None].astype(np.float64)], axis=1)
            return block
        return np.zeros((len(series), 0))

    def describe(self) -> str:
        missing = f"; {self.missing_rows} training row(s) missing" if self.missing_rows else ""
        chosen = " (set by `encode`)" if self.chosen else ""
        if self.kind == "number":
            tokens = (
                f"; the token(s) {quoted(self.tokens)} ({self.token_rows} training row(s)) read as missing"
                if self.tokens
                else ""
            )
            warning = f"; warning: {self.why}" if self.why else ""
            return f"{self.name!r}: number{chosen}{tokens}{missing}{warning}"
        if self.kind == "date":
            unread = (
                f"; {self.token_rows} training value(s) not read as {self.date_format} taken as missing"
                if self.token_rows
                else ""
            )
            return (
                f"{self.name!r}: date{chosen} ({self.date_format}) as {len(self.parts)} numbers: "
                f"{', '.join(self.parts)}{unread}{missing}"
            )
        if self.kind == "category":
            other = (
                f"; capped at max_categories: the {len(self.categories)} most frequent kept, the other "
                f"{self.other_levels} level(s) share one {OTHER!r} column"
                if self.other
                else ""
            )
            return (
                f"{self.name!r}: one-hot{chosen}, {len(self.categories)} categories "
                f"({quoted(self.categories)}){other}{missing}"
            )
        return f"{self.name!r}: left out: {self.why}"


def _standardised(values: np.ndarray) -> tuple[float, float]:
    known = values[~np.isnan(values)]
    if not len(known):
        return 0.0, 1.0
    std = float(known.std())
    return float(known.mean()), std if std > 1e-12 else 1.0


def _non_numbers(text: np.ndarray, numbers: np.ndarray) -> set[str]:
    """The distinct present values that are not numbers ("?", "n/a")."""
    return {t for t, n in zip(text, numbers) if t is not None and np.isnan(n)}


def _number(
    name: str,
    all_numbers: np.ndarray,
    text: np.ndarray,
    numbers: np.ndarray,
    train: np.ndarray,
    missing: int,
    chosen: bool,
    non_numbers: set[str],
) -> ColumnCode:
    known = numbers[~np.isnan(numbers)]
    tokens = sorted(non_numbers)
    ordered = all_numbers[np.sort(train)]
    row_number = (
        len(known) >= ID_MIN_ROWS
        and len(np.unique(known)) == len(known)
        and np.all(known == np.round(known))
        and bool(np.all(np.diff(ordered) > 0))
    )
    mean, std = _standardised(numbers)
    return ColumnCode(
        name,
        "number",
        mean=mean,
        std=std,
        tokens=tuple(tokens),
        token_rows=sum(t in tokens for t in text),
        missing_rows=missing,
        chosen=chosen,
        why="looks like a row number (whole numbers, all distinct, increasing row by row); if it "
        "is one, leave it out with `ignore`"
        if row_number
        else "",
    )


def _date(name: str, text: np.ndarray, fmt: str, missing: int, chosen: bool) -> ColumnCode:
    parts = date_parts(text, fmt, hour=True)
    read = ~np.isnan(parts[:, 0])
    if not (read.any() and np.nanmax(parts[read, -1]) > 0):  # no value has a time of day: no hour
        parts = parts[:, :-1]
    stats = [_standardised(parts[:, j]) for j in range(parts.shape[1])]
    return ColumnCode(
        name,
        "date",
        date_format=fmt,
        parts=(DATE_PARTS + (HOUR,))[: parts.shape[1]],
        means=tuple(m for m, _ in stats),
        stds=tuple(s for _, s in stats),
        missing_rows=missing,
        token_rows=int((~read).sum()) - missing,
        chosen=chosen,
    )


def _category(name: str, present: np.ndarray, missing: int, max_categories: int, chosen: bool) -> ColumnCode:
    found, counts = np.unique(present.astype(str), return_counts=True)
    levels = [str(level) for level in found]  # Python strings: they are shown and pickled with the model
    if len(levels) <= max_categories:
        return ColumnCode(name, "category", categories=tuple(levels), missing_rows=missing, chosen=chosen)
    order = sorted(range(len(levels)), key=lambda i: (-counts[i], levels[i]))  # most frequent first, ties by name
    kept = tuple(sorted(levels[i] for i in order[: max_categories - 1]))
    return ColumnCode(
        name,
        "category",
        categories=kept,
        other=True,
        other_levels=len(levels) - len(kept),
        missing_rows=missing,
        chosen=chosen,
    )


def _parsed_share(text: np.ndarray, fmt: str) -> float:
    if not len(text):
        return 0.0
    return float((~np.isnan(date_parts(text, fmt, hour=False)[:, 0])).mean())


def _chosen_kind(
    name: str,
    kind: str,
    all_numbers: np.ndarray,
    text: np.ndarray,
    numbers: np.ndarray,
    train: np.ndarray,
    present: np.ndarray,
    missing: int,
    max_categories: int,
) -> ColumnCode:
    """The column encoded as the study's `encode` sets it (`kind` in KINDS); ValueError when it cannot be."""
    if kind == "number":
        known = numbers[~np.isnan(numbers)]
        if not len(known):
            raise ValueError(
                f"column {name!r} has no number in its training rows (e.g. {quoted(present[:3])}): "
                "it cannot be encoded as `number`"
            )
        return _number(
            name, all_numbers, text, numbers, train, missing, chosen=True, non_numbers=_non_numbers(text, numbers)
        )
    if kind == "date":
        fmt, share = best_date_format(present)
        if share < 0.5:
            raise ValueError(
                f"column {name!r} does not read as dates with year, month and day "
                f"(e.g. {quoted(present[:3])}): it cannot be encoded as `date`"
            )
        return _date(name, text, fmt, missing, chosen=True)
    return _category(name, present, missing, max_categories, chosen=True)


def _constant_number(name: str, known: np.ndarray) -> ColumnCode:
    """A column guessed numeric, left out: its training values are all one number (or none)."""
    value = f"{known[0]:g}" if len(known) else "none"
    return ColumnCode(
        name,
        "left out",
        why=f"constant: every training row that has a value has {value} (as a number it carries nothing)",
    )


def _guessed_text(name: str, text: np.ndarray, present: np.ndarray, missing: int, max_categories: int) -> ColumnCode:
    """A column guessed non-numeric: dates, categories, or left out (constant, free text, an identifier)."""
    distinct = set(present)
    if len(distinct) == 1 and not missing:
        return ColumnCode(name, "left out", why=f"constant: every training row has {present[0]!r}")
    fmt, share = best_date_format(present)
    if share >= DATE_SHARE:
        return _date(name, text, fmt, missing, chosen=False)
    words = float(np.mean([len(str(t).split()) for t in present]))
    if len(present) >= ID_MIN_ROWS and words >= FREE_TEXT_WORDS and len(distinct) >= FREE_TEXT_DISTINCT * len(present):
        return ColumnCode(
            name,
            "left out",
            why=f"looks like free text ({words:.1f} words a value, {len(distinct)} "
            f"of {len(present)} training values distinct): to learn from text, "
            f"use the `text` data set (text: {name})",
        )
    if len(present) >= ID_MIN_ROWS and len(distinct) == len(present):
        return ColumnCode(
            name,
            "left out",
            why=f"looks like an identifier (all {len(present)} training values are "
            "distinct text: one-hot columns no other row shares)",
        )
    return _category(name, present, missing, max_categories, chosen=False)


def fit_column(
    name: str,
    series,
    train: np.ndarray,
    ignored: bool = False,
    kind: str = "",
    max_categories: int = DEFAULT_MAX_CATEGORIES,
) -> ColumnCode:
    """Decide how a column is encoded, from its training rows only; `kind` (one of KINDS) where the study's
    `encode` sets it. Raises ValueError when the set kind cannot be read from the column."""
    import pandas as pd

    if ignored:
        return ColumnCode(name, "left out", why="named in `ignore`")
    all_text = _text(series)
    all_numbers = _text_numbers(all_text)  # every row parsed once; the statistics take the training rows
    text, numbers = all_text[train], all_numbers[train]
    present = text[text != None]  # noqa: E711 - elementwise comparison on an object array
    missing = len(text) - len(present)
    if kind in KINDS:
        return _chosen_kind(name, kind, all_numbers, text, numbers, train, present, missing, max_categories)
    if not len(present):
        return ColumnCode(name, "left out", why="empty: no value in any training row")
    known = numbers[~np.isnan(numbers)]
    tokens = _non_numbers(text, numbers)
    numeric = pd.api.types.is_numeric_dtype(series) or (
        len(known) > 0 and len(tokens) <= MAX_NUMBER_TOKENS and len(known) >= len(present) / 2
    )
    if numeric and len(np.unique(known)) <= 1:
        return _constant_number(name, known)
    if numeric:
        return _number(name, all_numbers, text, numbers, train, missing, chosen=False, non_numbers=tokens)
    return _guessed_text(name, text, present, missing, max_categories)


def column_kinds(spec: str, features: list[str], ignored: tuple[str, ...] = ()) -> dict[str, str]:
    """The `encode` setting ("column=kind, ..."; kinds in KINDS) as {column: kind}, each checked."""
    kinds: dict[str, str] = {}
    for item in (part.strip() for part in (spec or "").split(",")):
        if not item:
            continue
        column, sep, kind = (s.strip() for s in item.partition("="))
        if not sep or kind not in KINDS:
            raise ValueError(
                f"`encode` takes column=kind pairs, comma-separated, kind one of {', '.join(KINDS)}; not {item!r}"
            )
        if column not in features:
            raise ValueError(
                f"`encode` names no feature column {column!r}; the feature columns are: "
                + ", ".join(repr(c) for c in features)
            )
        if column in ignored:
            raise ValueError(f"`encode` sets column {column!r}, which `ignore` leaves out: name it in one of them")
        kinds[column] = kind
    return kinds


@dataclass(frozen=True)
class TableEncoder:
    """The feature columns of a table as one float matrix, every statistic from the training rows only. It goes
    with the best model, so that raw rows (the CSV's columns without the target) can be scored."""

    columns: tuple[ColumnCode, ...]
    example: Any = field(default=None, compare=False)  # a few raw training rows: the model's input example

    @classmethod
    def fit(
        cls,
        features,
        train: np.ndarray,
        ignore: tuple[str, ...] = (),
        kinds: dict[str, str] | None = None,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
    ) -> TableEncoder:
        """Each column's encoding from the `train` rows; the columns in `ignore` are left out, those in `kinds`
        encoded as it says."""
        kinds = kinds or {}
        columns = tuple(
            fit_column(str(name), features[name], train, str(name) in ignore, kinds.get(str(name), ""), max_categories)
            for name in features.columns
        )
        example = features.iloc[np.sort(train)[:5]].reset_index(drop=True)
        for column in example.columns:  # numbers as floats in the model's signature: a served row may miss one
            if example[column].dtype.kind in "biu":
                example[column] = example[column].astype(np.float64)
        return cls(columns, example=example)

    def transform(self, frame) -> np.ndarray:
        """Raw rows (a DataFrame with the feature columns; extra columns are ignored) as float32 inputs."""
        absent = [c.name for c in self.columns if c.kind != "left out" and c.name not in frame.columns]
        if absent:
            raise ValueError(
                f"the rows lack the column(s) {quoted(absent)}; expected: "
                + ", ".join(repr(c.name) for c in self.columns)
            )
        blocks = [c.encode(frame[c.name]) for c in self.columns if c.kind != "left out"]
        matrix = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(frame), 0))
        return matrix.astype(np.float32)

    def width(self) -> int:
        return sum(c.width() for c in self.columns)

    def left_out(self) -> tuple[str, ...]:
        """The columns the encoding does not read (ignored, constant, identifiers ...): a row may omit them."""
        return tuple(c.name for c in self.columns if c.kind == "left out")

    def describe(self) -> list[str]:
        count = lambda kind: sum(c.kind == kind for c in self.columns)  # noqa: E731
        one_hot = sum(c.width() for c in self.columns if c.kind == "category")
        dates = sum(c.width() for c in self.columns if c.kind == "date")
        return [c.describe() for c in self.columns] + [
            "missing values: numbers (and date parts) take the training mean (then all are standardised with the "
            "training mean and std); a missing category is all zeros, an unseen one too (or "
            + repr(OTHER)
            + " where a column is capped)",
            f"inputs: {self.width()} ({count('number')} number column(s), {one_hot} one-hot column(s) from "
            f"{count('category')} text column(s)"
            + (f", {dates} from {count('date')} date column(s)" if count("date") else "")
            + (f"; {count('left out')} column(s) left out" if count("left out") else "")
            + ")",
        ]
