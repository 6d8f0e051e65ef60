"""Built-in training-batch augmentations, each switched on/off by a study (`search: augmentations: [...]`).

They run on every training mini-batch on the training device, before the network; never on validation or test
data. The torch code lives in `augment_ops`, imported when a trial builds an augmentation.
"""

from orchestrator import Augmentation, Choice, Float, Int, hookimpl

from . import deferred

FLOAT_INPUTS = ("vector", "sequence", "image")


@hookimpl
def register_augmentations(register):
    register(_random_crop_augmentation())
    register(_flip_augmentation())
    register(_cutout_augmentation())
    register(_shift_augmentation())
    register(_noise_augmentation())
    register(_time_mask_augmentation())
    register(_mixup_augmentation())


def _random_crop_augmentation() -> Augmentation:
    return Augmentation(
        "random_crop",
        "Images: pad each side, then crop back to the image's size at a random offset per sample.",
        params={
            "padding": Int(1, 16, default=2, help="pixels added on each side (the largest shift)"),
            "mode": Choice(
                ("reflect", "zero", "replicate"),
                default="reflect",
                help="what the padding holds: the image mirrored, zeros, or the edge pixels",
            ),
        },
        build=deferred("augment_ops", "build_random_crop"),
        input_kinds=("image",),
    )


def _flip_augmentation() -> Augmentation:
    return Augmentation(
        "flip",
        "Images: mirror left-right, each sample with probability p.",
        params={"p": Float(0.0, 1.0, default=0.5, help="probability that a sample is flipped")},
        build=deferred("augment_ops", "build_flip"),
        input_kinds=("image",),
    )


def _cutout_augmentation() -> Augmentation:
    return Augmentation(
        "cutout",
        "Images: zero a square (all channels) at a random position inside the image, per sample.",
        params={
            "size": Float(
                0.1,
                1.0,
                default=0.5,
                help="side of the square as a share of the image's shorter side (rounded, at least 1 pixel)",
            ),
            "p": Float(0.0, 1.0, default=0.5, help="probability that a sample gets a square"),
        },
        build=deferred("augment_ops", "build_cutout"),
        input_kinds=("image",),
    )


def _shift_augmentation() -> Augmentation:
    return Augmentation(
        "shift",
        "Sequences: move each sample by a random number of steps, zero-filled or wrapped around.",
        params={
            "max_shift": Int(1, 64, default=4, help="largest shift, in steps, either way"),
            "mode": Choice(
                ("zero", "roll"),
                default="zero",
                help="zero: the steps moved in are zeros; roll: the steps moved out wrap around",
            ),
        },
        build=deferred("augment_ops", "build_shift"),
        input_kinds=("sequence",),
    )


def _noise_augmentation() -> Augmentation:
    return Augmentation(
        "noise",
        "Add Gaussian noise to the (standardised) inputs.",
        params={"std": Float(0.001, 1.0, default=0.1, log=True, help="standard deviation of the noise")},
        build=deferred("augment_ops", "build_noise"),
        input_kinds=FLOAT_INPUTS,
    )


def _time_mask_augmentation() -> Augmentation:
    return Augmentation(
        "time_mask",
        "Sequences or tokens: zero a random span of steps per sample (tokens: the padding id 0).",
        params={"width": Int(1, 64, default=8, help="longest span masked, in steps (at most the length)")},
        build=deferred("augment_ops", "build_time_mask"),
        input_kinds=("sequence", "tokens"),
    )


def _mixup_augmentation() -> Augmentation:
    return Augmentation(
        "mixup",
        "Mix each sample with a shuffled one (weight ~ Beta(alpha, alpha)); the loss mixes their targets.",
        params={
            "alpha": Float(
                0.05,
                4.0,
                default=0.2,
                log=True,
                help="Beta(alpha, alpha): small keeps weights near 0 or 1, 1 is uniform",
            )
        },
        build=deferred("augment_ops", "build_mixup"),
        input_kinds=FLOAT_INPUTS,
    )
