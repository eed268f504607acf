"""Tiny synthetic data sets the training tests make: smooth images vs their nearest-neighbour
x2 up-sampled copies (same content, trivially separable by the 2x2 block pattern)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

TINY_RESNET = {"name": "resnet18", "num_outputs": 1, "input_transform": "none", "stages": 1}


def smooth_image(size: int, seed: int) -> Image.Image:
    """A smooth RGB image: low-resolution noise up-sampled bicubically."""
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (size // 3 + 2, size // 3 + 2, 3), dtype=np.uint8)
    return Image.fromarray(low).resize((size, size), Image.BICUBIC)


def nearest_upsampled(img: Image.Image) -> Image.Image:
    """The same picture, half resolution then nearest-neighbour x2: 2x2 pixel blocks."""
    w, h = img.size
    return img.resize((w // 2, h // 2), Image.BILINEAR).resize((w, h), Image.NEAREST)


def make_pair_folder(folder: Path, n: int, size: int = 48, seed: int = 0) -> Path:
    """``folder/0_real`` smooth images and ``folder/1_fake`` their up-sampled copies (PNG)."""
    (folder / "0_real").mkdir(parents=True, exist_ok=True)
    (folder / "1_fake").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        real = smooth_image(size, seed + i)
        real.save(folder / "0_real" / f"{i:03d}.png")
        nearest_upsampled(real).save(folder / "1_fake" / f"{i:03d}.png")
    return folder


def make_forensynths(root: Path, classes=("cat", "dog"), n_train: int = 16, n_val: int = 8,
                     size: int = 48) -> Path:
    """``root/train/<class>/0_real|1_fake`` and ``root/val/<class>/...``."""
    for c, cls in enumerate(classes):
        make_pair_folder(root / "train" / cls, n_train, size, seed=1000 * c)
        make_pair_folder(root / "val" / cls, n_val, size, seed=1000 * c + 500)
    return root
