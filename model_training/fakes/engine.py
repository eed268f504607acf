"""Generate content-aligned real/fake pairs from real photos, cached on disk.

For each real photo: shrink it by 2 with an area filter (erases the JPEG 8x8 grid and most
camera noise), crop to a multiple of 8, store it losslessly as the *real*; pass that same
image through each generator and store the result losslessly, same size, as its *fakes*. The
classes then differ only by generation -- not by content, format, JPEG history or size.

Generators: the auto-encoders of :mod:`.autoencoder` (trained here on the training split only)
and the GAN-trained Real-ESRGAN networks of :mod:`.realesrgan`. Everything is seeded; the
cache key hashes the configuration and the list of source files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from forensics_app.core.loading import IMAGE_EXTENSIONS, load_evidence
from forensics_app.paths import user_cache_dir
from model_training.fakes.autoencoder import (
    load_autoencoder,
    reconstruct,
    save_autoencoder,
    train_autoencoder,
)
from model_training.fakes.realesrgan import load_realesrgan, resynthesize
from model_training.fakes.taef2 import load_taef2, reconstruct_image

log = logging.getLogger(__name__)

SPLITS = ("train", "calib", "test")


@dataclass
class FakeDataConfig:
    real_roots: list[str] = field(default_factory=lambda: ["../shared/data/train/real"])
    cache_dir: str | None = None  # default: <user cache>/fakes
    seed: int = 0
    # Held-out reals: `calib` picks the shipped threshold, `test` is reported in the model card.
    calib_fraction: float = 0.1
    test_fraction: float = 0.1
    downscale: int = 2
    autoencoders: list[str] = field(
        default_factory=lambda: ["nearest:2", "transposed:2"]
    )
    ae_steps: int = 200
    ae_batch: int = 12
    realesrgan: list[str] = field(default_factory=lambda: ["animevideov3"])
    # TAEF2 (FLUX.2 VAE latent space) encode -> decode at the photo's pixel grid.
    taef2: bool = False
    taef2_dir: str | None = None  # default: ../shared/data/models/taef2
    # RRDBNet x4plus is slow on CPU: applied to one `x4plus_crop` crop of this many reals.
    x4plus_count: int = 120
    x4plus_crop: int = 96
    max_reals: int | None = None
    # Each training real gets fakes from this many generators (rotating, so every generator
    # sees every kind of photo); held-out `test` reals get all of them; `calib` reals none.
    fakes_per_real: int = 2
    # Reals whose stored (shrunk) size is below this are skipped: they cannot give a crop.
    min_side: int = 96

    def key(self, sources: list[str]) -> str:
        cfg = asdict(self)
        cfg.pop("cache_dir")
        cfg.pop("taef2_dir")
        cfg.pop("real_roots")  # where the photos live does not matter; which photos does
        blob = json.dumps({"cfg": cfg, "sources": sources}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def list_sources(roots: list[str]) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        root_path = Path(root)
        if not root_path.is_dir():
            raise FileNotFoundError(f"real-photo folder not found: {root_path}")
        files += sorted(p for p in root_path.rglob("*")
                        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    return files


def split_of(name: str, cfg: FakeDataConfig) -> str:
    """Deterministic split from the file name's hash (independent of listing order)."""
    u = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if u < cfg.calib_fraction:
        return "calib"
    if u < cfg.calib_fraction + cfg.test_fraction:
        return "test"
    return "train"


