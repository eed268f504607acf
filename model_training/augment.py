"""Blur + JPEG augmentation exactly as Wang et al.'s code (CNNDetection ``data/datasets.py``).

With probability ``blur_prob`` a Gaussian blur with sigma ~ U[blur_sig] (scipy
``gaussian_filter`` per channel, as the original); with probability ``jpg_prob`` a JPEG
re-encode with quality ~ U{jpg_qual} through OpenCV or PIL, chosen at random. Parameters are
drawn once (:func:`draw_params`) and applied with :func:`apply_params`, so a real image and
its content-aligned fake can receive the identical augmentation.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter


@dataclass(frozen=True)
class AugmentConfig:
    blur_prob: float = 0.5
    blur_sig: tuple[float, float] = (0.0, 3.0)
    jpg_prob: float = 0.5
    jpg_qual: tuple[int, int] = (30, 100)  # inclusive range
    jpg_method: tuple[str, ...] = ("cv2", "pil")


@dataclass(frozen=True)
class AugmentParams:
    blur_sigma: float | None
    jpeg_quality: int | None
    jpeg_method: str | None


NO_AUGMENT = AugmentParams(None, None, None)


def draw_params(cfg: AugmentConfig, rng: random.Random) -> AugmentParams:
    sigma = quality = method = None
    if rng.random() < cfg.blur_prob:
        sigma = rng.uniform(*cfg.blur_sig)
    if rng.random() < cfg.jpg_prob:
        method = rng.choice(cfg.jpg_method)
        quality = rng.randint(cfg.jpg_qual[0], cfg.jpg_qual[1])
    return AugmentParams(sigma, quality, method)


def gaussian_blur(arr: np.ndarray, sigma: float) -> np.ndarray:
    out = np.empty_like(arr)
    for c in range(arr.shape[2]):
        gaussian_filter(arr[:, :, c], output=out[:, :, c], sigma=sigma)
    return out


def jpeg_roundtrip(arr: np.ndarray, quality: int, method: str) -> np.ndarray:
    if method == "cv2":
        import cv2

        ok, enc = cv2.imencode(".jpg", arr[:, :, ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), quality])
        if not ok:
            raise RuntimeError("OpenCV JPEG encoding failed")
        return cv2.imdecode(enc, cv2.IMREAD_COLOR)[:, :, ::-1].copy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.array(Image.open(buf).convert("RGB"))


def apply_params(img: Image.Image, params: AugmentParams) -> Image.Image:
    if params.blur_sigma is None and params.jpeg_quality is None:
        return img
    arr = np.array(img.convert("RGB"))
    if params.blur_sigma is not None and params.blur_sigma > 0:
        arr = gaussian_blur(arr, params.blur_sigma)
    if params.jpeg_quality is not None:
        arr = jpeg_roundtrip(arr, params.jpeg_quality, params.jpeg_method or "pil")
    return Image.fromarray(arr)


def augment(img: Image.Image, cfg: AugmentConfig, rng: random.Random) -> Image.Image:
    """The paper's ``data_augment``: draw parameters and apply them."""
    return apply_params(img, draw_params(cfg, rng))


def validation_params(cfg: AugmentConfig) -> AugmentParams:
    """Deterministic validation augmentation: fixed mid-range sigma and quality where enabled."""
    sigma = (cfg.blur_sig[0] + cfg.blur_sig[1]) / 2 if cfg.blur_prob > 0 else None
    quality = (cfg.jpg_qual[0] + cfg.jpg_qual[1]) // 2 if cfg.jpg_prob > 0 else None
    return AugmentParams(sigma, quality, "pil" if quality is not None else None)


def validation_params_for(cfg: AugmentConfig, index: int, seed: int = 0) -> AugmentParams:
    """The paper's validation augmentation, made deterministic per sample.

    CNNDetection validates with the training probabilities but a fixed sigma (mid-range), a
    fixed quality (mid-range) and PIL only -- and draws *whether* to apply them at random on
    every validation pass, so its validation accuracy is noisy. Here the draw is seeded by
    ``(seed, index)``: the same images get the same degradations on every pass, and the
    fraction degraded still follows ``blur_prob`` / ``jpg_prob``.
    """
    fixed = validation_params(cfg)
    rng = random.Random(seed * 1_000_003 + index)
    sigma = fixed.blur_sigma if rng.random() < cfg.blur_prob else None
    quality = fixed.jpeg_quality if rng.random() < cfg.jpg_prob else None
    return AugmentParams(sigma, quality, "pil" if quality is not None else None)
