"""A CIFAKE-style protocol built from the team's data, and the study's train + test command.

CIFAKE (Bird & Lotfi 2024) pairs 32x32 CIFAR-10 photos with 32x32 Stable Diffusion 1.4
renders. CIFAKE itself is not reachable here, so the protocol is rebuilt from one pool of real
and fake folders (``train_real_dirs`` / ``train_fake_dirs``, e.g. ``train/real/*`` and
``train/fake/sd14``):

1. each image is centre-cropped to a square (its shorter side: no aspect distortion, which
   would differ between 4:3 photos and square renders) and down-scaled to ``lowres`` px with
   an anti-aliasing filter (Lanczos) -- the 32x32 of CIFAKE;
2. the pool is split per class, seeded: ``test_fraction`` held out for the test, then
   ``val_fraction`` of the rest for validation (the study's 80/20), the rest trains;
3. at load time the small image is up-sampled to ``crop_size`` (``lowres_upsample``:
   nearest is Keras ``flow_from_directory``'s default), then -- training only -- flipped with
   probability 1/2 and zoomed by a factor in [1 - zoom, 1 + zoom] per axis (Keras
   ``zoom_range``: bilinear, edges repeated), then scaled as ``input_norm`` says.

The low-resolution pool is decoded once and cached as ``.npz`` next to the run (never in
the repository). ``python -m model_training cifake --config cifake_paper ...`` trains with
:func:`model_training.train.fit`, then scores the held-out test split and prints the study's
metrics (accuracy, precision, recall, specificity, F1, confusion matrix) at the 0.5 threshold,
and at the threshold that is best on validation (to separate calibration from ranking).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import affine_transform
from torch import nn
from torch.utils.data import Dataset

from forensics_app.core.preprocess import IMAGENET_MEAN, IMAGENET_STD
from model_training.checkpoint import atomic_write_text, plain_data
from model_training.config import TrainConfig
from model_training.dataset import (
    RESAMPLE,
    Sample,
    folder_samples,
    label_counts,
    load_rgb,
    manifest_sha256,
    sample_seed,
)
from model_training.metrics import average_precision, paper_metrics
from model_training.study_nets import FrozenStatsBatchNorm2d

log = logging.getLogger(__name__)

_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32).reshape(3, 1, 1)
_STD = np.asarray(IMAGENET_STD, dtype=np.float32).reshape(3, 1, 1)


def to_lowres(img: Image.Image, size: int) -> Image.Image:
    """Centre square crop (shorter side), then Lanczos down-scale to ``size`` x ``size``."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.convert("RGB").crop((left, top, left + side, top + side))
    return img.resize((size, size), Image.LANCZOS, reducing_gap=None)


def cap_per_class(samples: Sequence[Sample], max_per_class: int | None,
                  seed: int = 0) -> list[Sample]:
    """At most ``max_per_class`` of each label, drawn with a seeded shuffle (order kept)."""
    if max_per_class is None:
        return list(samples)
    keep: set[int] = set()
    for label in (0, 1):
        idx = [i for i, s in enumerate(samples) if s.label == label]
        random.Random(seed * 7 + label).shuffle(idx)
        keep.update(idx[:max_per_class])
    return [s for i, s in enumerate(samples) if i in keep]


def split_samples(samples: Sequence[Sample], test_fraction: float = 0.2,
                  val_fraction: float = 0.2, seed: int = 0) -> dict[str, list[Sample]]:
    """Stratified, seeded train / val / test split (test first, then val from the rest).

    The split depends on the files and the seed only, so every network of the study sees the
    same three sets.
    """
    out: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    for label in (0, 1):
        group = sorted((s for s in samples if s.label == label), key=lambda s: s.path)
        rng = random.Random(f"cifake-split:{seed}:{label}")
        rng.shuffle(group)
        n_test = round(len(group) * test_fraction)
        rest = group[n_test:]
        n_val = round(len(rest) * val_fraction)
        out["test"] += group[:n_test]
        out["val"] += rest[:n_val]
        out["train"] += rest[n_val:]
    for name, part in out.items():  # mixed classes in every evaluation batch
        random.Random(f"cifake-order:{seed}:{name}").shuffle(part)
    return out


