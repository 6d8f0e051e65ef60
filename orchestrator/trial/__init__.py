"""One trial: compute it and record it (run), show it (progress), and recover one whose worker died (recovery).

Layer 7: imports tracking, study, training, search, api and the base modules; never a worker or a supervisor.
"""
