"""`dataset: text`: the user's own labelled texts, a CSV file with a text column and a label column, as token ids.

Registration only (no torch, no pandas: `automl plugins` stays fast); reading, the vocabulary and the tokenizer that
goes with the best model live in `text_data`, imported when the data set is probed or built.
"""

from orchestrator import Choice, Dataset, Int, Text, hookimpl

from . import deferred
from .splits import CSV_PATH_PARAM, DELIMITER_PARAM, fraction_params


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            "text",
            "Your own texts: a CSV file with a text column and a label column; each text becomes `length` token "
            "ids (words or characters) over a vocabulary from the training split; the tokenizer goes with the "
            "best model, which then scores raw text.",
            params={
                "path": CSV_PATH_PARAM,
                "text": Text("text", help="the column holding the texts"),
                "label": Text("label", help="the column holding the class labels (rows without one are dropped)"),
                "delimiter": DELIMITER_PARAM,
                "tokenizer": Choice(
                    ("words", "characters"), default="words", help="words (and punctuation marks) or single characters"
                ),
                "length": Int(
                    2,
                    4096,
                    default=64,
                    help="tokens per text: a longer text is cut (its start kept), a "
                    "shorter one padded on the left (its end is the last step)",
                ),
                "max_vocab": Int(
                    3,
                    1_000_000,
                    default=20_000,
                    log=True,
                    help="token ids in all, padding (0) and unknown (1) included: the most frequent "
                    "training tokens get the others",
                ),
                "min_count": Int(1, 1000, default=1, help="a token seen fewer times in the training split is unknown"),
                "lowercase": Choice((True, False), default=True, help="lower-case the texts before tokenizing"),
                "empty": Choice(
                    ("refuse", "skip"),
                    default="refuse",
                    help="a row with an empty text: refuse the study (exit 2, rows named) or leave it out",
                ),
                **fraction_params(),
            },
            build=deferred("text_data", "build_text"),
            input_kind="tokens",
            tasks=("classification",),
            probe=deferred("text_data", "probe_text"),
            describe=deferred("text_data", "describe_text"),
        )
    )
