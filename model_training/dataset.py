"""Datasets of labelled image files, the training/validation transforms, resumable sampling.

Sources are ForenSynths-style folders (``<root>/<class>/0_real|1_fake`` or
``<root>/0_real|1_fake``) and/or explicit lists of real and fake folders. Images are decoded
by ``forensics_app.core.loading`` (EXIF orientation, any mode -> RGB) and normalised by
``forensics_app.core.preprocess.to_normalized_tensor`` -- the same code the app uses.

Randomness is a pure function of ``(seed, epoch, index)``: a sample gets the same crop, flip
and blur/JPEG draw whichever DataLoader worker loads it, and a resumed run replays the exact
batches the interrupted one would have seen.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from forensics_app.core.loading import decode_image, looks_like_image
from forensics_app.core.preprocess import to_normalized_tensor
from model_training.augment import (
    AugmentConfig,
    apply_params,
    draw_params,
    validation_params_for,
)

log = logging.getLogger(__name__)

REAL_DIR, FAKE_DIR = "0_real", "1_fake"
RESAMPLE = {
    "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS,
    "nearest": Image.NEAREST,
}


@dataclass(frozen=True)
class Sample:
    path: str
    label: int  # 0 real, 1 fake


def list_image_files(folder: Path | str) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted, hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and looks_like_image(p)
    )


def is_real_fake_folder(folder: Path) -> bool:
    return (folder / REAL_DIR).is_dir() and (folder / FAKE_DIR).is_dir()


def forensynths_samples(root: Path | str, classes: Sequence[str] | None = None) -> list[Sample]:
    """Samples of a ForenSynths split (``root/<class>/0_real|1_fake``) or one real/fake folder.

    ``classes`` selects class sub-folders (the paper's 2/4/8/16/20-class study); a requested
    class that is missing is an error, not a silent omission.
    """
    root = Path(root)
    if is_real_fake_folder(root):
        if classes:
            raise ValueError(f"{root} has no class folders, but classes {list(classes)} were asked")
        return folder_samples([root / REAL_DIR], [root / FAKE_DIR])
    available = sorted(p.name for p in root.iterdir() if p.is_dir() and is_real_fake_folder(p))
    if not available:
        raise FileNotFoundError(f"{root}: no 0_real/1_fake folders (directly or per class)")
    chosen = list(classes) if classes else available
    missing = [c for c in chosen if c not in available]
    if missing:
        raise FileNotFoundError(f"{root}: class folders not found: {', '.join(missing)}")
    samples: list[Sample] = []
    for cls in chosen:
        samples += folder_samples([root / cls / REAL_DIR], [root / cls / FAKE_DIR])
    return samples


def folder_samples(real_dirs: Sequence[Path | str], fake_dirs: Sequence[Path | str]) -> list[Sample]:
    samples = [Sample(str(p), 0) for d in real_dirs for p in list_image_files(d)]
    samples += [Sample(str(p), 1) for d in fake_dirs for p in list_image_files(d)]
    return samples


def samples_for_split(cfg, split: str) -> list[Sample]:
    """Training (``split="train"``) or validation samples named by a :class:`TrainConfig`."""
    if split not in ("train", "val"):
        raise ValueError("split must be 'train' or 'val'")
    samples: list[Sample] = []
    if cfg.dataroot:
        sub = cfg.train_split if split == "train" else cfg.val_split
        samples += forensynths_samples(Path(cfg.dataroot) / sub, cfg.classes or None)
    samples += folder_samples(getattr(cfg, f"{split}_real_dirs"), getattr(cfg, f"{split}_fake_dirs"))
    if not samples:
        raise ValueError(f"no {split} data: set dataroot or {split}_real_dirs/{split}_fake_dirs")
    return samples


def label_counts(samples: Sequence[Sample]) -> dict[str, int]:
    n_fake = sum(s.label for s in samples)
    return {"real": len(samples) - n_fake, "fake": n_fake}


def manifest_sha256(samples: Sequence[Sample]) -> str:
    """Identity of a data set: label, path relative to the common root, and size per file.

    Cheap (no pixel reading) and independent of where the data set is mounted.
    """
    if not samples:
        return hashlib.sha256(b"").hexdigest()
    paths = [os.path.abspath(s.path) for s in samples]
    root = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0])
    h = hashlib.sha256()
    for s, p in sorted(zip(samples, paths, strict=True), key=lambda t: t[1]):
        rel = Path(os.path.relpath(p, root)).as_posix()
        h.update(f"{s.label}\t{rel}\t{os.path.getsize(p)}\n".encode())
    return h.hexdigest()


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def load_rgb(path: str | Path) -> Image.Image:
    path = Path(path)
    img, _ = decode_image(path.read_bytes(), path)
    return img


def resize_short_side(img: Image.Image, size: int, interp: str = "bilinear") -> Image.Image:
    """torchvision ``resize(img, int)`` semantics: shorter side to ``size``, aspect kept."""
    w, h = img.size
    if min(w, h) == size:
        return img
    if w <= h:
        new = (size, int(size * h / w))
    else:
        new = (int(size * w / h), size)
    return img.resize(new, RESAMPLE[interp])


def pad_to(img: Image.Image, size: int) -> Image.Image:
    """Zero-pad on the right/bottom up to ``size`` (torchvision's ``pad_if_needed`` fill 0)."""
    w, h = img.size
    if w >= size and h >= size:
        return img
    canvas = Image.new("RGB", (max(w, size), max(h, size)))
    canvas.paste(img, (0, 0))
    return canvas


def random_crop(img: Image.Image, size: int, rng: random.Random) -> Image.Image:
    img = pad_to(img, size)
    w, h = img.size
    left, top = rng.randint(0, w - size), rng.randint(0, h - size)
    return img.crop((left, top, left + size, top + size))


def center_crop(img: Image.Image, size: int) -> Image.Image:
    img = pad_to(img, size)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


@dataclass(frozen=True)
class TrainTransform:
    """Resize (optional) -> blur/JPEG -> random crop -> random flip -> normalise."""

    augment: AugmentConfig
    crop_size: int | None = 224
    load_size: int | None = None
    rz_interp: str = "bilinear"
    flip: bool = True

    def __call__(self, img: Image.Image, index: int, rng: random.Random) -> torch.Tensor:
        if self.load_size:
            img = resize_short_side(img, self.load_size, self.rz_interp)
        img = apply_params(img, draw_params(self.augment, rng))
        if self.crop_size:
            img = random_crop(img, self.crop_size, rng)
        if self.flip and rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return to_normalized_tensor(img)


@dataclass(frozen=True)
class EvalTransform:
    """Validation: resize (optional) -> deterministic blur/JPEG -> centre crop -> normalise."""

    augment: AugmentConfig
    crop_size: int | None = 224
    load_size: int | None = None
    rz_interp: str = "bilinear"
    seed: int = 0

    def __call__(self, img: Image.Image, index: int, rng: random.Random) -> torch.Tensor:
        if self.load_size:
            img = resize_short_side(img, self.load_size, self.rz_interp)
        img = apply_params(img, validation_params_for(self.augment, index, self.seed))
        if self.crop_size:
            img = center_crop(img, self.crop_size)
        return to_normalized_tensor(img)


class ImageFileDataset(Dataset):
    """(normalised image, float label) pairs from a list of :class:`Sample`."""

    def __init__(self, samples: Sequence[Sample], transform, seed: int = 0):
        self.samples = list(samples)
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.samples[index]
        rng = random.Random(sample_seed(self.seed, self.epoch, index))
        img = load_rgb(sample.path)
        return self.transform(img, index, rng), torch.tensor(float(sample.label))

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (shuffle seeded by seed + epoch) that can start mid-epoch.

    Used with one process too, so the order of an epoch depends only on (seed, epoch) and a
    resumed run skips exactly the batches already trained on.
    """

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=seed, drop_last=drop_last)
        self.start_index = 0

    def set_start(self, start_index: int) -> None:
        """Skip the first ``start_index`` samples of this rank's share (one epoch only)."""
        self.start_index = max(0, int(start_index))

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        ds = self.dataset
        if hasattr(ds, "set_epoch"):  # in-process copy; workers get it when they are forked
            ds.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        start, self.start_index = self.start_index, 0
        return iter(indices[start:])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start_index)


def _worker_init(worker_id: int) -> None:
    torch.set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - opencv is a training dependency
        pass


def build_loader(
    dataset: Dataset, batch_size: int, *, train: bool, workers: int = 0, seed: int = 0,
    rank: int = 0, world_size: int = 1, pin_memory: bool = False,
) -> DataLoader:
    """Training loaders shuffle (per epoch) and drop the last partial batch; eval loaders don't.

    ``workers`` > 0 use persistent-free workers re-created each epoch, so each sees the
    dataset's current epoch number.
    """
    sampler = ResumableSampler(dataset, num_replicas=world_size, rank=rank, shuffle=train,
                               seed=seed, drop_last=False)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
        drop_last=train, pin_memory=pin_memory, worker_init_fn=_worker_init if workers else None,
        persistent_workers=False,
    )


def build_datasets(cfg) -> tuple[ImageFileDataset, ImageFileDataset]:
    """Training and validation datasets described by a :class:`TrainConfig`."""
    aug = cfg.augment_config()
    train = ImageFileDataset(
        samples_for_split(cfg, "train"),
        TrainTransform(aug, cfg.crop_size, cfg.load_size, cfg.rz_interp, cfg.flip),
        seed=cfg.seed,
    )
    val = ImageFileDataset(
        samples_for_split(cfg, "val"),
        EvalTransform(aug, cfg.crop_size, cfg.load_size, cfg.rz_interp, seed=cfg.seed),
        seed=cfg.seed,
    )
    for name, ds in (("train", train), ("val", val)):
        counts = label_counts(ds.samples)
        log.info("%s: %d images (%d real, %d fake)", name, len(ds), counts["real"], counts["fake"])
        if not counts["real"] or not counts["fake"]:
            raise ValueError(f"{name} data needs both real and fake images, got {counts}")
    return train, val

