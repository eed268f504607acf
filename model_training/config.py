"""Training configuration: one dataclass, YAML presets, the resolved copy saved beside a run.

A preset (``model_training/presets/<name>.yaml``) lists only what differs from the dataclass
defaults, which are Wang et al.'s training options (Adam 1e-4, batch 64, crop 224, patience 5,
lr / 10 down to 1e-6). ``load_config`` accepts a preset name or a YAML path plus keyword
overrides; ``save_config`` writes the fully resolved configuration so a run can be repeated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from model_training.augment import AugmentConfig

PRESET_DIR = Path(__file__).resolve().parent / "presets"

# The 20 LSUN object classes of ForenSynths' ProGAN training set.
FORENSYNTHS_CLASSES = (
    "airplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


_SCALAR_TYPES = {"float": float, "int": int, "int | None": int, "str": str,
                 "str | None": str}


@dataclass
class TrainConfig:
    """Everything a training run depends on; the defaults are the paper's code defaults."""

    name: str = "blur_jpg_prob0.5"
    seed: int = 0
    out_dir: str | None = None  # None: runs/<name>

    # Data: a ForenSynths root (``<root>/<split>/<class>/0_real|1_fake``) and/or folder lists.
    dataroot: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    classes: list[str] = field(default_factory=list)  # empty: every class folder present
    train_real_dirs: list[str] = field(default_factory=list)
    train_fake_dirs: list[str] = field(default_factory=list)
    val_real_dirs: list[str] = field(default_factory=list)
    val_fake_dirs: list[str] = field(default_factory=list)

    # Pre-processing and augmentation (CNNDetection data/datasets.py order: resize, blur/JPEG,
    # crop, flip). ``load_size``: resize of the shorter side (the paper's loadSize), None: off.
    load_size: int | None = None
    rz_interp: str = "bilinear"
    crop_size: int = 224
    flip: bool = True
    blur_prob: float = 0.5
    blur_sig: tuple[float, float] = (0.0, 3.0)
    jpg_prob: float = 0.5
    jpg_qual: tuple[int, int] = (30, 100)
    jpg_method: tuple[str, ...] = ("cv2", "pil")

    # Model (ResNets are what the app loads; efficientnet_b0 stays inside model_training).
    arch: str = "resnet50"
    input_transform: str = "none"  # "none" (paper) or "npr"
    stages: int = 4
    pretrained: str = "auto"  # "auto" (torch hub cache), "none", or a state-dict path
    # Head and freezing (the CIFAKE study, model_training/study_nets.py). head "linear": one
    # Linear (the app's networks); "paper": GAP -> Dense head_hidden ReLU -> Dropout -> 1 logit.
    head: str = "linear"
    head_hidden: int = 1024
    head_dropout: float = 0.3
    train_last_n: int | None = None  # freeze all parameterised trunk layers but the last N
    frozen_bn: str = "eval"  # frozen BatchNorms: "eval" (stored statistics, as Keras) | "train"

    # CIFAKE-style protocol (model_training/cifake.py): one pool of real and fake folders
    # (train_*_dirs) split into train / val / test, each image down-scaled to lowres x lowres
    # and up-sampled to crop_size. input_norm: "imagenet" (mean/std: what torchvision ImageNet
    # weights expect), "unit" ([0, 1]: a Keras rescale=1/255 pipeline) or "caffe_unit" ([0, 1]
    # fed to a network expecting caffe-style 0-255 input, as Keras's ResNet50 weights do).
    protocol: str = "folders"  # "folders" | "cifake"
    lowres: int = 32
    lowres_upsample: str = "nearest"  # Keras flow_from_directory's default interpolation
    zoom: float = 0.0  # random zoom in [1 - zoom, 1 + zoom] per axis (Keras zoom_range)
    input_norm: str = "imagenet"
    test_fraction: float = 0.2
    val_fraction: float = 0.2
    max_per_class: int | None = None

    # Optimisation (paper: Adam lr 1e-4, beta1 0.9, batch 64; early stop on val acc).
    batch_size: int = 64  # global batch; divided across processes under torchrun
    lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.0
    max_epochs: int = 10000  # the paper's niter; the plateau schedule ends runs long before
    patience: int = 5
    min_delta: float = 0.001  # improvement needed before the first decay (paper: delta -0.001)
    min_delta_after_decay: float = 0.002  # and after it (paper: delta -0.002)
    lr_decay: float = 10.0
    min_lr: float = 1e-6

    # Engineering
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # float16 autocast + GradScaler, CUDA only
    channels_last: bool = False
    workers: int = 4
    val_batch_size: int = 64
    log_every: int = 400  # the paper's loss_freq
    save_every_steps: int = 0  # extra mid-epoch checkpoints (0: end of each epoch only)
    keep_epoch_checkpoints: bool = False  # also keep epoch_<n>.pt
    max_steps_per_epoch: int | None = None  # cap for smoke runs
    progress_bar: bool = True

    def __post_init__(self) -> None:
        # YAML 1.1 reads "1e-4" as a string: coerce scalars to the declared types.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = _SCALAR_TYPES.get(str(f.type))
            if kind is not None and value is not None and not isinstance(value, bool):
                setattr(self, f.name, kind(value))
            elif kind is not None and isinstance(value, bool) and kind is not bool:
                raise ValueError(f"{f.name} must be a number, not {value!r}")
        self.blur_sig = tuple(float(v) for v in self.blur_sig)  # type: ignore[assignment]
        self.jpg_qual = tuple(int(v) for v in self.jpg_qual)  # type: ignore[assignment]
        self.jpg_method = tuple(str(v) for v in self.jpg_method)
        self.classes = [str(c) for c in self.classes]
        for name in ("train_real_dirs", "train_fake_dirs", "val_real_dirs", "val_fake_dirs"):
            setattr(self, name, [str(p) for p in getattr(self, name)])
        if len(self.blur_sig) != 2 or len(self.jpg_qual) != 2:
            raise ValueError("blur_sig and jpg_qual are (low, high) ranges")
        if not (0.0 <= self.blur_prob <= 1.0 and 0.0 <= self.jpg_prob <= 1.0):
            raise ValueError("blur_prob and jpg_prob must lie in [0, 1]")
        if not 1 <= self.jpg_qual[0] <= self.jpg_qual[1] <= 100:
            raise ValueError(f"jpg_qual must satisfy 1 <= low <= high <= 100, got {self.jpg_qual}")
        unknown = set(self.jpg_method) - {"cv2", "pil"}
        if unknown or not self.jpg_method:
            raise ValueError(f"jpg_method must be a non-empty subset of cv2, pil; got {self.jpg_method}")
        if self.batch_size < 1 or self.crop_size < 1 or self.patience < 1:
            raise ValueError("batch_size, crop_size and patience must be positive")
        self._check_study_fields()

    def _check_study_fields(self) -> None:
        choices = {"head": ("linear", "paper"), "frozen_bn": ("eval", "train"),
                   "protocol": ("folders", "cifake"),
                   "input_norm": ("imagenet", "unit", "caffe_unit"),
                   "lowres_upsample": ("nearest", "bilinear", "bicubic")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not "
                                 f"{getattr(self, name)!r}")
        if self.input_norm != "imagenet" and self.protocol != "cifake":
            raise ValueError("input_norm other than imagenet is implemented for the cifake "
                             "protocol only")
        if self.arch == "inception_v3" and self.crop_size < 75:
            raise ValueError(f"inception_v3 needs crop_size >= 75, got {self.crop_size}")
        if self.train_last_n is not None and self.train_last_n < 0:
            raise ValueError("train_last_n must be >= 0 (or null: train every layer)")
        if not 0.0 <= self.zoom < 1.0 or not 0.0 <= self.head_dropout < 1.0:
            raise ValueError("zoom and head_dropout must lie in [0, 1)")
        if not (0.0 < self.test_fraction < 1.0 and 0.0 < self.val_fraction < 1.0):
            raise ValueError("test_fraction and val_fraction must lie in (0, 1)")
        if self.lowres < 1 or self.head_hidden < 1:
            raise ValueError("lowres and head_hidden must be positive")

    def augment_config(self) -> AugmentConfig:
        return AugmentConfig(
            blur_prob=self.blur_prob, blur_sig=self.blur_sig, jpg_prob=self.jpg_prob,
            jpg_qual=self.jpg_qual, jpg_method=self.jpg_method,
        )

    def arch_dict(self) -> dict[str, Any]:
        """The architecture record stored in checkpoints (the app's ``meta["architecture"]``)."""
        arch: dict[str, Any] = {"name": self.arch, "num_outputs": 1}
        if self.arch.startswith("resnet"):
            arch.update(input_transform=self.input_transform, stages=self.stages)
        if self.arch == "inception_v3":
            arch["aux_logits"] = False
        if self.head != "linear" or self.arch == "inception_v3":
            arch["head"] = self.head
            if self.head == "paper":
                arch.update(head_hidden=self.head_hidden, head_dropout=self.head_dropout)
        return arch

    def resolved_out_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else Path("runs") / self.name

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON/weights-only-safe data (tuples become lists)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple | list) else value
        return out