def canonical_real(path: Path, downscale: int) -> Image.Image:
    """The stored real: decoded upright RGB, area-shrunk by ``downscale``, cropped to x8."""
    _, img, err = load_evidence(path)
    if err is not None:
        raise err
    if downscale > 1:
        img = img.reduce(downscale)
    w, h = img.size
    return img.crop((0, 0, w // 8 * 8, h // 8 * 8))


def _save_png(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", compress_level=1)


def generate(cfg: FakeDataConfig) -> Path:
    """Build (or reuse) the cached pair set; returns the directory holding manifest.json."""
    torch.manual_seed(cfg.seed)
    sources = list_sources(cfg.real_roots)
    if cfg.max_reals:
        sources = sources[: cfg.max_reals]
    rel = [f"{p.parent.name}/{p.name}" for p in sources]
    out = Path(cfg.cache_dir or (user_cache_dir() / "fakes")) / cfg.key(rel)
    manifest_path = out / "manifest.json"
    if manifest_path.is_file():
        log.info("fake data cached at %s", out)
        return out
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    ids = [f"{i:05d}" for i in range(len(sources))]
    splits = {i: split_of(r, cfg) for i, r in zip(ids, rel, strict=True)}
    log.info("preparing %d reals (x1/%d, lossless) in %s", len(sources), cfg.downscale, out)
    reals: dict[str, Image.Image] = {}
    skipped = []
    for i, src in zip(ids, sources, strict=True):
        img = canonical_real(src, cfg.downscale)
        if min(img.size) < cfg.min_side:
            skipped.append(i)
            continue
        reals[i] = img
        _save_png(img, out / "real" / splits[i] / f"{i}.png")
    ids = [i for i in ids if i in reals]
    log.info("skipped %d reals smaller than %d px after shrinking", len(skipped), cfg.min_side)
    pairs: list[dict] = []
    timings: dict[str, float] = {}

    train_arrays = [np.asarray(reals[i]) for i in ids if splits[i] == "train"]
    generators = [f"ae-{s.replace(':', '-x')}" for s in cfg.autoencoders] + [
        f"realesrgan-{g}" for g in cfg.realesrgan] + (["taef2"] if cfg.taef2 else [])

    def ids_for(name: str) -> list[str]:
        g = generators.index(name)
        k = min(cfg.fakes_per_real, len(generators))
        return [i for n, i in enumerate(ids) if splits[i] == "test" or (
            splits[i] == "train" and (g - n) % len(generators) < k)]
    for spec in cfg.autoencoders:
        up, factor = spec.split(":")
        name = f"ae-{up}-x{factor}"
        t0 = time.perf_counter()
        weights = out / "generators" / f"{name}.pt"
        if weights.is_file():
            ae = load_autoencoder(weights)
        else:
            log.info("training auto-encoder %s (%d steps)", name, cfg.ae_steps)
            ae = train_autoencoder(train_arrays, up, int(factor), steps=cfg.ae_steps,
                                   batch=cfg.ae_batch, seed=cfg.seed, log=log.info)
            weights.parent.mkdir(parents=True, exist_ok=True)
            save_autoencoder(ae, weights, up)
        for i in ids_for(name):
            rel_fake = f"fake/{name}/{splits[i]}/{i}.png"
            if not (out / rel_fake).is_file():  # deterministic: an interrupted run resumes
                _save_png(reconstruct(ae, reals[i], int(factor)), out / rel_fake)
            pairs.append({"generator": name, "split": splits[i],
                          "real": f"real/{splits[i]}/{i}.png", "fake": rel_fake})
        timings[name] = round(time.perf_counter() - t0, 1)
        log.info("  %s done in %.0f s", name, timings[name])

    for gname in cfg.realesrgan:
        name = f"realesrgan-{gname}"
        t0 = time.perf_counter()
        net = load_realesrgan(gname)
        for i in ids_for(name):
            rel_fake = f"fake/{name}/{splits[i]}/{i}.png"
            if not (out / rel_fake).is_file():
                _save_png(resynthesize(net, reals[i]), out / rel_fake)
            pairs.append({"generator": name, "split": splits[i],
                          "real": f"real/{splits[i]}/{i}.png", "fake": rel_fake})
        timings[name] = round(time.perf_counter() - t0, 1)
        log.info("  %s done in %.0f s", name, timings[name])

    if cfg.taef2:
        name = "taef2"
        t0 = time.perf_counter()
        tae = load_taef2(cfg.taef2_dir)
        done = 0
        for i in ids_for(name):
            rel_fake = f"fake/{name}/{splits[i]}/{i}.png"
            if not (out / rel_fake).is_file():
                _save_png(reconstruct_image(tae, reals[i]), out / rel_fake)
            pairs.append({"generator": name, "split": splits[i],
                          "real": f"real/{splits[i]}/{i}.png", "fake": rel_fake})
            done += 1
            if done % 200 == 0:
                log.info("  taef2 %d pairs (%.0f s)", done, time.perf_counter() - t0)
        timings[name] = round(time.perf_counter() - t0, 1)
        log.info("  %s done in %.0f s", name, timings[name])

    if cfg.x4plus_count:
        name, c = "realesrgan-x4plus", cfg.x4plus_crop
        t0 = time.perf_counter()
        net = load_realesrgan("x4plus")
        rng = random.Random(cfg.seed)
        chosen = [i for i in ids if splits[i] != "calib" and min(reals[i].size) >= c]
        rng.shuffle(chosen)
        # Keep the held-out splits represented in proportion.
        for n, i in enumerate(chosen[: cfg.x4plus_count]):
            img = reals[i]
            x, y = rng.randrange(img.width - c + 1) // 4 * 4, rng.randrange(img.height - c + 1) // 4 * 4
            crop = img.crop((x, y, x + c, y + c))
            rel_real = f"real_crops/{name}/{splits[i]}/{i}.png"
            rel_fake = f"fake/{name}/{splits[i]}/{i}.png"
            _save_png(crop, out / rel_real)
            _save_png(resynthesize(net, crop), out / rel_fake)
            pairs.append({"generator": name, "split": splits[i], "real": rel_real, "fake": rel_fake})
            if (n + 1) % 50 == 0:
                log.info("  x4plus %d/%d (%.0f s)", n + 1, cfg.x4plus_count, time.perf_counter() - t0)
        timings[name] = round(time.perf_counter() - t0, 1)

    manifest = {
        "config": asdict(cfg),
        "sources": [{"id": f"{n:05d}", "source": r, "split": splits[f"{n:05d}"],
                     "skipped": f"{n:05d}" in skipped} for n, r in enumerate(rel)],
        "pairs": pairs,
        "timings_s": timings,
        "total_s": round(time.perf_counter() - t_start, 1),
    }
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(manifest_path)
    log.info("fake data ready in %.0f s: %d pairs", manifest["total_s"], len(pairs))
    return out


def load_manifest(root: Path) -> dict:
    return json.loads((Path(root) / "manifest.json").read_text())


def manifest_digest(root: Path) -> str:
    """SHA-256 of the manifest: identifies the exact training data in checkpoint metadata."""
    return hashlib.sha256((Path(root) / "manifest.json").read_bytes()).hexdigest()
