"""The torch/pandas side of `dataset: text` (imported when the data set is probed or built): the CSV's texts and
labels read and checked, seeded stratified splits, a vocabulary from the training split only, and the tokenizer that
turns raw texts into (N, length) int64 ids. The tokenizer goes with the best model (`DataBundle.encoder`), so the
logged pyfunc model scores raw text.

Ids: 0 padding, 1 unknown, then the training split's tokens by falling frequency (ties by the token). A text is cut
to `length` tokens keeping its start, or padded on the LEFT, so that its last token is the sequence's last step (what
a recurrent network's `last` readout reads).
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from orchestrator import PADDING_TOKEN, DataBundle

from .splits import bundle_of_splits, class_indices, split_rows
from .user_files import _labels, read_csv

UNKNOWN_TOKEN = 1
RESERVED = 2  # ids below this are padding and unknown
WORD = re.compile(r"\w+(?:'\w+)*|[^\w\s]")  # words (with inner apostrophes: "wasn't") and single punctuation marks
# Only these read as a missing label (pandas' own list would also turn a text such as "NA" or "null" into nothing)
MISSING_LABELS = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "#N/A"]
SHOWN = 6  # rows or tokens named in a message


def tokenize(text: str, level: str, lowercase: bool) -> list[str]:
    """A text's tokens: words and punctuation marks, or characters (runs of white space read as one space)."""
    text = " ".join(text.split())
    if lowercase:
        text = text.lower()
    return WORD.findall(text) if level == "words" else list(text)


