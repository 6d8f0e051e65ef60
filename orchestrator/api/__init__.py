"""The public plugin API: declared hyperparameters (params), the component specs plugins register (components),
the hooks they implement (hookspecs) and the registry that discovers and holds them (registry).

Layer 2 of orchestrator (see ARCHITECTURE.md): imports only the base modules (errors, records, ...). Plugins
import these names from `orchestrator` itself (`from orchestrator import Float, hookimpl`).
"""
