"""Workers placed by a cluster's scheduler: whether the nodes can share a study (sharing.py), a SLURM job array
(slurm.py), Ray actors (ray.py), and the supervisor that runs a study on them (cluster_run.py). The `launcher:`
settings of a study file are the study package's (orchestrator/study/launch_settings.py)."""