def config_fields() -> set[str]:
    return {f.name for f in dataclasses.fields(TrainConfig)}


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def resolve_preset(path_or_name: str | Path) -> Path:
    """A YAML path as given, or the name of a bundled preset."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    preset = PRESET_DIR / f"{path_or_name}.yaml"
    if preset.is_file():
        return preset
    raise FileNotFoundError(
        f"{path_or_name}: neither a YAML file nor a preset; presets: {', '.join(list_presets())}"
    )


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    unknown = set(values) - config_fields()
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
    return TrainConfig(**values)


def load_config(yaml_path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then the preset/YAML file, then ``overrides`` (None values are ignored)."""
    values: dict[str, Any] = {}
    if yaml_path is not None:
        with open(resolve_preset(yaml_path), encoding="utf-8") as fh:
            loaded = yaml.safe_load(fh) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{yaml_path}: expected a mapping of config keys")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_dict(values)


def save_config(cfg: TrainConfig, path: str | Path) -> Path:
    """Write the resolved configuration as YAML (atomically)."""
    from model_training.checkpoint import atomic_write_text

    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None)
    return atomic_write_text(Path(path), text)


def parse_override(item: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is parsed as YAML (lists, numbers...)."""
    if "=" not in item:
        raise ValueError(f"--set expects key=value, got {item!r}")
    key, raw = item.split("=", 1)
    key = key.strip()
    if key not in config_fields():
        raise ValueError(f"unknown config key {key!r}")
    return key, yaml.safe_load(raw) if raw.strip() else None
