"""A study as the user writes it and as it is stored: the study file and its schema (studyfile, launch_settings)
and Optuna's storage (storage).

Layer 5: imports training (tasks, for the metrics a study file may name), search, api and the base modules.
"""
