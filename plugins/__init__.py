"""The built-in component library, installed as `automl_plugins`.

Each registering module (activations, architectures, datasets, gan, losses, optimizers, regularizers,
schedules) is an ordinary plugin registered through the `automl` entry-point group, written only against
`orchestrator`'s public API. They import no torch: the code that builds networks lives in modules imported
when a component is built (`networks`, `layers`, `gan_networks`), so that `automl plugins` and `automl
validate` start in well under a second.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def deferred(module: str, function: str) -> Callable[..., Any]:
    """`automl_plugins.<module>.<function>`, imported on its first call."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(f"{__name__}.{module}"), function)(*args, **kwargs)

    call.__name__ = call.__qualname__ = function
    call.__doc__ = f"{function} of automl_plugins.{module} (imported when first called)"
    return call