def lowres_pool(samples: Sequence[Sample], size: int,
                cache_dir: Path | None = None) -> np.ndarray:
    """(N, size, size, 3) uint8 low-resolution copies of ``samples``, cached by manifest."""
    key = hashlib.sha256(f"{manifest_sha256(samples)}:{size}:lanczos-square".encode())
    cache = cache_dir / f"lowres_{size}_{key.hexdigest()[:16]}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        with np.load(cache) as data:
            arr = data["images"]
        if arr.shape == (len(samples), size, size, 3):
            return arr
    arr = np.stack([np.asarray(to_lowres(load_rgb(s.path), size)) for s in samples])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, images=arr)
        tmp.replace(cache)
    return arr


def normalise(arr01: np.ndarray, input_norm: str) -> np.ndarray:
    """CHW float in [0, 1] -> the network's input scale (see the module docstring)."""
    if input_norm == "imagenet":
        return (arr01 - _MEAN) / _STD
    if input_norm == "unit":
        return arr01
    if input_norm == "caffe_unit":
        # A caffe-style network computes f((255 x - 255 mean) [BGR]); its torchvision
        # counterpart takes (x - mean) / std. Given x in [0, 1] instead of 0-255 the caffe net
        # sees what the torchvision one would see for x / (255 std): inputs near zero.
        return arr01 / (255.0 * _STD)
    raise ValueError(f"unknown input_norm {input_norm!r}")


def zoom_image(arr: np.ndarray, zx: float, zy: float) -> np.ndarray:
    """Keras-style zoom of an HWC array: output (x, y) samples input (c + z (x - c)); a factor
    above 1 zooms out. Bilinear, edges repeated (Keras ``fill_mode="nearest"``)."""
    h, w = arr.shape[:2]
    matrix = np.diag([zy, zx])
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    offset = centre - matrix @ centre
    out = np.empty_like(arr)
    for c in range(arr.shape[2]):
        out[..., c] = affine_transform(arr[..., c], matrix, offset=offset, order=1,
                                       mode="nearest")
    return out


class LowResDataset(Dataset):
    """Low-resolution images, up-sampled (and augmented for training) on the fly."""

    def __init__(self, images: np.ndarray, samples: Sequence[Sample], *, crop_size: int,
                 upsample: str = "nearest", input_norm: str = "imagenet", train: bool = False,
                 flip: bool = True, zoom: float = 0.0, seed: int = 0):
        if len(images) != len(samples):
            raise ValueError("images and samples differ in length")
        self.images, self.samples = images, list(samples)
        self.crop_size, self.upsample, self.input_norm = crop_size, upsample, input_norm
        self.train, self.flip, self.zoom = train, flip, zoom
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = Image.fromarray(self.images[index]).resize(
            (self.crop_size, self.crop_size), RESAMPLE[self.upsample])
        arr = np.asarray(img, dtype=np.float32) / 255.0
        if self.train:
            rng = random.Random(sample_seed(self.seed, self.epoch, index))
            if self.flip and rng.random() < 0.5:
                arr = arr[:, ::-1]
            if self.zoom > 0:
                zx, zy = (rng.uniform(1 - self.zoom, 1 + self.zoom) for _ in range(2))
                arr = zoom_image(np.ascontiguousarray(arr), zx, zy)
        chw = normalise(np.ascontiguousarray(arr.transpose(2, 0, 1)), self.input_norm)
        return torch.from_numpy(chw.astype(np.float32)), torch.tensor(
            float(self.samples[index].label))

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)