@dataclass(frozen=True)
class TextTokenizer:
    """Raw texts to (N, length) int64 token ids, fitted on the training split; goes with the best model.

    `vocabulary` holds the tokens of ids 2, 3, ...; a token not in it is unknown (1); 0 pads. A text is cut to
    `length` tokens (its start kept) or padded on the left."""

    column: str
    level: str
    lowercase: bool
    length: int
    vocabulary: tuple[str, ...]
    example: Any = field(default=None, compare=False, repr=False)  # a few raw training rows: the model's input example

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ids", {token: RESERVED + i for i, token in enumerate(self.vocabulary)})

    @classmethod
    def fit(
        cls,
        texts: Iterable[str],
        column: str,
        level: str,
        lowercase: bool,
        length: int,
        max_vocab: int,
        min_count: int,
        example: Any = None,
    ) -> TextTokenizer:
        """The vocabulary of `texts` (the training split): tokens seen at least `min_count` times, the most frequent
        first, at most `max_vocab` ids in all (padding and unknown included)."""
        counts = Counter(token for text in texts for token in tokenize(text, level, lowercase))
        kept = sorted((t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
        return cls(column, level, lowercase, length, tuple(kept[: max(0, max_vocab - RESERVED)]), example)

    @property
    def vocab_size(self) -> int:
        return RESERVED + len(self.vocabulary)

    def ids(self, text: str) -> list[int]:
        """A text's token ids, uncut and unpadded."""
        return [self._ids.get(token, UNKNOWN_TOKEN) for token in tokenize(text, self.level, self.lowercase)]

    def encode(self, texts: Iterable[Any]) -> np.ndarray:
        """Texts (a missing one reads as empty) to an (N, length) int64 array: cut keeping the start, padded on
        the left with 0."""
        rows = [self.ids(text if isinstance(text, str) else "")[: self.length] for text in texts]
        out = np.full((len(rows), self.length), PADDING_TOKEN, dtype=np.int64)
        for i, ids in enumerate(rows):
            if ids:
                out[i, self.length - len(ids) :] = ids
        return out

    def transform(self, frame: Any) -> np.ndarray:
        """Raw rows (a DataFrame with the text column; other columns are ignored) as token ids (N, length)."""
        if self.column not in frame.columns:
            raise ValueError(
                f"the rows lack the text column {self.column!r}; their columns: "
                + (", ".join(repr(str(c)) for c in frame.columns) or "none")
            )
        return self.encode(frame[self.column].tolist())


# ---------------------------------------------------------------------------------------------------------
# Reading and checking the file
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextTable:
    """The usable rows: texts, label values as the CSV wrote them, and what was left out."""

    texts: list[str]
    labels: np.ndarray
    dropped: int  # rows without a label
    skipped: int  # rows with an empty text (`empty: skip`)


def _column(name: str, columns: list[str], what: str, params) -> str:
    if name in columns:
        return name
    close = difflib.get_close_matches(name, columns, n=3, cutoff=0.5) or [
        c for c in columns if c.lower() == name.lower()
    ]
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    if len(columns) == 1:
        hint += f" (a single column: is the delimiter {params.get('delimiter', ',')!r} the file's?)"
    raise ValueError(
        f"{what} column {name!r} is not in {params['path']}{hint}; its columns are: "
        + ", ".join(repr(c) for c in columns)
        + f"; set `{what}:` to one of them"
    )


def _rows(positions: np.ndarray) -> str:
    shown = ", ".join(str(int(p) + 1) for p in positions[:SHOWN])
    return shown + (f", ... ({len(positions)} in all)" if len(positions) > SHOWN else "")


def read_table(params) -> TextTable:
    """The text and label columns, checked: both exist, at least two classes, no empty text (or those left out)."""
    columns = [str(c) for c in read_csv(params, nrows=0).columns]
    text, label = _column(params["text"], columns, "text", params), _column(params["label"], columns, "label", params)
    if text == label:
        raise ValueError(f"`text` and `label` both name the column {text!r}: the labels need a column of their own")
    frame = read_csv(
        params, usecols=[text, label], dtype={text: str}, keep_default_na=False, na_values={label: MISSING_LABELS}
    )
    values = frame[label]
    keep = values.notna().to_numpy()
    texts = frame[text].fillna("").astype(str).to_numpy(dtype=object)
    empty = np.array([not t.strip() for t in texts], dtype=bool)
    if keep.sum() == 0:
        raise ValueError(f"label column {label!r} of {params['path']} has no values")
    blank = np.flatnonzero(empty & keep)
    if len(blank) and params.get("empty", "refuse") == "refuse":
        raise ValueError(
            f"{len(blank)} row(s) of {params['path']} have an empty text in column {text!r}: data row(s) "
            f"{_rows(blank)} (counted from 1 after the header); fill them in, or leave them out with "
            "`empty: skip`"
        )
    use = keep & ~empty
    if not use.any():
        raise ValueError(f"no row of {params['path']} has both a text and a label")
    labels = values[use].to_numpy()
    classes = _labels(class_indices(labels)[0])
    if len(classes) < 2:
        raise ValueError(
            f"label column {label!r} has a single value ({classes[0]!r}): classification needs two classes or more"
        )
    return TextTable(list(texts[use]), labels, int((~keep).sum()), len(blank))


def probe_text(params) -> tuple[str, str]:
    """("classification", "tokens") when the file is usable; a ValueError (or OSError) saying why not."""
    table = read_table(params)
    if params["min_count"] > 1:
        counts = Counter(t for text in table.texts for t in tokenize(text, params["tokenizer"], params["lowercase"]))
        if max(counts.values(), default=0) < params["min_count"]:
            raise ValueError(
                f"no token occurs {params['min_count']} times in {params['path']} (min_count): the "
                "vocabulary would be empty; lower min_count"
            )
    return "classification", "tokens"


# ---------------------------------------------------------------------------------------------------------
# Splits, vocabulary, tensors
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextSplits:
    """The table split three ways (stratified, seeded), with class indices and the fitted tokenizer."""

    table: TextTable
    classes: tuple[Any, ...]  # the labels as the CSV wrote them, in class-index order
    targets: np.ndarray  # int64 class index per row
    splits: tuple[np.ndarray, np.ndarray, np.ndarray]  # row indices: train, val, test
    tokenizer: TextTokenizer

    def texts(self, split: int) -> list[str]:
        return [self.table.texts[i] for i in self.splits[split]]


def text_splits(params, seed: int) -> TextSplits:
    """Read, split (stratified by label) and fit the tokenizer on the training split only."""
    import pandas as pd

    table = read_table(params)
    classes, targets = class_indices(table.labels)
    splits = split_rows(params, len(table.texts), seed, targets)
    train = [table.texts[i] for i in splits[0]]
    example = pd.DataFrame({params["text"]: train[:5]})
    tokenizer = TextTokenizer.fit(
        train,
        params["text"],
        params["tokenizer"],
        bool(params["lowercase"]),
        int(params["length"]),
        int(params["max_vocab"]),
        int(params["min_count"]),
        example,
    )
    if not tokenizer.vocabulary:
        raise ValueError(
            f"no token occurs {params['min_count']} times in the training split of {params['path']} "
            "(min_count): the vocabulary would be empty; lower min_count"
        )
    return TextSplits(table, _labels(classes), targets, splits, tokenizer)


def build_text(params, seed: int) -> DataBundle:
    """Token ids (N, length) int64 per split, class indices as targets; the tokenizer and the class labels go with
    the model."""
    import torch

    data = text_splits(params, seed)
    xs = [torch.as_tensor(data.tokenizer.encode(data.texts(i))) for i in range(3)]
    ys = [torch.as_tensor(data.targets[idx]) for idx in data.splits]
    return bundle_of_splits(
        xs,
        ys,
        input_kind="tokens",
        task="classification",
        output_size=len(data.classes),
        encoder=data.tokenizer,
        classes=data.classes,
        vocab_size=data.tokenizer.vocab_size,
    )


def describe_text(params, seed: int) -> list[str]:
    """What reading the texts will do, for `automl validate`."""
    data = text_splits(params, seed)
    table, tokenizer = data.table, data.tokenizer
    counts = np.bincount(data.targets, minlength=len(data.classes))
    lines = [
        f"{params['path']}: {len(table.texts) + table.dropped + table.skipped} rows; label {params['label']!r} "
        f"({len(data.classes)} classes: "
        + ", ".join(f"{c!r} {n}" for c, n in zip(data.classes, counts))
        + "); rows for training, validation, test: "
        + ", ".join(str(len(s)) for s in data.splits)
    ]
    if table.dropped:
        lines.append(f"{table.dropped} row(s) without a label dropped")
    if table.skipped:
        lines.append(f"{table.skipped} row(s) with an empty text left out (empty: skip)")
    train_lengths = np.array([len(tokenizer.ids(t)) for t in data.texts(0)])
    val_ids = [i for t in data.texts(1) for i in tokenizer.ids(t)]
    unknown = float(np.mean(np.array(val_ids) == UNKNOWN_TOKEN)) if val_ids else 0.0
    capped = ", capped by max_vocab" if len(tokenizer.vocabulary) == params["max_vocab"] - RESERVED else ""
    shown = ", ".join(repr(t) for t in tokenizer.vocabulary[:SHOWN]) + (
        ", ..." if len(tokenizer.vocabulary) > SHOWN else ""
    )
    lines += [
        f"tokenizer: {params['tokenizer']}{', lower-cased' if params['lowercase'] else ''}; vocabulary from the "
        f"training split: {tokenizer.vocab_size} ids (0 padding, 1 unknown, then {len(tokenizer.vocabulary)} tokens "
        f"seen at least {params['min_count']} time(s), the most frequent first{capped}): {shown}",
        f"length {params['length']}: training texts hold {int(np.median(train_lengths))} tokens (median), "
        f"{int(train_lengths.max())} at most; {float(np.mean(train_lengths > params['length'])):.1%} are cut (their "
        "start kept), the others padded on the left with 0",
        f"unknown tokens: {unknown:.1%} of the validation split's tokens",
        f"inputs: ({params['length']},) token ids; architectures for sequences get them embedded (embedding_dim)",
    ]
    return lines
