"""Checks on an untrusted checkpoint, made before anything is built from it.

A checkpoint is input like any evidence file. Before ``torch.load``: the path must be a
regular, non-empty file (a FIFO, device or folder is named, never opened) and a zip archive's
declared entry sizes must fit the largest supported network (a zip bomb is refused unread).
After: its metadata is validated as a whole (so a bad field is a
:class:`~forensics_app.core.detector.CheckpointError` naming that field, never a traceback
later; fields the app does not read are dropped unless they are plain data), its tensor
shapes are compared against the architecture on PyTorch's ``meta`` device (which allocates
nothing, so a claimed 2,000,000-output head costs nothing), its weights must be finite, and
the built model must give finite, distinct scores on the self-test samples.
"""

from __future__ import annotations

import functools
import math
import os
import re
import stat
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from forensics_app.core.architectures import (
    ARCH_LAYERS,
    DEFAULT_ARCH,
    NETWORK_NAMES,
    STUDY_HEAD_REASON,
    STUDY_ONLY,
    WIDTHS,
    ForensicResNet,
    construct,
)

# Top-level metadata fields the app reads (each validated by validate_meta).
READ_META_FIELDS = ("threshold", "inconclusive_band", "calibration", "architecture",
                    "int8_calibration")

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# Integer buffers that a ResNet state dict legitimately holds.
_INTEGER_BUFFER = re.compile(r"(^|\.)num_batches_tracked$")


