"""What every witness returns, and the bounds every witness works within.

A witness is a classic forensic analysis read beside the detector (error levels, noise,
compression history, the embedded thumbnail, cloned regions). Each one is a function
``analyse(subject) -> WitnessResult``: deterministic, bounded in time and memory (large
images are analysed downscaled or cropped, and the result says so), Qt-free, and it never
writes anything; its map is PNG bytes the caller may save where the output guard allows.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

# Images over this many pixels are analysed downscaled (ELA, noise, copy-move): a 12 MP
# photo then costs what a 4 MP one does, and memory stays a few times the image.
ANALYSIS_MAX_PIXELS = 4_000_000
# Maps are at most this side (PNG bytes in memory, a file in --witness-dir).
MAP_MAX_SIDE = 1024


@dataclass(frozen=True)
class Subject:
    """The decoded, upright RGB image and the bytes it was decoded from (one read)."""

    image: Image.Image
    data: bytes = b""
    format: str = ""  # the decoder's format name ("JPEG", "PNG", ...)


@dataclass
class WitnessResult:
    """One witness's answer. ``detected`` None: the witness does not apply (not a JPEG, no
    thumbnail) or could not run (``error``); ``rule`` states when ``detected`` is True."""

    name: str
    detected: bool | None
    finding: str
    rule: str
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    elapsed_ms: float = 0.0
    map_png: bytes | None = field(default=None, repr=False)
    map_file: str = ""

    def record(self) -> dict[str, Any]:
        """Plain data for JSON Lines, a case and the API (the map's bytes are not in it)."""
        return {"detected": self.detected, "finding": self.finding, "rule": self.rule,
                "figures": self.figures, "notes": list(self.notes), "error": self.error,
                "elapsed_ms": round(self.elapsed_ms, 1), "map_file": self.map_file or None}


Analyse = Callable[[Subject], WitnessResult]


def downscaled(image: Image.Image, max_pixels: int = ANALYSIS_MAX_PIXELS
               ) -> tuple[Image.Image, float, list[str]]:
    """The image at most ``max_pixels`` (area-averaged), its scale factor and a note."""
    w, h = image.size
    if w * h <= max_pixels:
        return image, 1.0, []
    k = (max_pixels / (w * h)) ** 0.5
    size = (max(1, int(w * k)), max(1, int(h * k)))
    note = (f"analysed downscaled from {w}x{h} to {size[0]}x{size[1]} (over "
            f"{max_pixels:,} pixels); small details may be lost")
    return image.resize(size, Image.Resampling.BOX), k, [note]


def gray(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float32)


def png_bytes(array: np.ndarray) -> bytes:
    """A uint8 map (H, W) or (H, W, 3) as PNG bytes, at most MAP_MAX_SIDE a side."""
    im = Image.fromarray(np.ascontiguousarray(array))
    if max(im.size) > MAP_MAX_SIDE:
        im.thumbnail((MAP_MAX_SIDE, MAP_MAX_SIDE), Image.Resampling.BOX)
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=False)
    return buf.getvalue()


def heat(values: np.ndarray, top: float) -> np.ndarray:
    """Values scaled to 0..255 with ``top`` as full scale, as an 8-bit map."""
    if top <= 0:
        top = 1.0
    return np.clip(values * (255.0 / top), 0, 255).astype(np.uint8)


def block_means(values: np.ndarray, block: int) -> np.ndarray:
    """Mean of each whole ``block`` x ``block`` cell (edges that do not fill a cell dropped)."""
    h, w = values.shape[:2]
    hb, wb = h // block, w // block
    if hb == 0 or wb == 0:
        return np.zeros((0, 0), np.float32)
    v = values[:hb * block, :wb * block]
    return v.reshape(hb, block, wb, block).mean(axis=(1, 3))


def largest_cluster(mask: np.ndarray) -> int:
    """Cells in the largest 8-connected group of True cells."""
    from scipy import ndimage

    if not mask.any():
        return 0
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    return int(np.bincount(labels.ravel())[1:].max()) if n else 0
