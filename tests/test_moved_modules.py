"""Modules moved into packages by job keep their old import paths (orchestrator/moved.py): a best model pickled
before the move names its classes by the old modules, and must still load."""

from __future__ import annotations

import importlib
import pickle

import pytest

from orchestrator.moved import MOVED


@pytest.mark.parametrize(
    ("old", "name", "home"),
    [
        ("orchestrator.serving", "ServingModel", "orchestrator.tracking.serving"),
        ("orchestrator.model", "EmbeddedTokens", "orchestrator.training.assembly"),
        ("automl_plugins.image_folder", "ImageEncoder", "automl_plugins.image_encoding"),
    ],
)
def test_a_class_pickled_under_its_old_module_loads_as_the_class_at_its_new_home(old, name, home):
    pickled = f"c{old}\n{name}\n.".encode()  # protocol 0: a reference to a class by module and name
    assert pickle.loads(pickled) is getattr(importlib.import_module(home), name)


def test_every_old_path_is_the_same_module_object_as_its_new_home():
    for old, new in MOVED.items():
        assert importlib.import_module(old) is importlib.import_module(new), old


def test_an_old_path_that_never_existed_is_still_an_import_error():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("orchestrator.no_such_module")
