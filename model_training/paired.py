"""Content-aligned training pairs: a real crop and its fake at the same place, same batch.

Each item is one (real, fake) pair from the fake-data engine's manifest. Both images get the
same crop window, the same flip and the same blur/JPEG draw (the paper's augmentation), so
nothing but the generator separates them. Items collate to ``(images, labels)`` with images
(2B, 3, C, C) and labels (2B,) -- 0 for real, 1 for fake -- the layout the training loop takes.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from forensics_app.core.preprocess import to_normalized_tensor
from model_training.augment import AugmentConfig, apply_params, draw_params


def select_pairs(manifest: dict, splits: Iterable[str] = ("train",),
                 generators: Iterable[str] | None = None) -> list[dict]:
    splits = set(splits)
    gens = set(generators) if generators is not None else None
    return [p for p in manifest["pairs"]
            if p["split"] in splits and (gens is None or p["generator"] in gens)]


def item_rng(deterministic_seed: int | None, index: int) -> random.Random:
    """Per-item RNG: fixed per (seed, index) for validation, else drawn from torch's RNG."""
    if deterministic_seed is not None:
        return random.Random(deterministic_seed * 1_000_003 + index)
    # torch's RNG is seeded per DataLoader worker and epoch: reproducible, never repeated.
    return random.Random(int(torch.randint(0, 2**62, (1,)).item()))


class PairedCrops(Dataset):
    def __init__(self, root: Path | str, pairs: list[dict], crop: int = 96,
                 augment: AugmentConfig | None = None, flip: bool = True,
                 deterministic_seed: int | None = None):
        self.root = Path(root)
        self.pairs = pairs
        self.crop = crop
        self.augment = augment or AugmentConfig(blur_prob=0.0, jpg_prob=0.0)
        self.flip = flip
        # Set for validation: every item then draws the same crop/augmentation every time.
        self.deterministic_seed = deterministic_seed

    def __len__(self) -> int:
        return len(self.pairs)

    def _rng(self, index: int) -> random.Random:
        return item_rng(self.deterministic_seed, index)

    def images(self, index: int) -> tuple[Image.Image, Image.Image]:
        """The (real, fake) pair exactly as the network will see it, before normalisation."""
        pair = self.pairs[index]
        rng = self._rng(index)
        with Image.open(self.root / pair["real"]) as r, Image.open(self.root / pair["fake"]) as f:
            real, fake = r.convert("RGB"), f.convert("RGB")
        if real.size != fake.size:
            raise ValueError(f"pair {pair} is not aligned: {real.size} vs {fake.size}")
        w, h = real.size
        c = min(self.crop, w, h)
        x, y = rng.randrange(w - c + 1), rng.randrange(h - c + 1)
        box = (x, y, x + c, y + c)
        real, fake = real.crop(box), fake.crop(box)
        if self.flip and rng.random() < 0.5:
            real = real.transpose(Image.FLIP_LEFT_RIGHT)
            fake = fake.transpose(Image.FLIP_LEFT_RIGHT)
        params = draw_params(self.augment, rng)
        return apply_params(real, params), apply_params(fake, params)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        real, fake = self.images(index)
        return (torch.stack([to_normalized_tensor(real), to_normalized_tensor(fake)]),
                torch.tensor([0.0, 1.0]))


def collate_pairs(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.cat([b[0] for b in batch])
    labels = torch.cat([b[1] for b in batch])
    return images, labels
