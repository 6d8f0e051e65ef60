"""Training one configuration: assembling the chosen components into a LightningModule (assembly), Lightning's fit
(fit), batches in memory or streamed (batches, streaming), the GAN's step (gan), tasks and their metrics (tasks),
properties of a trained network (network_metrics), checkpoints, devices, threads and what a run depends on
(runtime).

Layer 4: imports search, api and the base modules; knows nothing of studies, tracking or workers.
"""
