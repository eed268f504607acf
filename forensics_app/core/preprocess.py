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
    SAMPLE = "sample"  # triage: a fixed, seeded sample of full-resolution tiles


# Smallest tile or crop side accepted: the ResNet reduces its input 32-fold.
MIN_INPUT_SIDE = 32


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
    # Triage (``mode="sample"``): how many tiles of the full-mode grid to score, and the seed
    # of the stratified draw (fixed, so the same image always gets the same tiles).
    sample_tiles: int = 8
    sample_seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", PreprocessMode(self.mode))
        if self.sample_tiles < 1:
            raise ValueError("sample_tiles must be >= 1")
        for name in ("tile_size", "crop_size"):
            if getattr(self, name) < MIN_INPUT_SIDE:
                raise ValueError(f"{name} must be >= {MIN_INPUT_SIDE} pixels (the network "
                                 f"reduces its input 32-fold), not {getattr(self, name)}")
        if not 0 <= self.sample_seed < 2**63:
            raise ValueError(f"sample_seed must be between 0 and 2**63-1, not {self.sample_seed}")


@dataclass
class PreparedImage:
    """Network inputs for one image: one input, or one per tile (with its box).

    Tiles are cut lazily from the one decoded 8-bit image (``source``): a float copy of the
    whole image is never made, and :meth:`release` drops the decoded image once every tile
    has been taken, so a large photo costs its 8-bit decode plus one batch of tiles.
    """

    source: Image.Image | None
    boxes: list[tuple[int, int, int, int]]  # (left, top, width, height) in the scored image
    mode_used: str
    notes: list[str] = field(default_factory=list)
    scored_size: tuple[int, int] = (0, 0)  # (width, height) of the image the boxes refer to

    @property
    def n_tiles(self) -> int:
        return len(self.boxes)

    def tile_shape(self, i: int) -> tuple[int, int, int]:
        _, _, w, h = self.boxes[i]
        return (3, h, w)

    def tile(self, i: int) -> torch.Tensor:
        """Normalised float tensor (3, h, w) of box ``i``, cut from the 8-bit image."""
        if self.source is None:
            raise RuntimeError("the decoded image was already released")
        x, y, w, h = self.boxes[i]
        if (x, y, w, h) == (0, 0, *self.source.size):
            return to_normalized_tensor(self.source)
        return to_normalized_tensor(self.source.crop((x, y, x + w, y + h)))

    @property
    def tensors(self) -> list[torch.Tensor]:
        """Every input at once (small images, tests, Grad-CAM of one tile); scans use tile()."""
        return [self.tile(i) for i in range(self.n_tiles)]

    def release(self) -> None:
        """Drop the decoded image (tiles already cut stay valid)."""
        self.source = None


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
        return PreparedImage(img, [(left, top, *crop.size)], f"center-crop-{cfg.crop_size}",
                             notes, (w, h))
    if mode is PreprocessMode.SAMPLE:
        grid = tile_boxes(w, h, cfg.tile_size)
        if len(grid) > cfg.sample_tiles:
            boxes = sample_tile_boxes(w, h, cfg.tile_size, cfg.sample_tiles, cfg.sample_seed)
            share = sum(bw * bh for _, _, bw, bh in boxes) / (w * h)
            notes.append(
                f"triage sample: {len(boxes)} of {len(grid)} full-resolution {cfg.tile_size}px "
                f"tiles (seed {cfg.sample_seed}, {share:.0%} of the pixels) scored, not the whole "
                "image; flag for a full scan before relying on it")
            return PreparedImage(img, boxes, sample_mode_name(cfg), notes, (w, h))
        notes.append(f"triage sample: the image has only {len(grid)} tile(s) of "
                     f"{cfg.tile_size}px, so all of it was scored")
        mode = PreprocessMode.FULL
    if mode is PreprocessMode.FULL and w * h <= cfg.max_full_pixels:
        return PreparedImage(img, [(0, 0, w, h)], "full", notes, (w, h))
    if mode is PreprocessMode.FULL:
        notes.append(f"{w}x{h} exceeds the {cfg.max_full_pixels:,}-pixel full-image budget; tiled")
    # Tiles are cut from the 8-bit image when scored, so no float copy of the whole image exists.
    return PreparedImage(img, tile_boxes(w, h, cfg.tile_size), f"tiles-{cfg.tile_size}", notes,
                         (w, h))


def sample_mode_name(cfg: PreprocessConfig) -> str:
    """The ``preprocessing`` value of a triage row: what was sampled, and how."""
    return f"sample-{cfg.sample_tiles}x{cfg.tile_size}-seed{cfg.sample_seed}"


def sample_tile_boxes(
    width: int, height: int, tile: int, n: int, seed: int = 0
) -> list[tuple[int, int, int, int]]:
    """A fixed, seeded, spread-out sample of ``n`` boxes from the full-mode tile grid.

    The grid's columns and rows are split into about ``n`` strata (in proportion to the
    image's aspect) and one tile is drawn in each, so the sample spans the whole image; the
    draw depends only on the seed and the image size, never on its content. Tiles are the
    grid's own, at full resolution, so a sampled tile scores exactly as in a full scan.
    """
    grid = tile_boxes(width, height, tile)
    xs = sorted({b[0] for b in grid})
    ys = sorted({b[1] for b in grid})
    if len(grid) <= n:
        return grid
    # Strata: kx * ky ~ n, kx / ky ~ columns / rows, each within the grid's extent.
    kx = max(1, min(len(xs), round(math.sqrt(n * len(xs) / len(ys)))))
    ky = max(1, min(len(ys), math.ceil(n / kx)))
    kx = max(1, min(len(xs), math.ceil(n / ky)))
    rng = np.random.default_rng([seed, width, height, tile])
    col_bands = np.array_split(np.arange(len(xs)), kx)
    row_bands = np.array_split(np.arange(len(ys)), ky)
    cells = [(int(rng.choice(cb)), int(rng.choice(rb))) for rb in row_bands for cb in col_bands]
    if len(cells) > n:  # more strata than asked: keep a seeded, evenly spaced subset
        keep = np.linspace(0, len(cells) - 1, n).round().astype(int)
        cells = [cells[i] for i in keep]
    tw, th = grid[0][2], grid[0][3]
    return [(xs[c], ys[r], tw, th) for c, r in sorted(set(cells), key=lambda cr: (cr[1], cr[0]))]
