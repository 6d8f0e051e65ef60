"""Write scikit-learn's handwritten digits (8x8, 16 grey levels) as a labelled PNG folder for `dataset:
image_folder`, upscaled to `size` x `size`, one sub-folder per digit: the small image folder on which issue 24
found the CNN's defaults learning little (bench/cnn_defaults.py).

    .venv/bin/python scripts/make_digits.py data/digits [--per-class 56] [--size 16]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def write_digits(root: Path, per_class: int = 56, size: int = 16) -> None:
    """The first `per_class` digits of each class as grey PNGs (nearest-neighbour upscaling)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for label in range(10):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        for i in np.flatnonzero(digits.target == label)[:per_class]:
            pixels = (digits.images[i] * (255 / 16)).astype(np.uint8)
            Image.fromarray(pixels).resize((size, size), Image.NEAREST).save(folder / f"{i}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--per-class", type=int, default=56)
    parser.add_argument("--size", type=int, default=16)
    args = parser.parse_args()
    write_digits(args.folder, args.per_class, args.size)
    print(f"wrote {args.per_class} PNGs of {args.size}x{args.size} per digit in {args.folder}: 0/ ... 9/")


if __name__ == "__main__":
    main()
