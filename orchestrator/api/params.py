"""Declared hyperparameters: ranges with defaults that a study file may narrow or fix."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol, cast

from orchestrator.errors import UserError


class OverrideError(UserError, ValueError):
    """A study file's override does not fit the declared hyperparameter."""


class Suggester(Protocol):
    """What a parameter needs from a trial (optuna.Trial and FixedTrial both fit)."""

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...
    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...
    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """True for an int or float (not a bool) that is neither NaN nor infinite."""
    return _is_number(value) and math.isfinite(value)


def _member(value: Any, choices: Sequence[Any]) -> bool:
    """`value in choices`, except that True/False never match 1/0."""
    return any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in choices)


@dataclass(frozen=True)
class _Range:
    kind: ClassVar[str]
    low: float
    high: float
    default: float
    log: bool = False
    step: float | None = None
    help: str = ""

    def __post_init__(self) -> None:
        for key in ("low", "high", "default"):
            if not is_finite_number(getattr(self, key)):
                raise OverrideError(f"{key} must be a finite number, got {getattr(self, key)!r}")
        if self.step is not None and not (is_finite_number(self.step) and self.step > 0):
            raise OverrideError(f"step must be a number > 0, got {self.step!r}")
        if self.low > self.high:
            raise OverrideError(f"low {self.low!r} is greater than high {self.high!r}")
        if self.log and self.low <= 0:
            raise OverrideError(f"log scale needs low > 0, got low {self.low!r}")
        if self.log and self.step is not None:
            raise OverrideError("log scale and step cannot be combined")

    def describe(self) -> str:
        scale = ", log" if self.log else ""
        step = f", step {self.step}" if self.step is not None else ""
        return f"{self.low}..{self.high}{scale}{step} (default {self.default})"

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "low": self.low,
            "high": self.high,
            "log": self.log,
            "step": self.step,
            "default": self.default,
            "help": self.help,
        }

    def contains(self, value: Any) -> bool:
        return is_finite_number(value) and self.low <= value <= self.high

    def narrow(self, override: Any) -> Param:
        """Return this parameter restricted by a study-file override.

        A scalar fixes the value, a list makes a categorical of those values, a mapping
        with `low`/`high`/`log`/`step` narrows the range (it must stay inside it).
        """
        if isinstance(override, dict):
            unknown = set(override) - {"low", "high", "log", "step"}
            if unknown:
                raise OverrideError(f"unknown range keys {sorted(unknown)}; allowed: low, high, log, step")
            fields = {k: override[k] for k in ("low", "high", "step") if k in override}
            for key, value in fields.items():
                if value is not None and not _is_number(value):
                    raise OverrideError(f"{key} must be a number, got {value!r}")
            if "log" in override and not isinstance(override["log"], bool):
                raise OverrideError(f"log must be true or false, got {override['log']!r}")
            narrowed = replace(
                self, **fields, **({"log": override["log"]} if "log" in override else {}), default=self.default
            )
            if narrowed.low < self.low or narrowed.high > self.high:
                raise OverrideError(
                    f"range {narrowed.low}..{narrowed.high} is outside the declared range {self.low}..{self.high}"
                )
            if not narrowed.low <= narrowed.default <= narrowed.high:
                narrowed = replace(narrowed, default=self._cast(narrowed.low))
            return cast("Param", narrowed)
        if isinstance(override, list):
            if not override:
                raise OverrideError("an empty list of values; give at least one")
            for value in override:
                self._check_value(value)
            values = tuple(self._cast(v) for v in override)
            # the declared default where the list keeps it, else the list's first value
            default = self.default if _member(self.default, values) else values[0]
            return Choice(values, default=default, help=self.help)
        self._check_value(override)
        return Fixed(self._cast(override), help=self.help)

    def _check_value(self, value: Any) -> None:
        if not self.contains(value):
            raise OverrideError(f"value {value!r} is not a number in the declared range {self.low}..{self.high}")

    def _cast(self, value: Any) -> Any:
        return value


@dataclass(frozen=True)
class Float(_Range):
    """A real-valued hyperparameter (uniform or log-uniform)."""

    kind = "float"

    def suggest(self, trial: Suggester, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)

    def _cast(self, value: Any) -> float:
        return float(value)


@dataclass(frozen=True)
class Int(_Range):
    """An integer hyperparameter (uniform or log-uniform)."""

    kind = "int"

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("low", "high", "default"):
            value = getattr(self, key)
            if not (_is_number(value) and float(value).is_integer()):
                raise OverrideError(f"{key} must be an integer, got {value!r}")

    def suggest(self, trial: Suggester, name: str) -> int:
        return trial.suggest_int(name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))

    def contains(self, value: Any) -> bool:
        return super().contains(value) and float(value).is_integer()

    def _cast(self, value: Any) -> int:
        return int(value)


@dataclass(frozen=True)
class Choice:
    """A categorical hyperparameter over a fixed set of values."""

    choices: tuple[Any, ...]
    default: Any = None
    help: str = ""
    kind = "categorical"

    def __post_init__(self) -> None:
        if not self.choices:
            raise OverrideError("an empty list of choices; give at least one")
        if self.default is None:
            object.__setattr__(self, "default", self.choices[0])

    def suggest(self, trial: Suggester, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.choices))

    def contains(self, value: Any) -> bool:
        return _member(value, self.choices)

    def describe(self) -> str:
        return f"one of {list(self.choices)} (default {self.default!r})"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "choices": list(self.choices), "default": self.default, "help": self.help}

    def narrow(self, override: Any) -> Param:
        values = override if isinstance(override, list) else [override]
        if isinstance(override, dict) or not values:
            raise OverrideError(f"give one of {list(self.choices)} or a non-empty list of them")
        bad = [v for v in values if not _member(v, self.choices)]
        if bad:
            raise OverrideError(f"{bad[0]!r} is not one of {list(self.choices)}")
        if isinstance(override, list):
            default = self.default if _member(self.default, values) else values[0]
            return Choice(tuple(values), default=default, help=self.help)
        return Fixed(override, help=self.help)


@dataclass(frozen=True)
class Fixed:
    """A hyperparameter pinned to one value: recorded in the configuration, never suggested."""

    value: Any
    help: str = ""
    kind = "fixed"

    @property
    def default(self) -> Any:
        return self.value

    def suggest(self, trial: Suggester, name: str) -> Any:
        return self.value

    def contains(self, value: Any) -> bool:
        return value == self.value

    def describe(self) -> str:
        return f"fixed {self.value!r}"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "value": self.value, "default": self.value, "help": self.help}

    def narrow(self, override: Any) -> Param:
        if override != self.value:
            raise OverrideError(f"this parameter is fixed at {self.value!r}")
        return self


@dataclass(frozen=True)
class Text:
    """A free-text setting (a path, a column name): set in the study file, never searched.

    With `is_path`, a relative value is resolved against the study file's folder.
    """

    default: str = ""
    help: str = ""
    is_path: bool = False
    kind = "text"

    def suggest(self, trial: Suggester, name: str) -> str:
        return self.default

    def contains(self, value: Any) -> bool:
        return isinstance(value, str)

    def describe(self) -> str:
        return f"{'a file path' if self.is_path else 'text'} (default {self.default!r})"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "default": self.default, "help": self.help, "is_path": self.is_path}

    def narrow(self, override: Any) -> Param:
        if not isinstance(override, str):
            raise OverrideError(f"must be a string, got {override!r}")
        return Fixed(override, help=self.help)


Param = Float | Int | Choice | Fixed | Text
