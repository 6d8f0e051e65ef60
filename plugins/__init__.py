"""The built-in component library, installed as `automl_plugins`.

Each module is an ordinary plugin registered through the `automl` entry-point group,
written only against `orchestrator`'s public API.
"""
