"""Helpers for tests: tiny checkpoints and generated images (no data files needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from forensics_app.core.architectures import build_model
from forensics_app.core.detector import CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION

TINY_ARCH = {"name": "resnet50", "num_outputs": 1, "input_transform": "none", "stages": 1}


def save_tiny_checkpoint(path: Path, arch: dict | None = None, seed: int = 0,
                         fp16: bool = True, meta: dict | None = None) -> Path:
    torch.manual_seed(seed)
    arch = dict(arch or TINY_ARCH)
    model = build_model(arch)
    # Make the untrained head produce spread-out scores.
    torch.nn.init.normal_(model.fc.weight, 0.0, 0.5)
    state = {k: (v.half() if fp16 and v.is_floating_point() else v)
             for k, v in model.state_dict().items()}
    full_meta = {"architecture": arch, "threshold": 0.5, "inconclusive_band": 0.05,
                 "version": "test", "training": {"recipe": "random weights (test)"}}
    full_meta.update(meta or {})
    torch.save({"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_FORMAT_VERSION,
                "state_dict": state, "meta": full_meta}, path)
    return path


def make_image(size: tuple[int, int], seed: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((w, h), Image.BILINEAR)
    noise = rng.integers(-20, 20, (h, w, 3))
    arr = np.clip(np.asarray(img, dtype=np.int32) + noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(arr)
    return img if mode == "RGB" else img.convert(mode)


def make_images(folder: Path, n: int, size: tuple[int, int] | None = None,
                seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    sizes = [(96, 80), (128, 128), (100, 140), (128, 128)]
    for i in range(n):
        s = size or sizes[i % len(sizes)]
        ext = ".png" if i % 2 == 0 else ".jpg"
        p = folder / f"img_{i:03d}{ext}"
        make_image(s, seed + i).save(p)
        paths.append(p)
    return paths
