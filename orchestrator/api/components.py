"""Component spec objects that plugins register, and what their `build` callables receive."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from orchestrator.api.params import Param

if TYPE_CHECKING:  # torch only where a component is built: `automl plugins` and `validate` import none of it
    import torch
    from torch import nn

Kind = Literal["architecture", "activation", "loss", "optimizer", "schedule", "regularizer", "augmentation", "dataset"]
KINDS: tuple[Kind, ...] = (
    "architecture",
    "activation",
    "loss",
    "optimizer",
    "schedule",
    "regularizer",
    "augmentation",
    "dataset",
)

# Where a normalisation layer sits: (N, F) features, (N, C, L) 1-D conv maps, (N, C, H, W) 2-D
# conv maps, or (N, L, F) sequences (RNN / Transformer hidden states).
Layout = Literal["vector", "conv1d", "conv2d", "sequence"]

# `tokens`: (N, length) int64 token ids, 0 the padding. An architecture that takes sequences gets them embedded
# (N, length, embedding_dim) unless it declares `tokens` itself (it then builds `ctx.embedding()` where it likes).
InputKind = Literal["vector", "sequence", "image", "tokens"]
INPUT_KINDS: tuple[InputKind, ...] = ("vector", "sequence", "image", "tokens")
PADDING_TOKEN = 0

Task = Literal["classification", "regression", "generative"]
TASKS: tuple[Task, ...] = ("classification", "regression", "generative")


def _relu() -> nn.Module:
    """The default non-linearity of a BuildContext."""
    from torch import nn

    return nn.ReLU()


@dataclass(frozen=True)
class DataBundle:
    """A data set split three ways, held as tensors (moved to the training device whole), or streamed: see
    `from_datasets`.

    Shapes: `vector` (N, features); `sequence` (N, length, channels); `image` (N, C, H, W); `tokens` (N, length)
    int64 ids below `vocab_size`. Classification targets are class indices (int64); regression targets are
    (N, outputs) floats.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    input_kind: InputKind
    task: Task
    output_size: int
    target_scale: float = 1.0  # regression targets were divided by this; metrics are reported times it
    # What the best model needs to score raw inputs (orchestrator.tracking.serving): `encoder.transform(raw) -> x`
    # when the inputs were encoded (a table's rows), the class labels as the data wrote them, and the regression
    # targets' training mean (a target in its own units is output * target_scale + target_offset).
    encoder: Any = None
    classes: tuple[Any, ...] | None = None
    target_offset: tuple[float, ...] | None = None
    vocab_size: int | None = None  # `tokens` inputs: ids run from 0 (padding) to vocab_size - 1
    loader_workers: int | None = None  # streamed data: DataLoader worker processes (None: chosen for the machine)

    @classmethod
    def from_datasets(cls, train: Any, val: Any, test: Any, **fields: Any) -> DataBundle:
        """Data streamed from map-style `torch.utils.data.Dataset`s whose items are `(x, y)` pairs of one sample,
        for data larger than memory: training and evaluation read them in mini-batches through a DataLoader, so
        only the batches in flight are held. `x_*` hold the Datasets, `y_*` are None."""
        return cls(train, None, val, None, test, None, **fields)  # type: ignore[arg-type]  # y_* are None here

    @property
    def streaming(self) -> bool:
        """Whether the splits are Datasets read batch by batch (else tensors held whole)."""
        return self.y_train is None

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self.streaming:
            return tuple(_as_tensor(self.x_train[0][0]).shape)
        return tuple(self.x_train.shape[1:])

    def inputs(self, split: str, rows: int) -> torch.Tensor:
        """The first `rows` inputs of `split` (train, val or test) as one tensor, streamed or not."""
        x = getattr(self, f"x_{split}")
        if not self.streaming:
            return x[:rows]
        import torch

        return torch.stack([_as_tensor(x[i][0]) for i in range(min(rows, len(x)))])

    def to(self, device: torch.device | str) -> DataBundle:
        if self.streaming:
            return self  # batches move to the device as they are read
        moved = {
            name: getattr(self, name).to(device)
            for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
        }
        return replace(self, **moved)


def _as_tensor(value: Any) -> torch.Tensor:
    import torch

    return torch.as_tensor(value)


@dataclass(frozen=True)
class MixedTargets:
    """Targets mixed by an augmentation (mixup): the loss is `weight * loss(out, a) + (1 - weight) * loss(out, b)`."""

    a: torch.Tensor
    b: torch.Tensor
    weight: float


@dataclass(frozen=True)
class RegularizerEffect:
    """What one regularizer does, at the place it belongs. Every field is optional.

    structure: `dropout` (a rate) and `norm(features, layout)` (a normalisation layer factory);
    loss: `penalty(model) -> scalar tensor` added to the loss;
    optimizer: `weight_decay`;
    training: `grad_clip` (max gradient norm) and `early_stopping_patience` (epochs without
    improvement of the objective before training stops).
    """

    dropout: float | None = None
    norm: Callable[[int, Layout], nn.Module] | None = None
    penalty: Callable[[nn.Module], torch.Tensor] | None = None
    weight_decay: float | None = None
    grad_clip: float | None = None
    early_stopping_patience: int | None = None


