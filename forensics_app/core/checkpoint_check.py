"""Checks on an untrusted checkpoint, made before anything is built from it.

A checkpoint is input like any evidence file: its metadata is validated as a whole when it is
loaded (so a bad field is a :class:`~forensics_app.core.detector.CheckpointError` naming that
field, never a traceback later), its tensor shapes are compared against the architecture on
PyTorch's ``meta`` device (which allocates nothing, so a claimed 2,000,000-output head costs
nothing), and its weights must be finite.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from forensics_app.core.architectures import ARCH_LAYERS, DEFAULT_ARCH, WIDTHS, ForensicResNet

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
    if not isinstance(name, str) or name not in ARCH_LAYERS:
        raise CheckpointFieldError("meta.architecture.name",
                                   f"unknown architecture {name!r:.60}; known: "
                                   f"{sorted(ARCH_LAYERS)}")
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
        expected = ForensicResNet(arch).state_dict()
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
