"""The semantic branch: a frozen CLIP ViT-B/16 image tower (ONNX Runtime) and a small head.

Input protocol (the UnivFD recipe, ``../shared/DETECTION_NOTES.md`` pilot 4): the centre 224²
crop of the decoded RGB image **without resizing** (reflect-padded when a side is smaller),
CLIP's own mean/std. The head reads the L2-normalised 512-d ``image_embeds``: a logistic
regression stored as plain numbers in the detector checkpoint (``meta["semantic_head"]``), so a
head can never run code. The graph is the float rebuild made at setup by
``forensics_app.weights``; nothing is fetched at run time.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
CLIP_SIZE = 224
EMBED_DIM = 512


def clip_input(img: Image.Image, size: int = CLIP_SIZE) -> np.ndarray:
    """[3, size, size] float32: centre crop without resizing, reflect-padded when smaller."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    w, h = img.size
    left = max(0, (w - size) // 2)
    top = max(0, (h - size) // 2)
    crop = img.crop((left, top, left + min(size, w), top + min(size, h)))
    a = np.asarray(crop, dtype=np.float32) / 255.0
    ph, pw = size - a.shape[0], size - a.shape[1]
    if ph > 0 or pw > 0:
        mode = "reflect" if min(a.shape[0], a.shape[1]) > max(ph, pw) // 2 + 1 else "edge"
        a = np.pad(a, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), mode=mode)
    a = (a - CLIP_MEAN) / CLIP_STD
    return np.ascontiguousarray(a.transpose(2, 0, 1))


class ClipEncoder:
    """ONNX Runtime session over the float CLIP graph; thread-safe ``embed``."""

    def __init__(self, path: Path | str, threads: int | None = None):
        from forensics_app.core.onnx_runtime import import_onnxruntime

        ort = import_onnxruntime()  # telemetry off: nothing written under ~/.cache
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or max(1, min(os.cpu_count() or 1, 8))
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self.path = Path(path)
        self.session = ort.InferenceSession(
            str(self.path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._lock = threading.Lock()
        self.threads = opts.intra_op_num_threads
        self.runtime = f"ONNX Runtime {ort.__version__} fp32, {self.threads} threads"
        # the prepared layout carries the CLS of every block (forensics_app.onnx_rewrite)
        self.has_blocks = any(o.name == "block_cls" for o in self.session.get_outputs())

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """[N,3,224,224] → [N,512] L2-normalised embeddings."""
        with self._lock:
            (emb,) = self.session.run(["image_embeds"], {"pixel_values": batch.astype(np.float32)})
        emb = emb.astype(np.float32)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)

    def features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N,3,224,224] → (L2-normalised [N,512] embeddings, [N,12*768] CLS of every
        encoder block) from one forward pass (the graph must carry ``block_cls``: the layout
        ``forensics_app.weights`` prepares)."""
        if not self.has_blocks:
            raise RuntimeError(f"{self.path.name}: the CLIP graph has no block_cls output; "
                               "run `python -m forensics_app.weights fetch` to rebuild it")
        with self._lock:
            emb, blocks = self.session.run(["image_embeds", "block_cls"],
                                           {"pixel_values": batch.astype(np.float32)})
        emb = emb.astype(np.float32)
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb, blocks.astype(np.float32)

    def embed_images(self, images: list[Image.Image], batch_size: int = 8) -> np.ndarray:
        out = []
        for i in range(0, len(images), batch_size):
            out.append(self.embed(np.stack([clip_input(im) for im in images[i:i + batch_size]])))
        return np.concatenate(out) if out else np.zeros((0, EMBED_DIM), np.float32)


@dataclass(frozen=True)
class Assessment:
    """What a branch says of one image (``branch.assess``): its logit, and why the verdict
    must not rest on it (outside the branch's validated domains), or None."""

    logit: float
    caveat: str | None = None
    view_logits: tuple[float, ...] = ()


@dataclass(frozen=True)
class LinearHead:
    """Logistic regression on the embedding: ``logit = (e - mean) / scale · w + b``."""

    weight: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray

    def logits(self, emb: np.ndarray) -> np.ndarray:
        z = (emb - self.mean) / self.scale
        return z @ self.weight + self.bias

    def to_record(self) -> dict[str, Any]:
        return {
            "kind": "logistic", "dim": int(self.weight.shape[0]),
            "weight": [float(x) for x in self.weight], "bias": float(self.bias),
            "mean": [float(x) for x in self.mean], "scale": [float(x) for x in self.scale],
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> LinearHead:
        if rec.get("kind") != "logistic":
            raise ValueError(f"unknown semantic head kind {rec.get('kind')!r}")
        dim = int(rec["dim"])
        arrays = [np.asarray(rec[k], dtype=np.float32) for k in ("weight", "mean", "scale")]
        if any(a.shape != (dim,) for a in arrays) or not all(np.isfinite(a).all() for a in arrays):
            raise ValueError("semantic head: weight/mean/scale must be finite vectors of dim")
        bias = float(rec["bias"])
        if not np.isfinite(bias):
            raise ValueError("semantic head: bias is not finite")
        return cls(arrays[0], bias, arrays[1], np.where(arrays[2] > 0, arrays[2], 1.0))
