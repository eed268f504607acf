"""Atomic file writes and the training checkpoint format.

Every file a run writes goes to a temporary name in the same folder and is then
``os.replace``d, so a crash mid-write never leaves a truncated checkpoint, table or figure
(timm's ``checkpoint_saver.py`` pattern). Training checkpoints hold only tensors and plain
data so they load with ``torch.load(..., map_location="cpu", weights_only=True)``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

TRAINING_FORMAT = "forensics-training"
TRAINING_FORMAT_VERSION = 1


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(obj: Any, path: Path | str) -> Path:
    return _atomic(Path(path), lambda tmp: torch.save(obj, tmp))


def atomic_write_text(path: Path | str, text: str) -> Path:
    return _atomic(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_savefig(fig: Any, path: Path | str, **kwargs: Any) -> Path:
    """Save a matplotlib figure atomically (the format follows ``path``'s suffix)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return _atomic(Path(path), lambda tmp: fig.savefig(tmp, format=fmt, **kwargs))


def load_torch_file(path: Path | str) -> Any:
    """The one way this package reads a checkpoint: CPU, weights only."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def load_training_checkpoint(path: Path | str) -> dict[str, Any]:
    obj = load_torch_file(path)
    if not isinstance(obj, dict) or obj.get("format") != TRAINING_FORMAT:
        raise ValueError(f"{path}: not a {TRAINING_FORMAT} checkpoint")
    if obj.get("format_version") != TRAINING_FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format_version {obj.get('format_version')!r}")
    return obj


def plain_data(value: Any, where: str = "meta") -> Any:
    """Convert to weights-only-safe plain data (dict/list/str/number/bool/None), or raise."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()  # numpy / torch scalars
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: key {k!r} is not a string")
            out[k] = plain_data(v, f"{where}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [plain_data(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{where}: {type(value).__name__} is not plain data (dict/list/str/number)")
