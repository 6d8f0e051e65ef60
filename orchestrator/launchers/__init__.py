"""Workers placed by a cluster's scheduler: the `launcher:` settings (settings.py), whether the nodes can share a
study (sharing.py), a SLURM job array (slurm.py), Ray actors (ray.py), and the supervisor that runs a study on
them (cluster_run.py)."""
