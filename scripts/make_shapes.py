"""Write a small labelled image folder for `dataset: image_folder`: circles and squares (and triangles), filled
in a random colour at a random place on a noisy background, as PNG and JPEG files, one sub-folder per class.

    .venv/bin/python scripts/make_shapes.py studies/shapes [--per-class 100] [--size 24] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")


def write_shapes(
    root: Path, per_class: int = 100, size: int = 24, seed: int = 0, shapes: tuple[str, ...] = SHAPES
) -> None:
    rng = np.random.default_rng(seed)
    side = max(4, size // 2)
    for shape in shapes:
        (root / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = Image.fromarray((rng.random((size, size, 3)) * 60).astype(np.uint8))
            draw = ImageDraw.Draw(image)
            x, y = (int(v) for v in rng.integers(1, size - side - 1, size=2))
            colour = tuple(int(c) for c in rng.integers(150, 255, size=3))
            if shape == "circle":
                draw.ellipse((x, y, x + side, y + side), fill=colour)
            elif shape == "square":
                draw.rectangle((x, y, x + side, y + side), fill=colour)
            else:
                draw.polygon([(x, y + side), (x + side, y + side), (x + side // 2, y)], fill=colour)
            image.save(root / shape / f"{i}.{'png' if i % 2 else 'jpg'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--size", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_shapes(args.folder, args.per_class, args.size, args.seed)
    print(
        f"wrote {args.per_class * len(SHAPES)} images of {args.size}x{args.size} in {args.folder}: "
        + ", ".join(f"{shape}/" for shape in SHAPES)
    )


if __name__ == "__main__":
    main()
