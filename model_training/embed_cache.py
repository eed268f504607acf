"""Resumable cache of frozen-CLIP embeddings for the semantic branch's training and evaluation.

``python -m model_training.embed_cache --data ../shared/data --out runs/embeddings`` embeds,
per named *view* of the data, every image once and appends to ``<out>/<view>.npz`` every
``--flush`` images, so a killed job resumes where it stopped. Views:

- ``train/<family>/n90``: each training image normalised like dev_test — centre 256² crop,
  JPEG q90 — so file format, size and JPEG history carry no signal (data README, "Known
  shortcut risks").
- ``train/taef2/n90``: the content-aligned fake of every real (TAEF2 encode→decode of its
  256² centre crop, then JPEG q90): same photo, only the decoder differs.
- ``dev/<set>/{orig,q75,half}``: dev_test as given; re-encoded JPEG q75; down-scaled 0.5×
  (robustness probes, scored once per shipped candidate, never used to choose).
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from forensics_app.core.semantic import ClipEncoder, clip_input
from forensics_app.weights import find_asset

EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
TRAIN_FAMILIES = {
    "real/imagenet_sample": 0, "real/bsds500": 0,
    "fake/sd14": 1, "fake/sd15": 1, "fake/stylegan2": 1,
}


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTS)


def center_crop(img: Image.Image, size: int = 256) -> Image.Image:
    w, h = img.size
    if w <= size and h <= size:
        return img
    cw, ch = min(w, size), min(h, size)
    left, top = (w - cw) // 2, (h - ch) // 2
    return img.crop((left, top, left + cw, top + ch))


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


def normalise(img: Image.Image) -> Image.Image:
    """dev_test's own normalisation: centre 256² crop, JPEG q90."""
    return jpeg(center_crop(img.convert("RGB")), 90)


def half(img: Image.Image) -> Image.Image:
    w, h = img.size
    return img.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.BICUBIC)


def views(data: Path) -> Iterator[tuple[str, list[Path], int, Callable[[Image.Image], Image.Image]]]:
    for fam, label in TRAIN_FAMILIES.items():
        folder = data / "train" / fam
        if folder.is_dir():
            yield f"train/{fam.split('/')[1]}/n90", list_images(folder), label, normalise
    reals = [p for fam, lab in TRAIN_FAMILIES.items() if lab == 0
             for p in list_images(data / "train" / fam) if (data / "train" / fam).is_dir()]
    yield "train/taef2/n90", reals, 1, _taef2_transform(data)
    # Content control: real (not generated) drawings and screenshots, made procedurally with a
    # different seed from the content probe's (seed 0), so the probe stays unseen.
    yield "train/synthetic_real/n90", [Path(k) for k in synthetic_images()], 0, lambda im: normalise(im)
    for s in sorted(p for p in (data / "dev_test").iterdir() if p.is_dir()):
        for cls, label in (("0_real", 0), ("1_fake", 1)):
            files = list_images(s / cls)
            yield f"dev/{s.name}/{cls}/orig", files, label, lambda im: im.convert("RGB")
            yield f"dev/{s.name}/{cls}/q75", files, label, lambda im: jpeg(im.convert("RGB"), 75)
            yield f"dev/{s.name}/{cls}/half", files, label, lambda im: half(im.convert("RGB"))


def _taef2_transform(data: Path) -> Callable[[Image.Image], Image.Image]:
    state: dict = {}

    def fn(img: Image.Image) -> Image.Image:
        from model_training.fakes.taef2 import load_taef2, reconstruct_image

        if "m" not in state:
            state["m"] = load_taef2(data / "models" / "taef2")
        crop = center_crop(img.convert("RGB"))
        w, h = crop.size  # TAEF2 needs sides that are multiples of 8
        crop = crop.crop((0, 0, w - w % 8, h - h % 8))
        return jpeg(reconstruct_image(state["m"], crop), 90)

    return fn


@functools.cache
def synthetic_images() -> dict[str, Image.Image]:
    """Procedural real drawings/screenshots by key (seed 1; the content probe uses seed 0)."""
    from model_training.content_probe import probe_images

    return {f"synthetic:{group.split()[0]}:seed1:{i:03d}": im
            for group, images in probe_images(None, n_synthetic=80, seed=1).items()
            for i, im in enumerate(images)}


def open_image(p: Path) -> Image.Image:
    key = str(p)
    if key.startswith("synthetic:"):
        return synthetic_images()[key].copy()
    return Image.open(p)


def cache_path(out: Path, view: str) -> Path:
    return out / (view.replace("/", "__") + ".npz")


def load_view(out: Path, view: str) -> tuple[list[str], np.ndarray, int] | None:
    p = cache_path(out, view)
    if not p.is_file():
        return None
    z = np.load(p, allow_pickle=False)
    return [str(x) for x in z["paths"]], z["emb"], int(z["label"])


def _save(out: Path, view: str, paths: list[str], emb: np.ndarray, label: int) -> None:
    p = cache_path(out, view)
    tmp = p.with_suffix(".tmp.npz")
    np.savez(tmp, paths=np.array(paths), emb=emb.astype(np.float32), label=np.int64(label))
    os.replace(tmp, p)


def run(data: Path, out: Path, only: str | None, flush: int, batch: int,
        robust_cap: int, caps: dict[str, int] | None = None) -> None:
    """Round-robin over the views, ``flush`` images at a time, so that every view has a
    growing, evenly spread share whenever the job is stopped (training can start early)."""
    out.mkdir(parents=True, exist_ok=True)
    enc = ClipEncoder(find_asset("clip-vitb16"))
    state = []
    for view, files, label, fn in views(data):
        if only and not view.startswith(only):
            continue
        # an even spread first: a fixed permutation of the files
        order = np.random.default_rng(0).permutation(len(files))
        files = [files[i] for i in order]
        if view.endswith(("/q75", "/half")):
            files = files[:robust_cap]
        for prefix, cap in (caps or {}).items():
            if view.startswith(prefix):
                files = files[:cap]
        have = load_view(out, view)
        paths, embs = (have[0], [have[1]]) if have else ([], [])
        done = set(paths)
        todo = [f for f in files if str(f) not in done]
        if todo:
            state.append([view, todo, label, fn, paths, embs])
    t0, n = time.time(), 0
    while state:
        for entry in list(state):
            view, todo, label, fn, paths, embs = entry
            chunk, entry[1] = todo[:flush], todo[flush:]
            for i in range(0, len(chunk), batch):
                part = chunk[i:i + batch]
                x = np.stack([clip_input(fn(open_image(p))) for p in part])
                embs.append(enc.embed(x))
                paths.extend(str(p) for p in part)
            _save(out, view, paths, np.concatenate(embs), label)
            n += len(chunk)
            print(f"{view}: {len(paths)} cached, {len(entry[1])} to go; "
                  f"{(time.time() - t0) / n:.3f} s/img overall", flush=True)
            if not entry[1]:
                state.remove(entry)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model_training.embed_cache")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("runs/embeddings"))
    ap.add_argument("--only", help="only views whose name starts with this")
    ap.add_argument("--flush", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--robust-cap", type=int, default=30,
                    help="images per class and set for the q75/half probes")
    ap.add_argument("--cap", action="append", default=[], metavar="VIEW_PREFIX=N",
                    help="embed at most N images of the views starting with VIEW_PREFIX "
                         "(the first N of a fixed permutation; repeatable)")
    args = ap.parse_args(argv)
    caps = {k: int(v) for k, v in (c.split("=", 1) for c in args.cap)}
    run(args.data, args.out, args.only, args.flush, args.batch, args.robust_cap, caps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