@dataclass(frozen=True)
class AdversarialLoss:
    """What a loss for the generative task builds: one objective per network.

    `discriminator(real_logits, fake_logits)` and `generator(fake_logits)` return scalar tensors.
    """

    discriminator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    generator: Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class BuildContext:
    """What the other choices decided, handed to every `build` that needs it.

    An architecture calls `activation()` for each non-linearity, adds `nn.Dropout(dropout)`
    when `dropout` > 0, and `norm(features, layout)` after hidden layers when `norm` is set
    (`layout` says the tensor's shape there: vector, conv1d, conv2d or sequence).
    An optimizer applies `weight_decay`; a schedule reads `max_epochs` and `steps_per_epoch`.
    Losses read `task` and `output_size`. With `tokens` data, an architecture that declares `tokens` gets
    `embedding()` (token ids to vectors); one that takes only sequences is handed embedded sequences instead.
    """

    input_shape: tuple[int, ...]
    input_kind: InputKind
    output_size: int
    task: Task
    activation: Callable[[], nn.Module] = _relu
    dropout: float = 0.0
    norm: Callable[[int, Layout], nn.Module] | None = None
    weight_decay: float = 0.0
    max_epochs: int = 1
    steps_per_epoch: int = 1
    vocab_size: int | None = None
    embedding: Callable[[], nn.Module] | None = None  # `tokens` data: an nn.Embedding (padding 0) of the searched size


@dataclass(frozen=True)
class _Spec:
    kind: ClassVar[str]
    name: str
    description: str
    params: Mapping[str, Param] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"component name {self.name!r} must be a Python identifier (letters, digits, _)")
        if not callable(getattr(self, "build", None)):
            raise ValueError(f"{self.kind} {self.name!r} has no callable `build`")


@dataclass(frozen=True)
class Architecture(_Spec):
    """A network: `build(params, ctx) -> nn.Module` mapping inputs to `ctx.output_size` outputs.

    For the generative task it returns a module with `generator` (latent -> a sample shaped like
    `ctx.input_shape`), `discriminator` (sample -> one logit) and `latent_dim`.
    """

    build: Callable[[Mapping[str, Any], BuildContext], nn.Module] = None  # type: ignore[assignment]
    input_kinds: tuple[InputKind, ...] = INPUT_KINDS
    tasks: tuple[Task, ...] = ("classification", "regression")
    kind = "architecture"


@dataclass(frozen=True)
class Activation(_Spec):
    """A non-linearity: `build(params) -> nn.Module` (called once per layer)."""

    build: Callable[[Mapping[str, Any]], nn.Module] = None  # type: ignore[assignment]
    kind = "activation"


@dataclass(frozen=True)
class Loss(_Spec):
    """A training loss: `build(params, ctx) -> callable(outputs, targets) -> scalar tensor`,
    or an `AdversarialLoss` for the generative task."""

    build: Callable[[Mapping[str, Any], BuildContext], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None  # type: ignore[assignment]
    tasks: tuple[Task, ...] = ("classification",)
    kind = "loss"


@dataclass(frozen=True)
class Optimizer(_Spec):
    """An optimizer: `build(params, parameters, ctx) -> torch.optim.Optimizer`."""

    build: Callable[[Mapping[str, Any], Any, BuildContext], torch.optim.Optimizer] = None  # type: ignore[assignment]
    kind = "optimizer"


@dataclass(frozen=True)
class Schedule(_Spec):
    """A learning-rate schedule: `build(params, optimizer, ctx) -> torch.optim.lr_scheduler.LRScheduler`.

    `interval` says when it steps: after every optimizer `step` or every `epoch`.
    """

    build: Callable[[Mapping[str, Any], torch.optim.Optimizer, BuildContext], Any] = None  # type: ignore[assignment]
    interval: Literal["step", "epoch"] = "step"
    kind = "schedule"


@dataclass(frozen=True)
class Regularizer(_Spec):
    """A regularizer: `build(params) -> RegularizerEffect`; a study may switch each on or off."""

    build: Callable[[Mapping[str, Any]], RegularizerEffect] = None  # type: ignore[assignment]
    tasks: tuple[Task, ...] = TASKS
    kind = "regularizer"


Augment = Callable[
    ["torch.Tensor", "torch.Tensor | MixedTargets"], tuple["torch.Tensor", "torch.Tensor | MixedTargets"]
]


@dataclass(frozen=True)
class Augmentation(_Spec):
    """A change to training batches: `build(params, ctx) -> augment(x, y) -> (x, y)`, called on each training
    mini-batch on the training device (never on validation or test data). It may return `MixedTargets` for `y`
    (mixup). A study may switch each on or off, like regularizers."""

    build: Callable[[Mapping[str, Any], BuildContext], Augment] = None  # type: ignore[assignment]
    input_kinds: tuple[InputKind, ...] = INPUT_KINDS
    tasks: tuple[Task, ...] = ("classification", "regression")
    kind = "augmentation"


@dataclass(frozen=True)
class Dataset(_Spec):
    """A data set: `build(params, seed) -> DataBundle`. Its params are set in the study file, not searched.

    A data set whose task or input kind depends on the user's data (a CSV file, arrays) gives
    `probe(params) -> (task, input_kind)`: it reads just enough to tell, before anything is
    created, and raises ValueError (or OSError) with a readable message when the data is unusable.
    `describe(params, seed) -> lines` says what reading the user's data will do (`automl validate` shows it).
    Data larger than memory: `build` returns `DataBundle.from_datasets(...)`.
    """

    build: Callable[[Mapping[str, Any], int], DataBundle] = None  # type: ignore[assignment]
    input_kind: InputKind = "vector"
    tasks: tuple[Task, ...] = ("classification",)
    probe: Callable[[Mapping[str, Any]], tuple[Task, InputKind]] | None = None
    describe: Callable[[Mapping[str, Any], int], list[str]] | None = None
    kind = "dataset"


ComponentSpec = Architecture | Activation | Loss | Optimizer | Schedule | Regularizer | Augmentation | Dataset
SPEC_TYPES: dict[str, type] = {
    cls.kind: cls for cls in (Architecture, Activation, Loss, Optimizer, Schedule, Regularizer, Augmentation, Dataset)
}
