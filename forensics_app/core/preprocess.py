"""The one preprocessing preset shared by the app, the CLI, evaluation and training.

The paper's test protocol is the default: the full image, not resized, ImageNet normalisation.
Centre-crop, tiling and up-scaling of tiny images are explicit choices recorded on each result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


class PreprocessMode(StrEnum):
    FULL = "full"
    CENTER_CROP = "center-crop"
    TILES = "tiles"


@dataclass(frozen=True)
class PreprocessConfig:
    mode: PreprocessMode = PreprocessMode.FULL
    crop_size: int = 224
    tile_size: int = 512
    # Images whose shorter side is below this are up-scaled (bicubic) so the network sees
    # enough pixels; the result records it.
    min_side: int = 64
    # Full-image mode tiles images beyond this many pixels instead of exhausting memory.
    max_full_pixels: int = 4_194_304  # 2048 x 2048

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", PreprocessMode(self.mode))


@dataclass
class PreparedImage:
    """Network inputs for one image: one tensor, or one per tile (with its box)."""

    tensors: list[torch.Tensor]
    boxes: list[tuple[int, int, int, int]]  # (left, top, width, height) in the scored image
    mode_used: str
    notes: list[str] = field(default_factory=list)
    scored_size: tuple[int, int] = (0, 0)  # (width, height) of the image the boxes refer to


def to_normalized_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float tensor (3, H, W) with ImageNet normalisation."""
    arr = np.array(img, dtype=np.uint8)  # a writable copy
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    t = torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)
    return t.sub_(_MEAN).div_(_STD)


def denormalize(t: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`to_normalized_tensor` -> float RGB array (H, W, 3) in [0, 1]."""
    x = (t.detach().cpu().float() * _STD + _MEAN).clamp(0, 1)
    return x.permute(1, 2, 0).numpy()


def center_crop(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    left = max(0, (w - size) // 2)
    top = max(0, (h - size) // 2)
    return img.crop((left, top, left + min(size, w), top + min(size, h)))


def tile_boxes(width: int, height: int, tile: int) -> list[tuple[int, int, int, int]]:
    """Non-overlapping tiles covering the image; the last row/column is aligned to the edge."""

    def starts(extent: int) -> list[int]:
        if extent <= tile:
            return [0]
        pos = list(range(0, extent - tile + 1, tile))
        if pos[-1] + tile < extent:
            pos.append(extent - tile)
        return pos

    tw, th = min(tile, width), min(tile, height)
    return [(x, y, tw, th) for y in starts(height) for x in starts(width)]


def _upscale_if_small(
    img: Image.Image, min_side: int, max_pixels: int, notes: list[str]
) -> Image.Image:
    w, h = img.size
    if min(w, h) >= min_side:
        return img
    scale = min_side / min(w, h)
    # A sliver (say 60000x1) is small on disk; scaled to the minimum side it would be billions
    # of pixels. Never scale past the full-image pixel budget.
    budget_scale = math.sqrt(max_pixels / (w * h))
    if scale > budget_scale:
        scale = budget_scale
        new = (max(1, math.floor(w * scale)), max(1, math.floor(h * scale)))
        if scale <= 1.0 or new == (w, h):
            notes.append(f"{w}x{h} is below the {min_side}px minimum but too elongated to "
                         "upscale within the pixel budget; scored as is")
            return img
        notes.append(f"upscaled {w}x{h} -> {new[0]}x{new[1]} (below {min_side}px minimum; "
                     f"capped by the {max_pixels:,}-pixel budget)")
        return img.resize(new, Image.BICUBIC)
    new = (max(min_side, round(w * scale)), max(min_side, round(h * scale)))
    notes.append(f"upscaled {w}x{h} -> {new[0]}x{new[1]} (below {min_side}px minimum)")
    return img.resize(new, Image.BICUBIC)


def prepare_image(img: Image.Image, cfg: PreprocessConfig) -> PreparedImage:
    """Turn a decoded RGB image into network input(s) according to the preset."""
    notes: list[str] = []
    img = _upscale_if_small(img, cfg.min_side, cfg.max_full_pixels, notes)
    w, h = img.size
    mode = cfg.mode
    if mode is PreprocessMode.CENTER_CROP:
        crop = center_crop(img, cfg.crop_size)
        if crop.size != (cfg.crop_size, cfg.crop_size):
            notes.append(f"image smaller than crop {cfg.crop_size}; used {crop.size[0]}x{crop.size[1]}")
        left, top = (w - crop.size[0]) // 2, (h - crop.size[1]) // 2
        return PreparedImage(
            [to_normalized_tensor(crop)], [(left, top, *crop.size)], f"center-crop-{cfg.crop_size}",
            notes, (w, h),
        )
    if mode is PreprocessMode.FULL and w * h <= cfg.max_full_pixels:
        return PreparedImage([to_normalized_tensor(img)], [(0, 0, w, h)], "full", notes, (w, h))
    if mode is PreprocessMode.FULL:
        notes.append(f"{w}x{h} exceeds the {cfg.max_full_pixels:,}-pixel full-image budget; tiled")
    # Tile by cropping the 8-bit image, so no float copy of the whole image is ever made.
    boxes = tile_boxes(w, h, cfg.tile_size)
    tensors = [to_normalized_tensor(img.crop((x, y, x + bw, y + bh))) for x, y, bw, bh in boxes]
    return PreparedImage(tensors, boxes, f"tiles-{cfg.tile_size}", notes, (w, h))
