"""Error level analysis: re-save as JPEG at a stated quality and map the difference.

A region whose compression history differs from the rest of the picture (pasted from
another file, retouched after the last save) re-compresses to a different error level than
its surroundings of the same texture. Can show: a region out of step with the rest. Cannot
show: anything in a file re-saved many times or at low quality (every level is then low),
and edges and fine texture always read higher, so the score compares each block's error
level with its own texture, never raw brightness.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from forensics_app.core.witnesses.base import (
    Subject,
    WitnessResult,
    block_means,
    downscaled,
    gray,
    heat,
    largest_cluster,
    png_bytes,
)

QUALITY = 90  # for files that are not JPEGs; a JPEG is re-saved at its own quality
BLOCK = 16
Z_OUTLIER = 4.0  # robust z-score of a block's texture-normalised error level
MIN_CLUSTER_FRACTION = 0.01  # of the blocks, and at least MIN_CLUSTER_BLOCKS
MIN_CLUSTER_BLOCKS = 6
RULE = (f"detected when a connected group of at least {MIN_CLUSTER_BLOCKS} {BLOCK}x{BLOCK} "
        f"blocks (and {MIN_CLUSTER_FRACTION:.0%} of the image) has a texture-normalised error "
        f"level (re-saved at the JPEG's own estimated quality, or {QUALITY} for other files) over {Z_OUTLIER:g} robust z above the "
        "image's median")


def error_levels(image: Image.Image, quality: int = QUALITY) -> np.ndarray:
    """Per-pixel absolute difference (max over channels) after one JPEG re-save."""
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf, formats=["JPEG"]) as again:
        resaved = np.asarray(again.convert("RGB"), dtype=np.int16)
    return np.abs(np.asarray(image, dtype=np.int16) - resaved).max(axis=2).astype(np.float32)


def robust_z(values: np.ndarray) -> np.ndarray:
    med = float(np.median(values))
    mad = float(np.median(np.abs(values - med))) * 1.4826
    return (values - med) / max(mad, 1e-3)


def resave_quality(subject: Subject) -> int:
    """The file's own IJG quality for a JPEG (regions saved at it before barely change; a
    region with another history does), else QUALITY."""
    if subject.format not in ("JPEG", "MPO") or not subject.data:
        return QUALITY
    from forensics_app.core.witnesses.jpeg import estimate_quality, read_tables

    tables = read_tables(subject.data)
    if 0 not in tables:
        return QUALITY
    return min(98, max(50, estimate_quality(tables[0], tables.get(1))[0]))


def analyse(subject: Subject) -> WitnessResult:
    image, _scale, notes = downscaled(subject.image)
    quality = resave_quality(subject)
    ela = error_levels(image, quality)
    g = gray(image)
    texture = np.zeros_like(g)
    texture[1:-1, 1:-1] = np.abs(4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1]
                                 - g[1:-1, :-2] - g[1:-1, 2:])
    e_b, t_b = block_means(ela, BLOCK), block_means(texture, BLOCK)
    figures = {"quality": quality, "mean_error": round(float(ela.mean()), 3),
               "p99_error": round(float(np.percentile(ela, 99)), 3)}
    if e_b.size < 16:
        return WitnessResult("ela", None, "image too small for error level analysis", RULE,
                             figures, notes, map_png=png_bytes(heat(ela, 20)))
    ratio = np.log((e_b + 0.25) / (t_b + 2.0))
    z = robust_z(ratio)
    outliers = z > Z_OUTLIER
    cluster = largest_cluster(outliers)
    need = max(MIN_CLUSTER_BLOCKS, int(np.ceil(MIN_CLUSTER_FRACTION * z.size)))
    detected = cluster >= need
    figures.update(blocks=int(z.size), outlier_blocks=int(outliers.sum()),
                   largest_outlier_cluster=cluster, max_z=round(float(z.max()), 2))
    if figures["p99_error"] < 2.0:
        notes.append("very low error levels everywhere: a heavily or repeatedly compressed "
                     "file, on which ELA shows little")
    finding = (f"a region of {cluster} blocks re-compresses out of step with its texture "
               "(different compression history?)" if detected else
               "error levels consistent with the image's texture")
    top = max(float(np.percentile(ela, 99.5)), 4.0)
    return WitnessResult("ela", detected, finding, RULE, figures, notes,
                         map_png=png_bytes(heat(ela, top)))
