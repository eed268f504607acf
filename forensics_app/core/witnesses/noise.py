"""Noise residual: what a median filter removes, and how evenly its level spreads.

A camera's sensor noise is roughly even across a photo of one exposure; a region pasted from
another photo, or smoothed/generated, carries a different level. Can show: a block group
whose noise level is an outlier among blocks of similar smoothness. Cannot show: a splice
from a photo with the same noise level, and heavy compression or denoising flattens every
block's level alike; strongly textured areas are left out of the comparison.
"""

from __future__ import annotations

import numpy as np

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

BLOCK = 32
Z_OUTLIER = 4.0
MIN_CLUSTER_BLOCKS = 4
MIN_CLUSTER_FRACTION = 0.01
FLAT_TEXTURE = 1.0  # grey levels per pixel of a blurred copy: below it a block is flat
RULE = (f"detected when a connected group of at least {MIN_CLUSTER_BLOCKS} {BLOCK}x{BLOCK} "
        f"blocks (and {MIN_CLUSTER_FRACTION:.0%} of the compared ones) has a noise level "
        f"(Immerkaer estimate) over {Z_OUTLIER:g} robust z from the median of blocks of "
        "similar smoothness (the smoother half of the image, or every flat block)")


def analyse(subject: Subject) -> WitnessResult:
    import cv2

    image, _scale, notes = downscaled(subject.image)
    g = gray(image)
    residual = g - cv2.medianBlur(g.astype(np.uint8), 3).astype(np.float32)
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    lap = np.abs(cv2.filter2D(g, -1, kernel, borderType=cv2.BORDER_REFLECT))
    sigma = block_means(lap, BLOCK) * float(np.sqrt(np.pi / 2) / 6)
    # texture of the scene, not of its noise: gradients of a blurred copy
    blurred = cv2.GaussianBlur(g, (0, 0), 4.0)
    gx = np.abs(np.diff(blurred, axis=1, append=blurred[:, -1:]))
    gy = np.abs(np.diff(blurred, axis=0, append=blurred[-1:, :]))
    texture = block_means(gx + gy, BLOCK)
    bright = block_means(g, BLOCK)
    figures: dict = {"residual_std": round(float(residual.std()), 3)}
    residual_map = heat(np.abs(residual), max(float(np.percentile(np.abs(residual), 99.5)), 2))
    if sigma.size < 16:
        return WitnessResult("noise", None, "image too small for a noise comparison", RULE,
                             figures, notes, map_png=png_bytes(residual_map))
    # compared: the smoother half of the blocks (all of a picture with no texture at all),
    # not clipped to black or white
    usable = (bright > 8) & (bright < 247)
    limit = max(float(np.median(texture[usable])), FLAT_TEXTURE) if usable.any() else 0.0
    smooth = usable & (texture <= limit)
    figures.update(blocks=int(sigma.size), compared_blocks=int(smooth.sum()),
                   median_noise_sigma=round(float(np.median(sigma[smooth])), 3)
                   if smooth.any() else None)
    if smooth.sum() < 16:
        return WitnessResult("noise", None, "too few smooth blocks to compare noise levels",
                             RULE, figures, notes, map_png=png_bytes(residual_map))
    logs = np.log(sigma + 0.1)
    med = float(np.median(logs[smooth]))
    mad = max(float(np.median(np.abs(logs[smooth] - med))) * 1.4826, 0.05)
    z = np.where(smooth, (logs - med) / mad, 0.0)
    outliers = np.abs(z) > Z_OUTLIER
    cluster = largest_cluster(outliers)
    need = max(MIN_CLUSTER_BLOCKS, int(np.ceil(MIN_CLUSTER_FRACTION * smooth.sum())))
    detected = cluster >= need
    figures.update(outlier_blocks=int(outliers.sum()), largest_outlier_cluster=cluster,
                   max_abs_z=round(float(np.abs(z).max()), 2),
                   inconsistency=round(float(np.abs(z)[smooth].mean()), 3))
    finding = (f"a region of {cluster} blocks has a noise level unlike the rest"
               if detected else "noise level even across comparable blocks")
    return WitnessResult("noise", detected, finding, RULE, figures, notes,
                         map_png=png_bytes(residual_map))
