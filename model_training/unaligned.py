"""Unaligned real-generator sets as a second training source, with shortcut controls.

The generator outputs in ``train/fake`` (SD 1.4, SD 1.5, StyleGAN2) are not paired with any
real photo, so their content, format and framing differ from the photos in ways that have
nothing to do with generation (``../shared/data/README.md``, "Known shortcut risks"). Each
item therefore pairs one generated tile with one training photo and processes both the same
way *before the network sees them*:

1. **Framing**: both are random ``crop`` x ``crop`` windows (the photo is never shown whole,
   so size, aspect ratio and letterboxing carry nothing); same flip draw.
2. **Format**: both are re-encoded as JPEG at one shared quality ~ U{``norm_q``} -- the photo's
   camera JPEG and the tile's JPEG/WebP/PNG history are both overwritten by a fresh encode at
   a random grid offset, so "PNG/WebP vs JPEG" and "these quantisation tables" stop separating.
3. **Degradation**: then the paper's blur/JPEG augmentation, drawn once for the pair.

Content cannot be fixed by processing: the ``exclude`` list drops StyleGAN2 models whose
outputs are not photographs, and :func:`audit_loader` measures what is left (ROC AUC of the
trivial cues on what the loader feeds).
"""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from forensics_app.core.loading import IMAGE_EXTENSIONS
from forensics_app.core.preprocess import to_normalized_tensor
from model_training.augment import AugmentConfig, apply_params, draw_params
from model_training.paired import item_rng

# StyleGAN2 models in train/fake/stylegan2 whose outputs are drawings, paintings, maps or
# textures rather than photographs (content shortcut: "painting = generated").
NON_PHOTO_STYLEGAN2 = (
    "abstract_art", "anime_portraits", "figure_drawings", "floor_plans", "fursona", "maps",
    "modern_art", "more_abstract_art", "my_little_pony", "painting_faces", "textures",
    "ukiyoe_faces", "wikiart",
)


@dataclass
class UnalignedConfig:
    fake_dirs: list[str] = field(default_factory=list)
    exclude_prefixes: list[str] = field(default_factory=lambda: list(NON_PHOTO_STYLEGAN2))
    norm_q: tuple[int, int] = (65, 100)
    holdout_fraction: float = 0.1  # generated tiles kept out of training, for the audit


def tile_split(name: str, holdout_fraction: float) -> str:
    u = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if u < holdout_fraction else "train"


def list_fakes(cfg: UnalignedConfig, split: str = "train") -> list[Path]:
    out: list[Path] = []
    for d in cfg.fake_dirs:
        root = Path(d)
        if not root.is_dir():
            raise FileNotFoundError(f"generated-image folder not found: {root}")
        for p in sorted(root.iterdir()):
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            if any(p.name.startswith(x + "_r") for x in cfg.exclude_prefixes):
                continue
            if tile_split(f"{root.name}/{p.name}", cfg.holdout_fraction) == split:
                out.append(p)
    return out


def jpeg_normalise(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return im.convert("RGB")


class UnalignedPairs(Dataset):
    """Item ``i``: generated tile ``i`` and a random training photo, processed identically."""

    def __init__(self, fakes: Sequence[Path | str], reals: Sequence[Path | str], crop: int = 128,
                 augment: AugmentConfig | None = None, norm_q: tuple[int, int] = (65, 100),
                 deterministic_seed: int | None = None):
        if not fakes or not reals:
            raise ValueError("unaligned pairs need at least one generated and one real image")
        self.fakes = [Path(p) for p in fakes]
        self.reals = [Path(p) for p in reals]
        self.crop = crop
        self.augment = augment or AugmentConfig(blur_prob=0.0, jpg_prob=0.0)
        self.norm_q = norm_q
        self.deterministic_seed = deterministic_seed

    def __len__(self) -> int:
        return len(self.fakes)

    def _rng(self, index: int) -> random.Random:
        return item_rng(self.deterministic_seed, index)

    @staticmethod
    def _crop(img: Image.Image, c: int, rng: random.Random) -> Image.Image:
        w, h = img.size
        c = min(c, w, h)
        x, y = rng.randrange(w - c + 1), rng.randrange(h - c + 1)
        return img.crop((x, y, x + c, y + c))

    def images(self, index: int) -> tuple[Image.Image, Image.Image]:
        """The (real, fake) pair exactly as the network will see it, before normalisation."""
        rng = self._rng(index)
        with Image.open(self.reals[rng.randrange(len(self.reals))]) as r:
            real = r.convert("RGB")
        with Image.open(self.fakes[index]) as f:
            fake = f.convert("RGB")
        c = min(self.crop, *real.size, *fake.size)
        real, fake = self._crop(real, c, rng), self._crop(fake, c, rng)
        if rng.random() < 0.5:
            real = real.transpose(Image.FLIP_LEFT_RIGHT)
            fake = fake.transpose(Image.FLIP_LEFT_RIGHT)
        q = rng.randint(*self.norm_q)
        real, fake = jpeg_normalise(real, q), jpeg_normalise(fake, q)
        params = draw_params(self.augment, rng)
        return apply_params(real, params), apply_params(fake, params)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        real, fake = self.images(index)
        return (torch.stack([to_normalized_tensor(real), to_normalized_tensor(fake)]),
                torch.tensor([0.0, 1.0]))


def audit_loader(dataset: Dataset, n: int = 200, seed: int = 0) -> dict[str, float]:
    """ROC AUC of the trivial cues on what a pair dataset feeds the network.

    ``dataset`` must expose ``images(index)`` -> (real, fake) PIL images after all processing.
    Each image is re-encoded losslessly for the file-size cue, so the size measures content
    complexity only (the loader's JPEG is already baked into the pixels).
    """
    from sklearn.metrics import roc_auc_score

    from model_training.fakes.cues import image_cue_values

    rng = random.Random(seed)
    idx = rng.sample(range(len(dataset)), min(n, len(dataset)))
    rows = [(image_cue_values(im), label) for i in idx
            for im, label in zip(dataset.images(i), (0, 1), strict=True)]
    y = np.array([label for _, label in rows])
    return {cue: round(float(roc_auc_score(y, [r[cue] for r, _ in rows])), 3) for cue in rows[0][0]}


def audit_files(reals: Sequence[Path], fakes: Sequence[Path], n: int = 200,
                seed: int = 0) -> dict[str, float]:
    """ROC AUC of the trivial cues on the files as stored (before any processing)."""
    from sklearn.metrics import roc_auc_score

    from model_training.fakes.cues import cue_values

    rng = random.Random(seed)
    r = [cue_values(Path(p)) for p in rng.sample(list(reals), min(n, len(reals)))]
    f = [cue_values(Path(p)) for p in rng.sample(list(fakes), min(n, len(fakes)))]
    y = np.r_[np.zeros(len(r)), np.ones(len(f))]
    out = {cue: round(float(roc_auc_score(y, [v[cue] for v in r + f])), 3) for cue in r[0]}
    return out
