"""The generative task's built-ins: the `gan` architecture, adversarial losses, a toy data set (their torch code
is in automl_plugins.gan_networks, imported when a trial builds them)."""

from orchestrator import Architecture, Dataset, Float, Int, Loss, hookimpl

from . import deferred


@hookimpl
def register_architectures(register):
    register(
        Architecture(
            "gan",
            "Generative adversarial network: MLP generator and discriminator.",
            params={
                "latent_dim": Int(1, 128, default=8, log=True, help="size of the generator's noise input"),
                "width": Int(8, 512, default=128, log=True, help="units per hidden layer"),
                "depth": Int(1, 4, default=2, help="hidden layers in each network"),
            },
            build=deferred("gan_networks", "build_gan"),
            input_kinds=("vector", "sequence", "image"),
            tasks=("generative",),
        )
    )


@hookimpl
def register_losses(register):
    register(
        Loss(
            "gan_bce",
            "Non-saturating GAN loss (binary cross-entropy on logits).",
            build=deferred("gan_networks", "non_saturating_bce"),
            tasks=("generative",),
        )
    )
    register(
        Loss(
            "gan_lsgan",
            "Least-squares GAN loss.",
            build=deferred("gan_networks", "least_squares"),
            tasks=("generative",),
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            "rings",
            "Synthetic 2-D points on a ring of Gaussian modes, for generative models.",
            params={
                "modes": Int(2, 25, default=8, help="number of Gaussian modes on the ring"),
                "noise": Float(0.01, 0.5, default=0.05, help="standard deviation of each mode"),
                "samples": Int(200, 50000, default=4000, help="points generated (split 70/15/15)"),
            },
            build=deferred("gan_networks", "build_rings"),
            input_kind="vector",
            tasks=("generative",),
        )
    )