def build_cifake_datasets(cfg: TrainConfig, cache_dir: Path | None = None
                          ) -> tuple[LowResDataset, LowResDataset, LowResDataset]:
    """Train, validation and held-out test sets of the CIFAKE-style protocol."""
    pool = folder_samples(cfg.train_real_dirs, cfg.train_fake_dirs)
    pool = cap_per_class(pool, cfg.max_per_class, cfg.seed)
    counts = label_counts(pool)
    if not counts["real"] or not counts["fake"]:
        raise ValueError(f"the cifake protocol needs real and fake images, got {counts}")
    if cache_dir is None:
        cache_dir = cfg.resolved_out_dir().parent / ".cifake_cache"
    images = lowres_pool(pool, cfg.lowres, cache_dir)
    index = {s.path: i for i, s in enumerate(pool)}
    parts = split_samples(pool, cfg.test_fraction, cfg.val_fraction, cfg.seed)
    common = {"crop_size": cfg.crop_size, "upsample": cfg.lowres_upsample,
              "input_norm": cfg.input_norm, "seed": cfg.seed}
    out = []
    for name in ("train", "val", "test"):
        samples = parts[name]
        rows = images[[index[s.path] for s in samples]]
        out.append(LowResDataset(rows, samples, train=name == "train", flip=cfg.flip,
                                 zoom=cfg.zoom, **common))
        c = label_counts(samples)
        log.info("cifake %s: %d images (%d real, %d fake)", name, len(samples), c["real"],
                 c["fake"])
    return out[0], out[1], out[2]