class CheckpointFieldError(ValueError):
    """One field of a checkpoint is unusable; ``field`` is its dotted name."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fraction(meta: dict[str, Any], key: str) -> None:
    if key not in meta:
        return
    value = meta[key]
    if not _is_real(value):
        raise CheckpointFieldError(f"meta.{key}", f"must be a number in [0, 1], found "
                                   f"{type(value).__name__} {value!r:.60}")
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise CheckpointFieldError(f"meta.{key}", f"must be a finite number in [0, 1], "
                                   f"found {value!r}")


def _check_calibration(cal: Any) -> None:
    if cal is None:
        return
    if not isinstance(cal, dict):
        raise CheckpointFieldError("meta.calibration", "must be a mapping like "
                                   f"{{'type': 'platt', 'a': ..., 'b': ...}}, found "
                                   f"{type(cal).__name__}")
    kind = cal.get("type")
    if kind != "platt":
        raise CheckpointFieldError("meta.calibration.type", f"unknown calibration {kind!r} "
                                   "(known: 'platt')")
    for key in ("a", "b"):
        if key not in cal:
            raise CheckpointFieldError(f"meta.calibration.{key}", "missing")
        value = cal[key]
        if not _is_real(value) or not math.isfinite(value):
            raise CheckpointFieldError(f"meta.calibration.{key}",
                                       f"must be a finite number, found {value!r:.60}")
    if cal["a"] <= 0:
        raise CheckpointFieldError("meta.calibration.a", f"must be positive (a slope of "
                                   f"{cal['a']!r} inverts or flattens every score)")


def _check_architecture(arch: Any) -> None:
    if not isinstance(arch, dict):
        raise CheckpointFieldError("meta.architecture",
                                   f"must be a mapping, found {type(arch).__name__}")
    full = {**DEFAULT_ARCH, **arch}
    name = full["name"]
    if isinstance(name, str) and name in STUDY_ONLY:
        raise CheckpointFieldError("meta.architecture.name", f"refused: {STUDY_ONLY[name]}")
    if full.get("head", "linear") != "linear":
        raise CheckpointFieldError("meta.architecture.head", f"refused: {STUDY_HEAD_REASON}")
    if not isinstance(name, str) or name not in NETWORK_NAMES:
        raise CheckpointFieldError("meta.architecture.name",
                                   f"unknown architecture {name!r:.60}; known: "
                                   f"{sorted(NETWORK_NAMES)}")
    outputs = full["num_outputs"]
    if not isinstance(outputs, int) or isinstance(outputs, bool) or outputs not in (1, 2):
        raise CheckpointFieldError("meta.architecture.num_outputs",
                                   f"must be 1 (one logit) or 2 (real/fake), found "
                                   f"{outputs!r:.60}")
    stages = full["stages"]
    if not isinstance(stages, int) or isinstance(stages, bool) or not 1 <= stages <= 4:
        raise CheckpointFieldError("meta.architecture.stages",
                                   f"must be an integer 1..4, found {stages!r:.60}")
    width = full["width"]
    if not isinstance(width, int) or isinstance(width, bool) or width not in WIDTHS:
        raise CheckpointFieldError("meta.architecture.width",
                                   f"must be one of {WIDTHS}, found {width!r:.60}")
    transform = full["input_transform"]
    if transform not in ("none", "npr"):
        raise CheckpointFieldError("meta.architecture.input_transform",
                                   f"must be 'none' or 'npr', found {transform!r:.60}")
    gain = full["npr_gain"]
    if not _is_real(gain) or not math.isfinite(gain) or gain <= 0:
        raise CheckpointFieldError("meta.architecture.npr_gain",
                                   f"must be a finite positive number, found {gain!r:.60}")


def validate_meta(meta: dict[str, Any]) -> None:
    """The whole metadata schema, checked at load: every field the app reads, with its range.

    Fields the app does not read (training record, metrics, version...) are shown as text
    only, so they need no more than being plain data, which ``weights_only`` already ensures.
    """
    if not isinstance(meta, dict):
        raise CheckpointFieldError("meta", f"must be a mapping, found {type(meta).__name__}")
    bad_keys = [k for k in meta if not isinstance(k, str)]
    if bad_keys:
        raise CheckpointFieldError("meta", f"keys must be text, found {bad_keys[0]!r:.60}")
    _fraction(meta, "threshold")
    _fraction(meta, "inconclusive_band")
    _check_calibration(meta.get("calibration"))
    if "architecture" in meta:
        _check_architecture(meta["architecture"])
    if "int8_calibration" in meta:
        _check_int8_calibration(meta["int8_calibration"])
    if "branches" in meta or "fusion" in meta:
        from forensics_app.core.branches import BranchError, validate_branches

        try:
            validate_branches(meta)
        except BranchError as exc:
            field_, _, problem = str(exc).partition(": ")
            raise CheckpointFieldError(field_, problem) from None


def _check_int8_calibration(info: Any) -> None:
    """``meta.int8_calibration``: {"engine": str, "observers": {name: [scale, zero_point,
    quant_min, quant_max]}, ...}; the values become quantisation parameters, so each is checked."""
    field_ = "meta.int8_calibration"
    if not isinstance(info, dict):
        raise CheckpointFieldError(field_, f"must be a mapping, found {type(info).__name__}")
    if not isinstance(info.get("engine"), str):
        raise CheckpointFieldError(f"{field_}.engine", "must be text")
    observers = info.get("observers")
    if not isinstance(observers, dict) or not observers or len(observers) > 10_000:
        raise CheckpointFieldError(f"{field_}.observers", "must be a non-empty mapping")
    for name, value in observers.items():
        where = f"{field_}.observers.{str(name)[:40]}"
        if not isinstance(name, str) or not isinstance(value, list | tuple) or len(value) != 4:
            raise CheckpointFieldError(where, "must be [scale, zero_point, quant_min, quant_max]")
        scale, zero_point, qmin, qmax = value
        if not _is_real(scale) or not math.isfinite(scale) or not 0 < scale < 1e6:
            raise CheckpointFieldError(where, f"scale must be a finite positive number, found "
                                       f"{scale!r:.60}")
        ints = (zero_point, qmin, qmax)
        if any(not isinstance(v, int) or isinstance(v, bool) for v in ints) or not (
                -128 <= qmin < qmax <= 255 and qmin <= zero_point <= qmax):
            raise CheckpointFieldError(where, f"zero point and range must be integers with "
                                       f"-128 <= min <= zero point <= max <= 255, found "
                                       f"{list(ints)!r:.80}")


def check_state_fits(state: dict[str, torch.Tensor], arch: dict[str, Any]) -> None:
    """Names, shapes and dtypes of ``state`` against ``arch``, before any weight is allocated.

    The expected layout comes from the network built on the ``meta`` device, which has shapes
    but no storage: a head that claims millions of outputs is refused without allocating it.
    """
    with torch.device("meta"):
        expected = construct(arch).state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} is {tuple(state[k].shape)}, expected {tuple(v.shape)}"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
    if unexpected:
        problems.append(f"unexpected {', '.join(unexpected[:5])}"
                        + (" ..." if len(unexpected) > 5 else ""))
    if wrong:
        problems.append("; ".join(wrong[:5]) + (" ..." if len(wrong) > 5 else ""))
    if problems:
        raise CheckpointFieldError(
            "state_dict", f"weights do not fit a {arch['name']} with {arch['stages']} stage(s) "
            f"and a {arch['num_outputs']}-output head: {'; '.join(problems)}")
    for k, v in state.items():
        if v.layout != torch.strided:
            raise CheckpointFieldError(f"state_dict.{k}", f"is a {v.layout} tensor; only dense "
                                       "tensors are weights")
        if _INTEGER_BUFFER.search(k):
            continue
        if v.dtype not in FLOAT_DTYPES:
            raise CheckpointFieldError(f"state_dict.{k}", f"has dtype {v.dtype}, expected a "
                                       "floating-point type")


def check_finite(state: dict[str, torch.Tensor]) -> None:
    """Every weight finite, every BatchNorm variance non-negative (else scores become NaN)."""
    for k, v in state.items():
        if not v.is_floating_point():
            continue
        finite = torch.isfinite(v)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            kinds = []
            if bool(torch.isnan(v).any()):
                kinds.append("NaN")
            if bool(torch.isinf(v).any()):
                kinds.append("inf")
            raise CheckpointFieldError(f"state_dict.{k}", f"holds {bad} non-finite value(s) "
                                       f"({'/'.join(kinds)}); a model with such weights scores "
                                       "nothing meaningfully")
        if k.endswith("running_var") and bool((v < 0).any()):
            raise CheckpointFieldError(f"state_dict.{k}", "holds negative variances")


# ------------------------------------------------------------------ the file, before torch.load
_FILE_KINDS = ((stat.S_ISDIR, "is a folder, not a checkpoint file"),
               (stat.S_ISFIFO, "is a FIFO (named pipe), not a checkpoint file; not opened"),
               (stat.S_ISCHR, "is a character device (like /dev/zero), not a checkpoint file; "
                              "not opened"),
               (stat.S_ISBLK, "is a block device, not a checkpoint file; not opened"),
               (stat.S_ISSOCK, "is a socket, not a checkpoint file; not opened"))
# The pickle inside a checkpoint holds names and metadata only (tensors are separate entries).
MAX_PICKLE_BYTES = 64 * 1024 * 1024


def checkpoint_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a checkpoint file, in words (None: a non-empty regular file).
    Checked with ``stat`` only: a FIFO or device is never opened (it could block forever)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return ("broken symbolic link (its target does not exist)" if os.path.islink(path)
                else "checkpoint file not found")
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    for test, reason in _FILE_KINDS:
        if test(st.st_mode):
            return reason
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_size == 0:
        return "empty file (0 bytes), not a checkpoint"
    return None


@functools.lru_cache(maxsize=1)
def largest_state_bytes() -> tuple[int, int]:
    """(largest tensor, whole state dict) in bytes, at 8 bytes a value, over every
    architecture this app can build (on the ``meta`` device: nothing is allocated)."""
    biggest_tensor = biggest_state = 0
    for name in ARCH_LAYERS:
        arch = {**DEFAULT_ARCH, "name": name, "num_outputs": 2, "width": max(WIDTHS)}
        with torch.device("meta"):
            state = ForensicResNet(arch).state_dict()
        sizes = [v.numel() * 8 for v in state.values()]
        biggest_tensor = max(biggest_tensor, max(sizes))
        biggest_state = max(biggest_state, sum(sizes))
    return biggest_tensor, biggest_state


def check_archive_sizes(path: Path) -> None:
    """A zip checkpoint's *declared* sizes against the largest state dict this app can use,
    read from the archive's directory before anything is inflated: a zip bomb (a small file
    declaring gigabytes) is refused without reading it. Room is left for optimizer state
    (two more copies). Non-zip files pass (torch.load's own reader judges them)."""
    if not zipfile.is_zipfile(path):
        return
    tensor_cap, state_bytes = largest_state_bytes()
    total_cap = 3 * state_bytes
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointFieldError("archive", f"unreadable zip directory: {exc}") from None
    total = 0
    for info in infos:
        total += info.file_size
        leaf = info.filename.rsplit("/", 1)[-1]
        cap = MAX_PICKLE_BYTES if leaf.endswith(".pkl") else tensor_cap
        if info.file_size > cap:
            raise CheckpointFieldError(
                "archive", f"entry {info.filename[:80]!r} declares {info.file_size:,} bytes, "
                f"more than any weight tensor of a supported network ({cap:,}); refused "
                "before reading (a zip bomb?)")
    if total > total_cap:
        raise CheckpointFieldError(
            "archive", f"the archive declares {total:,} bytes in all, more than a supported "
            f"network's weights with optimizer state ({total_cap:,}); refused before reading "
            "(a zip bomb?)")


def describe_pickle(head: bytes) -> str | None:
    """"pickle protocol N" when ``head`` starts like a pickle, else None. Protocols 0 and 1
    have no header, so their first opcodes are parsed."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return f"pickle protocol {head[1]}"
    import pickletools

    ops = 0
    try:
        for _ in pickletools.genops(head):
            ops += 1
            if ops >= 4:
                break
    except Exception:  # noqa: BLE001 -- any failure ends the parse: judged on what was read
        pass
    return "pickle protocol 0/1" if ops >= 4 else None


# ------------------------------------------------------------------ metadata the app never reads
MAX_META_DEPTH = 16
MAX_META_NODES = 100_000


def drop_unusable_metadata(meta: dict[str, Any], read: Iterable[str]) -> list[str]:
    """Remove (in place) each top-level field the app does not read (``read`` are those it
    does; they are validated) that is not plain data it can store and show: text keys only,
    at most 16 levels deep, at most 100,000 values. Returns the dropped names. Walked with a
    stack, so no nesting can exhaust the call stack."""
    dropped = []
    for key in [k for k in meta if k not in set(read)]:
        if not _plain(meta[key]):
            dropped.append(str(key))
            del meta[key]
    return dropped


def _plain(value: Any) -> bool:
    stack, nodes = [(value, 0)], 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_META_NODES or depth > MAX_META_DEPTH:
            return False
        if isinstance(item, dict):
            if any(not isinstance(k, str) for k in item):
                return False
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif not (item is None or isinstance(item, str | int | bool)):
            return False
    return True


# ------------------------------------------------------------------ behaviour at load
def check_scores_separate(probs: Sequence[float], names: Sequence[str]) -> None:
    """The loaded model on the self-test samples: every score finite, and not all the same
    (a model whose logits overflow answers P = 1.000 for everything and separates nothing)."""
    bad = [n for n, p in zip(names, probs, strict=True) if not math.isfinite(p)]
    if bad:
        raise CheckpointFieldError(
            "behaviour", f"non-finite scores (NaN/inf logits) on the self-test sample(s) "
            f"{', '.join(bad[:3])}; the weights overflow")
    if len(probs) >= 2 and max(probs) - min(probs) < 1e-9:
        raise CheckpointFieldError(
            "behaviour", f"every self-test sample scores P = {probs[0]:.3f}: the model "
            "cannot tell any two images apart (saturated or constant output)")


# The load-time check scores a centre crop of this side of each sample, in one batch: about a
# tenth of a full-image pass, and enough to see saturated or constant outputs.
BEHAVIOUR_CROP = 64


def self_test_scores(predict: Callable[[torch.Tensor], Any],
                     folder: Path) -> tuple[list[float], list[str]]:
    """P(generated) of a centre crop of each bundled self-test sample, in one batch through
    ``predict`` (the detector's own forward path). Empty when the samples are not there."""
    from forensics_app.core.loading import ImageLoadError, decode_image
    from forensics_app.core.preprocess import PreprocessConfig, prepare_image

    tiles, names = [], []
    cfg = PreprocessConfig(mode="center-crop", crop_size=BEHAVIOUR_CROP)
    for sample in sorted(folder.glob("*")) if folder.is_dir() else []:
        if sample.suffix.lower() == ".json":
            continue
        try:  # the scan's own intake: decoded, then a preset
            rgb, _facts = decode_image(sample.read_bytes(), sample)
            prepared = prepare_image(rgb, cfg)
        except (OSError, ImageLoadError):
            continue
        if prepared.n_tiles == 1:
            tiles.append(prepared.tile(0))
            names.append(sample.name)
    if not tiles:
        return [], []
    return [float(p) for p in predict(torch.stack(tiles))], names
