"""How the search chooses: the search space (space), samplers and pruners by name (samplers), BOHB's model (bohb),
pause-and-resume successive halving (promotion) with its in-trial rung check (rungs), and the Lightning callback of
Optuna's stopping pruners (stopping).

Layer 3: imports api and the base modules.
"""
