"""Resumable cache of per-block CLIP features for detector v4 (``../shared/DETECTION_NOTES.md``
pilots 7-8): one forward pass of the shipped CLIP graph gives, per image, the final embedding
(512) and the CLS token after each of the 12 encoder blocks (12 × 768, ``block_cls``).

``python -m model_training.block_cache --data ../shared/data --out runs/blocks`` computes, for
every image of ``train/`` and ``extra/`` (each in a named *group*: a real domain or a fake
family), two variants, the same for both classes so that format, size and JPEG history carry no
label (data README, "Known shortcut risks"; ``extra/README.md``):

- ``n90``: the centre 224² crop, re-encoded JPEG q90 (dev_test's own normalisation);
- ``aug``: a seeded random augmentation — resize ×0.5-1.5, random 224² crop, light blur or
  noise, then JPEG q60-95, WebP q70-95 or lossless PNG.

and for ``dev_test`` (scored once per shipped candidate, never used to choose) the files as
given plus JPEG q75 and 0.5× probes. Each view is appended to ``<out>/<view>.npz`` every
``--flush`` images, round-robin over the views, so a killed job resumes where it stopped and
training can start on an even spread of what is cached.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from forensics_app.core.semantic import ClipEncoder, clip_input
from forensics_app.weights import find_asset
from model_training.embed_cache import _taef2_transform, half, jpeg, list_images

# group name -> (folder under the data root, label, kind); kind is the real domain or the fake
# family used by leave-one-out validation.
REAL_GROUPS = {
    "web_imagenet": "train/real/imagenet_sample",
    "web_bsds": "train/real/bsds500",
    "faces": "extra/real_faces",
    "camera": "extra/real_camera",
    "nonphoto": "extra/real_nonphoto",
}
REAL_DOMAIN = {"web_imagenet": "web", "web_bsds": "web", "faces": "faces",
               "camera": "camera", "nonphoto": "nonphoto"}
FAKE_GROUPS = {
    "sd14": "train/fake/sd14",
    "sd15": "train/fake/sd15",
    "stylegan2": "train/fake/stylegan2",
    "gan_faces": "extra/fake_gan_faces",
}
MODERN = ("flux", "hunyuan", "imagen", "infinity", "kandinsky", "kolors", "midjourney", "muse",
          "omnigen", "pixart", "sdxl")
VARIANTS = ("n90", "aug")
TAEF2_CAP = 400  # content-aligned fakes: TAEF2 reconstructions of this many training reals


def groups(data: Path) -> dict[str, tuple[list[Path], int]]:
    out: dict[str, tuple[list[Path], int]] = {}
    for name, rel in REAL_GROUPS.items():
        if (data / rel).is_dir():
            out[f"real/{name}"] = (list_images(data / rel), 0)
    for name, rel in FAKE_GROUPS.items():
        if (data / rel).is_dir():
            out[f"fake/{name}"] = (list_images(data / rel), 1)
    for fam in MODERN:
        folder = data / "extra" / "fake_modern" / fam
        if folder.is_dir():
            out[f"fake/modern_{fam}"] = (list_images(folder), 1)
    return out


def _rng(path: Path, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{path.name}:{seed}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def centre(img: Image.Image, size: int = 224) -> Image.Image:
    w, h = img.size
    cw, ch = min(w, size), min(h, size)
    left, top = (w - cw) // 2, (h - ch) // 2
    return img.crop((left, top, left + cw, top + ch))


def n90(img: Image.Image, path: Path) -> Image.Image:
    return jpeg(centre(img.convert("RGB")), 90)


def augment(img: Image.Image, path: Path, seed: int = 1) -> Image.Image:
    """The same seeded augmentation for both classes (issue 38, step 1)."""
    rng = _rng(path, seed)
    img = img.convert("RGB")
    if rng.random() < 0.7:
        f = float(rng.uniform(0.5, 1.5))
        w, h = img.size
        resample = (Image.Resampling.BICUBIC, Image.Resampling.BILINEAR,
                    Image.Resampling.LANCZOS)[int(rng.integers(3))]
        img = img.resize((max(16, round(w * f)), max(16, round(h * f))), resample)
    w, h = img.size
    if w > 224 or h > 224:
        left = int(rng.integers(0, max(1, w - 224 + 1)))
        top = int(rng.integers(0, max(1, h - 224 + 1)))
        img = img.crop((left, top, left + min(w, 224), top + min(h, 224)))
    r = rng.random()
    if r < 0.1:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.5))))
    elif r < 0.2:
        a = np.asarray(img, dtype=np.float32)
        a = a + rng.normal(0, float(rng.uniform(1.0, 4.0)), a.shape)
        img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    r = rng.random()
    buf = io.BytesIO()
    if r < 0.6:
        img.save(buf, "JPEG", quality=int(rng.integers(60, 96)))
    elif r < 0.8:
        img.save(buf, "WEBP", quality=int(rng.integers(70, 96)))
    else:
        return img
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


Transform = Callable[[Image.Image, Path], Image.Image]


@dataclass
class View:
    name: str
    files: list[Path]
    label: int
    fn: Transform


def views(data: Path, robust_cap: int) -> Iterator[View]:
    gs = groups(data)
    for variant, fn in (("n90", n90), ("aug", augment)):
        for g, (files, label) in gs.items():
            yield View(f"{g}/{variant}", files, label, fn)
    reals = gs.get("real/web_imagenet", ([], 0))[0] + gs.get("real/web_bsds", ([], 0))[0]
    order = np.random.default_rng(0).permutation(len(reals))
    taef2_reals = [reals[i] for i in order[:TAEF2_CAP]]
    if (data / "models" / "taef2").is_dir() and taef2_reals:
        t = _taef2_transform(data)
        yield View("fake/taef2/n90", taef2_reals, 1, lambda im, p: jpeg(centre(t(im)), 90))
        yield View("fake/taef2/aug", taef2_reals, 1, lambda im, p: augment(t(im), p))
    dev = data / "dev_test"
    for s in sorted(p for p in dev.iterdir() if p.is_dir()) if dev.is_dir() else []:
        for cls, label in (("0_real", 0), ("1_fake", 1)):
            files = list_images(s / cls)
            yield View(f"dev/{s.name}/{cls}/orig", files, label, lambda im, p: im.convert("RGB"))
            yield View(f"dev/{s.name}/{cls}/q75", files[:robust_cap], label,
                       lambda im, p: jpeg(im.convert("RGB"), 75))
            yield View(f"dev/{s.name}/{cls}/half", files[:robust_cap], label,
                       lambda im, p: half(im.convert("RGB")))


def cache_path(out: Path, view: str) -> Path:
    return out / (view.replace("/", "__") + ".npz")


def load_view(out: Path, view: str) -> tuple[list[str], np.ndarray, np.ndarray, int] | None:
    """(paths, embeddings [N,512] float32, block CLS [N,9216] float32, label) or None."""
    p = cache_path(out, view)
    if not p.is_file():
        return None
    z = np.load(p, allow_pickle=False)
    return ([str(x) for x in z["paths"]], z["emb"].astype(np.float32),
            z["blocks"].astype(np.float32), int(z["label"]))


def _save(out: Path, view: str, paths: list[str], emb: np.ndarray, blocks: np.ndarray,
          label: int) -> None:
    p = cache_path(out, view)
    tmp = p.with_suffix(".tmp.npz")
    np.savez(tmp, paths=np.array(paths), emb=emb.astype(np.float32),
             blocks=blocks.astype(np.float16), label=np.int64(label))
    os.replace(tmp, p)


def run(data: Path, out: Path, only: str | None, flush: int, batch: int, robust_cap: int,
        caps: dict[str, int] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    enc = ClipEncoder(find_asset("clip-vitb16"))
    state = []
    for v in views(data, robust_cap):
        if only and not v.name.startswith(tuple(only.split(","))):
            continue
        order = np.random.default_rng(0).permutation(len(v.files))
        files = [v.files[i] for i in order]
        for suffix, cap in (caps or {}).items():  # the first N of a fixed permutation
            if v.name.endswith(suffix) or v.name.startswith(suffix):
                files = files[:cap]
        have = load_view(out, v.name)
        paths, embs, blocks = (have[0], [have[1]], [have[2]]) if have else ([], [], [])
        done = set(paths)
        todo = [f for f in files if str(f) not in done]
        if todo:
            state.append([v, todo, paths, embs, blocks])
    t0, n = time.time(), 0
    while state:
        for entry in list(state):
            v, todo, paths, embs, blocks = entry
            chunk, entry[1] = todo[:flush], todo[flush:]
            for i in range(0, len(chunk), batch):
                part = chunk[i:i + batch]
                ims = []
                for p in part:
                    with Image.open(p) as im:
                        ims.append(clip_input(v.fn(im, p)))
                e, b = enc.features(np.stack(ims))
                embs.append(e)
                blocks.append(b.astype(np.float16))
                paths.extend(str(p) for p in part)
            _save(out, v.name, paths, np.concatenate(embs), np.concatenate(blocks), v.label)
            embs[:] = [np.concatenate(embs)]
            blocks[:] = [np.concatenate(blocks)]
            n += len(chunk)
            print(f"{v.name}: {len(paths)} cached, {len(entry[1])} to go; "
                  f"{(time.time() - t0) / n:.3f} s/img overall", flush=True)
            if not entry[1]:
                state.remove(entry)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model_training.block_cache")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("runs/blocks"))
    ap.add_argument("--only", help="only views whose name starts with one of these (comma-separated)")
    ap.add_argument("--flush", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--robust-cap", type=int, default=30,
                    help="images per class and set for the q75/half probes")
    ap.add_argument("--cap", action="append", default=[], metavar="VIEW_AFFIX=N",
                    help="at most N images of the views whose name starts or ends with "
                         "VIEW_AFFIX (the first N of a fixed permutation; repeatable)")
    args = ap.parse_args(argv)
    caps = {k: int(v) for k, v in (c.rsplit("=", 1) for c in args.cap)}
    run(args.data, args.out, args.only, args.flush, args.batch, args.robust_cap, caps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
