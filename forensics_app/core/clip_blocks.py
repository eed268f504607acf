"""Detector v4's semantic branch: CLIP ViT-B/16 per-block CLS features, several views, a
linear head and a check that the image lies inside the domains the head was validated on.

One forward pass of the frozen CLIP graph per view gives the CLS token after each of the 12
encoder blocks (``block_cls``, ``[N, 12*768]``; ``forensics_app.weights`` exposes it) and the
final embedding. The head is a logistic regression on the standardised block features (RINE,
Koutlis & Papadopoulos, ECCV 2024; ``../shared/DETECTION_NOTES.md`` pilot 8), chosen and
calibrated by the training package's ``block_head`` — logit 0 is the threshold at which at most 5% of
every training real domain's held-out reals are called generated.

**Views** (issue 38, step 2): the centre 224² crop at native scale (the trace of the
generator), and — when the image is at least 1.5× larger than that on its short side — the
whole image resized to 224 on its short side, centre-cropped (what the picture shows). The
branch's logit is the mean of the views' logits.

**Domain check**: a Gaussian per training real domain and fake family in a PCA space of the
final embedding; an image whose views are all farther from every group than the training
images' own 99.5th percentile distance is *outside the validated domains*: the branch reports
it as a caveat and the row's verdict is Inconclusive (``ScanResult.domain_caveat``).

Every number is plain data in the checkpoint's metadata (``weights_only`` loading): nothing
here can run code from a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from forensics_app.core.semantic import CLIP_SIZE, EMBED_DIM, Assessment, clip_input

N_BLOCKS, WIDTH = 12, 768
FEATURES = {"blocks": N_BLOCKS * WIDTH, "final": EMBED_DIM, "blocks+final":
            N_BLOCKS * WIDTH + EMBED_DIM}
WHOLE_VIEW_MIN_SIDE = int(CLIP_SIZE * 1.5)  # 336: below it the whole view ≈ the centre crop


class BlockRecordError(ValueError):
    pass


def _vector(rec: dict[str, Any], key: str, dim: int) -> np.ndarray:
    a = np.asarray(rec.get(key), dtype=np.float32)
    if a.shape != (dim,) or not np.isfinite(a).all():
        raise BlockRecordError(f"{key}: must be {dim} finite numbers")
    return a


def _number(rec: dict[str, Any], key: str) -> float:
    v = rec.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
        raise BlockRecordError(f"{key}: must be a finite number")
    return float(v)


@dataclass(frozen=True)
class BlockHead:
    """``logit = ((x - mean) / scale) · weight + bias`` on the named features."""

    features: str
    weight: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray

    def logits(self, emb: np.ndarray, blocks: np.ndarray) -> np.ndarray:
        x = {"blocks": blocks, "final": emb}.get(self.features)
        if x is None:
            x = np.concatenate([blocks, emb], axis=1)
        return ((x - self.mean) / self.scale) @ self.weight + self.bias

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> BlockHead:
        if not isinstance(rec, dict) or rec.get("kind") != "logistic":
            raise BlockRecordError("kind: must be 'logistic'")
        feats = rec.get("features")
        if feats not in FEATURES:
            raise BlockRecordError(f"features: unknown {feats!r:.40} (known: {sorted(FEATURES)})")
        dim = FEATURES[feats]
        scale = _vector(rec, "scale", dim)
        return cls(feats, _vector(rec, "weight", dim), _number(rec, "bias"),
                   _vector(rec, "mean", dim), np.where(scale > 0, scale, 1.0).astype(np.float32))

    def to_record(self) -> dict[str, Any]:
        return {"kind": "logistic", "features": self.features,
                "weight": [float(x) for x in self.weight], "bias": float(self.bias),
                "mean": [float(x) for x in self.mean], "scale": [float(x) for x in self.scale]}


@dataclass(frozen=True)
class DomainCheck:
    """Nearest training group (real domain or fake family) by a diagonal Mahalanobis
    distance in a PCA space of the final embedding; ``limit`` is the training images' own
    99.5th percentile."""

    mean: np.ndarray  # [512]
    scale: np.ndarray  # [512]
    components: np.ndarray  # [k, 512]
    centres: np.ndarray  # [G, k]
    inv_var: np.ndarray  # [G, k]
    names: tuple[str, ...]
    limit: float

    def distance(self, emb: np.ndarray) -> tuple[np.ndarray, list[str]]:
        z = ((emb - self.mean) / self.scale) @ self.components.T
        d = np.sqrt((((z[:, None, :] - self.centres[None]) ** 2) * self.inv_var[None]).mean(-1))
        return d.min(1), [self.names[i] for i in d.argmin(1)]

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> DomainCheck:
        if not isinstance(rec, dict):
            raise BlockRecordError("must be a mapping")
        names = rec.get("names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise BlockRecordError("names: must be a list of group names")
        comps = np.asarray(rec.get("components"), dtype=np.float32)
        if comps.ndim != 2 or comps.shape[1] != EMBED_DIM or not np.isfinite(comps).all():
            raise BlockRecordError(f"components: must be finite [k, {EMBED_DIM}]")
        k, g = comps.shape[0], len(names)
        centres = np.asarray(rec.get("centres"), dtype=np.float32)
        inv_var = np.asarray(rec.get("inv_var"), dtype=np.float32)
        if centres.shape != (g, k) or inv_var.shape != (g, k) or not (
                np.isfinite(centres).all() and np.isfinite(inv_var).all() and (inv_var > 0).all()):
            raise BlockRecordError(f"centres/inv_var: must be finite [{g}, {k}], inv_var > 0")
        scale = _vector(rec, "scale", EMBED_DIM)
        limit = _number(rec, "limit")
        if limit <= 0:
            raise BlockRecordError("limit: must be > 0")
        return cls(_vector(rec, "mean", EMBED_DIM), np.where(scale > 0, scale, 1.0), comps,
                   centres, inv_var, tuple(names), limit)

    def to_record(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "components": self.components.tolist(), "centres": self.centres.tolist(),
                "inv_var": self.inv_var.tolist(), "names": list(self.names),
                "limit": float(self.limit)}


def whole_view(img: Image.Image, size: int = CLIP_SIZE) -> Image.Image:
    """The whole picture: short side resized to ``size`` (antialiased), centre ``size``² crop."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    w, h = img.size
    f = size / min(w, h)
    nw, nh = max(size, round(w * f)), max(size, round(h * f))
    # reducing_gap: a box reduction first, so a 144 MP image never makes a float copy
    small = img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    return small.crop((left, top, left + size, top + size))


