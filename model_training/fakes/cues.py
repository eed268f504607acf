"""Trivial-cue audit of a pair set: can anything but the generation separate real from fake?

For held-out pairs of each generator, ROC AUC of single-number cues (0.5 = no separation):
file size of the stored PNG, mean luma, mean saturation, JPEG 8x8 grid strength and the
smoothness cue (-mean |Laplacian|). The model card prints this table.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score

from model_training.evaluate import smoothness_score


def jpeg_grid_strength(gray: np.ndarray) -> float:
    """Mean |horizontal difference| across 8-pixel block borders over the mean elsewhere."""
    d = np.abs(np.diff(gray, axis=1))
    cols = np.arange(d.shape[1])
    border = d[:, cols % 8 == 7].mean()
    inner = d[:, cols % 8 != 7].mean() + 1e-6
    return float(border / inner)


def image_cue_values(rgb: Image.Image, file_size: float | None = None) -> dict[str, float]:
    """The trivial cues of one decoded image; ``file_size`` defaults to its lossless PNG size."""
    rgb = rgb.convert("RGB")
    if file_size is None:
        buf = io.BytesIO()
        rgb.save(buf, format="PNG", compress_level=6)
        file_size = float(buf.tell())
    arr = np.asarray(rgb, dtype=np.float32)
    gray = np.asarray(rgb.convert("L"), dtype=np.float32)
    hsv = np.asarray(rgb.convert("HSV"), dtype=np.float32)
    return {
        "file_size": float(file_size) / (rgb.width * rgb.height),
        "mean_luma": float(gray.mean()),
        "mean_saturation": float(hsv[..., 1].mean()),
        "mean_rgb_sum": float(arr.mean()),
        "std_luma": float(gray.std()),
        "jpeg_grid": jpeg_grid_strength(gray),
        "smoothness": smoothness_score(rgb),
    }


def cue_values(path: Path) -> dict[str, float]:
    with Image.open(path) as im:
        return image_cue_values(im, float(path.stat().st_size))


def audit_pairs(root: Path | str, pairs: list[dict], max_pairs: int = 100) -> dict[str, dict[str, float]]:
    """ROC AUC of each cue, per generator, over up to ``max_pairs`` pairs each."""
    root = Path(root)
    by_gen: dict[str, list[dict]] = {}
    for p in pairs:
        by_gen.setdefault(p["generator"], []).append(p)
    table: dict[str, dict[str, float]] = {}
    for gen, ps in sorted(by_gen.items()):
        ps = ps[:max_pairs]
        reals = [cue_values(root / p["real"]) for p in ps]
        fakes = [cue_values(root / p["fake"]) for p in ps]
        y = np.r_[np.zeros(len(reals)), np.ones(len(fakes))]
        table[gen] = {
            cue: round(float(roc_auc_score(y, [r[cue] for r in reals] + [f[cue] for f in fakes])), 3)
            for cue in reals[0]
        }
    return table
