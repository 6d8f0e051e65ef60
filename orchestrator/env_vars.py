"""Environment variables every `automl` command honours (a module without heavy imports, for a fast CLI)."""

STORAGE_ENV = "AUTOML_STORAGE"  # the Optuna storage URL (keeps a password off the process list)
TRACKING_ENV = "AUTOML_TRACKING_URI"  # the MLflow tracking URI
TIMINGS_ENV = "AUTOML_TIMINGS"  # set to 1: workers print when their data is ready (wall clock), for benchmarks