def views_of(img: Image.Image) -> np.ndarray:
    """[V, 3, 224, 224]: the centre crop at native scale, plus the whole view when it differs."""
    out = [clip_input(img)]
    if min(img.size) >= WHOLE_VIEW_MIN_SIDE:
        out.append(clip_input(whole_view(img)))
    return np.stack(out)


@dataclass
class ClipBlocksBranch:
    key: str
    encoder: Any  # ClipEncoder whose graph carries block_cls
    head: BlockHead
    domain: DomainCheck | None
    description: str = ""

    @property
    def runtime(self) -> str:
        return (f"CLIP ViT-B/16 block features, {getattr(self.encoder, 'runtime', 'ONNX Runtime')}")

    def input_for(self, img: Image.Image) -> np.ndarray:
        return views_of(img)

    def assess(self, inputs: list[np.ndarray]) -> list[Assessment]:
        """One assessment per image; each input holds that image's views."""
        counts = [len(x) for x in inputs]
        emb, blocks = self.encoder.features(np.concatenate(inputs))
        logits = self.head.logits(emb, blocks)
        dist, near = self.domain.distance(emb) if self.domain else (None, None)
        out, i = [], 0
        for n in counts:
            vl = tuple(float(v) for v in logits[i:i + n])
            caveat = None
            if dist is not None:
                d = dist[i:i + n]
                if float(d.min()) > self.domain.limit:
                    j = i + int(d.argmin())
                    caveat = (f"outside the detector's validated domains (distance "
                              f"{float(d.min()):.2f} > {self.domain.limit:.2f} to the nearest "
                              f"training group, {near[j]})")
            out.append(Assessment(float(np.mean(vl)), caveat, vl))
            i += n
        return out

    def logits(self, inputs: list[np.ndarray]) -> np.ndarray:
        return np.array([a.logit for a in self.assess(inputs)], dtype=np.float64)
