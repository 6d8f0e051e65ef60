"""The best model as a user serves it: an MLflow pyfunc model that takes inputs as the data set provided them
(for a CSV study, a DataFrame of raw rows: the CSV's columns without the target) and returns predictions as the
data wrote its targets (class labels as in the CSV, regression values in the target's own units).

The network inside is a plain `nn.Module` (pickled, not `torch.export`ed: it has `eval()` and accepts float64),
so `mlflow models serve` and `mlflow.pyfunc.load_model` need the same project installed (its pip requirement)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import torch
from mlflow.pyfunc import PythonModel
from torch import nn

from orchestrator.api.components import DataBundle


class FloatInputs(nn.Module):
    """The trained network behind a cast: inputs of any floating or integer dtype become float32 first (token
    ids of `tokens` data: int64)."""

    def __init__(self, network: nn.Module, tokens: bool = False) -> None:
        super().__init__()
        self.network = network
        self.tokens = tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(torch.as_tensor(x).to(torch.int64 if getattr(self, "tokens", False) else torch.float32))


class ServingModel(PythonModel):
    """Raw inputs in, predictions out: the data set's encoder (if any), the network, then the targets' decoding."""

    # `predict` has no type hints (MLflow would make them the schema; the logged signature is the schema), so
    # MLflow's check of them, which only warns about their absence, is skipped
    _skip_type_hint_validation = True

    def __init__(self, network: nn.Module, data: DataBundle) -> None:
        self.network = FloatInputs(network.cpu().eval(), data.input_kind == "tokens").eval()
        self.encoder = data.encoder
        self.task = data.task
        self.classes = list(data.classes) if data.classes is not None else None
        self.input_shape = tuple(data.input_shape)
        self.target_scale = float(data.target_scale)
        self.target_offset = np.asarray(data.target_offset, dtype=np.float64) if data.target_offset else 0.0

    def inputs(self, model_input: Any) -> np.ndarray:
        """The network's inputs for `model_input`: rows for the encoder, else arrays of the trained shape."""
        if self.encoder is not None:
            import pandas as pd

            frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
            return self.encoder.transform(frame)
        array = np.asarray(
            model_input.to_numpy() if hasattr(model_input, "to_numpy") else model_input,
            dtype=np.int64 if self.network.tokens else np.float32,
        )
        size = int(np.prod(self.input_shape))
        if array.ndim == 0 or array.size % size:
            raise ValueError(
                f"inputs of shape {array.shape} do not split into samples of shape {self.input_shape} "
                f"({size} values each): pass an array of shape (n, {', '.join(map(str, self.input_shape))})"
                f" or (n, {size})"
            )
        return array.reshape(-1, *self.input_shape)

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would read them as a schema
        """Predictions for `model_input`: class labels as the data wrote them, or values in the target's units."""
        with torch.no_grad():
            outputs = self.network(torch.as_tensor(self.inputs(model_input))).numpy()
        if self.task == "classification":
            indices = outputs.argmax(axis=1)
            return [self.classes[i] for i in indices] if self.classes is not None else indices.tolist()
        values = outputs.astype(np.float64) * self.target_scale + self.target_offset
        return values[:, 0] if values.shape[1] == 1 else values


def raw_example(data: DataBundle, rows: int = 5) -> Any:
    """A few inputs as a user passes them: raw table rows for an encoded data set, else the validation inputs."""
    if data.encoder is not None and getattr(data.encoder, "example", None) is not None:
        frame = data.encoder.example.head(rows)
        # integer columns declared as doubles: a row with a missing value (NaN) must pass the schema too
        return frame.astype({c: "float64" for c in frame.columns if frame[c].dtype.kind in "iu"})
    return data.inputs("val", rows).detach().cpu().numpy()


def lenient_signature(signature: Any, optional: Collection[str] = ()) -> Any:
    """A raw-row signature whose number columns take any value: a JSON row that copies a CSV's empty cell ("")
    or token ("?") passes the server's schema check as the same CSV row does, and the table's encoder reads
    such a value as missing. The `optional` columns (those the encoder leaves out) may be omitted. Other
    signatures are returned unchanged."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, DataType, Schema, TensorSpec

    numbers = {DataType.double, DataType.float, DataType.long, DataType.integer}
    inputs = signature.inputs
    if inputs is None or not inputs.has_input_names() or inputs.is_tensor_spec():
        return signature
    columns: list[ColSpec | TensorSpec] = [
        ColSpec(AnyType() if c.type in numbers else c.type, c.name, required=c.required and c.name not in optional)
        for c in inputs.inputs
    ]
    return ModelSignature(Schema(columns), signature.outputs, signature.params)
