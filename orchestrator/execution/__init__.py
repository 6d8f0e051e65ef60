"""Running a study: opening it (study_session), the supervisor and its workers (supervisor, worker, handshake),
sharing one study between processes (coordination, lock_server), cluster launchers (launchers/) and retraining
one trial (rerun).

Layer 8: imports everything below it (trial, tracking, study, training, search, api, base).
"""