def best_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold with the highest accuracy on these samples (ties: the lowest)."""
    candidates = np.unique(np.r_[scores, np.nextafter(scores.max(), np.inf)])
    accs = [float(np.mean((scores >= t).astype(np.int64) == labels)) for t in candidates]
    return float(candidates[int(np.argmax(accs))])


@torch.inference_mode()
def scores_with_batch_statistics(model: nn.Module, loader, device: torch.device | str
                                 ) -> dict[str, np.ndarray]:
    """Test scores with the trainable BatchNorms normalising by each batch's statistics (as
    in training) instead of their stored ones, which are left untouched (momentum 0); frozen
    BatchNorms and dropout stay in eval mode.

    Set beside the ordinary scores, this separates "the network learned nothing" from "its
    stored BatchNorm statistics do not match the activations it was trained on".
    """
    model.eval()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)
           and not isinstance(m, FrozenStatsBatchNorm2d) and m.track_running_stats]
    saved = [(bn.momentum, bn.num_batches_tracked.clone()) for bn in bns]
    logits, labels = [], []
    try:
        for bn in bns:
            bn.momentum = 0.0
            bn.train()
        for images, y in loader:
            logits.append(model(images.to(device)).float().view(-1).cpu())
            labels.append(y.view(-1))
    finally:
        for bn, (momentum, tracked) in zip(bns, saved, strict=True):
            bn.momentum = momentum
            bn.num_batches_tracked.copy_(tracked)
        model.eval()
    z = torch.cat(logits).double().numpy()
    return {"labels": torch.cat(labels).long().numpy(), "scores": 1.0 / (1.0 + np.exp(-z))}


def study_report(val: dict[str, Any], test: dict[str, Any],
                 test_batch_stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """The study's metrics on the test split at 0.5 and at the validation-best threshold,
    plus AP and the spread of the logits (a collapsed network gives near-constant logits),
    and, given, the test scored with batch statistics in the BatchNorms."""
    y, s, z = test["labels"], test["scores"], test["logits"]
    t_val = best_threshold(val["labels"], val["scores"])
    logits = {name: {"mean": float(z[y == lab].mean()), "std": float(z[y == lab].std())}
              for name, lab in (("real", 0), ("fake", 1)) if (y == lab).any()}
    out = {
        "at_0.5": paper_metrics(y, s, 0.5),
        "at_val_best": {"threshold": t_val, **paper_metrics(y, s, t_val)},
        "ap": average_precision(y, s),
        "logits": logits,
    }
    if test_batch_stats is not None:
        yb, sb = test_batch_stats["labels"], test_batch_stats["scores"]
        out["batch_stats"] = {"at_0.5": paper_metrics(yb, sb, 0.5),
                              "ap": average_precision(yb, sb)}
    return out


def format_report(name: str, report: dict[str, Any]) -> str:
    def row(label: str, m: dict[str, Any]) -> str:
        cm = m["confusion"]
        return (f"| {name} | {label} | {100 * m['accuracy']:.2f} | {100 * m['precision']:.2f} "
                f"| {100 * m['recall']:.2f} | {100 * m['specificity']:.2f} "
                f"| {100 * m['f1']:.2f} | {cm['tn']}/{cm['fp']}/{cm['fn']}/{cm['tp']} |")

    head = ("| run | threshold | acc | precision | recall | specificity | F1 | tn/fp/fn/tp |\n"
            "|---|---|---|---|---|---|---|---|")
    best = report["at_val_best"]
    rows = [head, row("0.5", report["at_0.5"]), row(f"val-best {best['threshold']:.3g}", best)]
    if "batch_stats" in report:
        rows.append(row("0.5, batch-stat BN", report["batch_stats"]["at_0.5"]))
    return "\n".join([*rows,
                      f"\nAP {100 * report['ap']:.2f}; logits " + ", ".join(
                          f"{k} {v['mean']:.3g} ± {v['std']:.3g}"
                          for k, v in report["logits"].items())])


def run(cfg: TrainConfig, *, resume: bool = True, device: str | None = None) -> dict[str, Any]:
    """Train on the protocol's train split, then report on its held-out test split."""
    from forensics_app.core.detector import resolve_device
    from model_training.dataset import build_loader
    from model_training.models import build_training_model
    from model_training.train import evaluate, fit, seed_everything

    if cfg.protocol != "cifake":
        raise ValueError("the cifake command needs protocol: cifake (preset cifake_paper)")
    out_dir = cfg.resolved_out_dir()
    dev = resolve_device(device or cfg.device)
    seed_everything(cfg.seed)
    train_ds, val_ds, test_ds = build_cifake_datasets(cfg)
    train_loader = build_loader(train_ds, cfg.batch_size, train=True, workers=cfg.workers,
                                seed=cfg.seed)
    val_loader = build_loader(val_ds, cfg.val_batch_size, train=False, workers=cfg.workers)
    test_loader = build_loader(test_ds, cfg.val_batch_size, train=False, workers=cfg.workers)
    model, init_info = build_training_model(cfg.arch_dict(), cfg.pretrained,
                                            train_last_n=cfg.train_last_n,
                                            frozen_bn=cfg.frozen_bn)
    protocol = {
        "name": "cifake", "lowres": cfg.lowres, "downscale": "centre square, Lanczos",
        "upsample": cfg.lowres_upsample, "input_size": cfg.crop_size, "zoom": cfg.zoom,
        "flip": cfg.flip, "input_norm": cfg.input_norm, "max_per_class": cfg.max_per_class,
        **{name: {"n": len(ds), **label_counts(ds.samples),
                  "manifest_sha256": manifest_sha256(ds.samples)}
           for name, ds in (("train", train_ds), ("val", val_ds), ("test", test_ds))},
    }
    # Keras's fit keeps the last epoch's weights: so does the study (restore_best=False).
    summary = fit(cfg, model, train_loader, val_loader, out_dir, device=dev, resume=resume,
                  init_info=init_info, extra_meta={"protocol": protocol},
                  restore_best=False)
    val = evaluate(model, val_loader, dev)
    test = evaluate(model, test_loader, dev)
    test_bs = scores_with_batch_statistics(model, test_loader, dev)

    report = plain_data({"config": cfg.to_dict(), "init": init_info, "protocol": protocol,
                         "epochs_run": summary["epochs_run"],
                         "train_seconds": sum(h["train_seconds"] for h in summary["history"]),
                         "test": study_report(val, test, test_bs)})
    atomic_write_text(out_dir / "test_metrics.json", json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    from model_training.train import build_parser, config_from_args, setup_logging

    parser: argparse.ArgumentParser = build_parser()
    parser.prog = "python -m model_training cifake"
    parser.description = ("Train on the CIFAKE-style protocol (preset cifake_paper) and print "
                          "the study's test metrics.")
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    out_dir = cfg.resolved_out_dir()
    handler = setup_logging(out_dir, 0, args.quiet)
    try:
        report = run(cfg, resume=not args.no_resume)
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
    print(format_report(cfg.name, report["test"]))
    return 0
