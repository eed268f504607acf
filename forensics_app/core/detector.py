"""Checkpoint loading and batched inference.

Three checkpoint formats are accepted, always through
``torch.load(..., map_location="cpu", weights_only=True)`` so a checkpoint can never run code:

1. this project's format: ``{"format": "forensics-detector", "format_version": 1,
   "state_dict": ..., "meta": {...plain data...}}`` (fp16 weights are loaded into fp32);
2. official CNNDetection checkpoints: ``{"model": state_dict}`` with a 1-logit ``fc``;
3. two-class checkpoints as seed projects save them: ``fc = Linear(2048, 2)``, the state dict
   under ``model_state_dict`` / ``state_dict`` or bare. P(generated) is the softmax of class
   index ``fake_index`` (default 1, i.e. classes ordered ``[real, fake]`` as in ForenSynths'
   ``0_real``/``1_fake``); pass ``fake_index=0`` for the opposite order.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forensics_app.core.architectures import (
    ForensicResNet,
    build_model,
    fold_batchnorm,
    infer_arch_from_state_dict,
    resolve_arch,
    study_network_reason,
)
from forensics_app.core.branches import TRACE, BranchError, Fusion, build_branches, fusion_of
from forensics_app.core.checkpoint_check import (
    READ_META_FIELDS,
    CheckpointFieldError,
    check_archive_sizes,
    check_finite,
    check_scores_separate,
    check_state_fits,
    checkpoint_file_problem,
    describe_pickle,
    drop_unusable_metadata,
    self_test_scores,
    validate_meta,
)
from forensics_app.core.speed import SpeedLevers, cpu_has_native_bf16
from forensics_app.weights import MissingWeightsError, sha256_of

CHECKPOINT_FORMAT = "forensics-detector"
CHECKPOINT_FORMAT_VERSION = 1
DEFAULT_THRESHOLD = 0.5
DEFAULT_BAND = 0.05


class CheckpointError(Exception):
    """A file that is not a usable detector checkpoint; the message names file and problem."""


class NoBundledModelError(CheckpointError):
    """No checkpoint was given and none is bundled."""


def file_sha256(path: Path) -> str:
    return sha256_of(Path(path))


@dataclass
class LoadedCheckpoint:
    model: ForensicResNet
    arch: dict[str, Any]
    meta: dict[str, Any]
    kind: str  # "forensics-detector" | "cnndetection" | "two-class" | "one-logit"
    path: str
    sha256: str
    fake_index: int = 1

    @property
    def model_id(self) -> str:
        return f"{Path(self.path).name}@{self.sha256[:12]}"

    @property
    def threshold(self) -> float:
        return float(self.meta.get("threshold", DEFAULT_THRESHOLD))

    @property
    def inconclusive_band(self) -> float:
        return float(self.meta.get("inconclusive_band", DEFAULT_BAND))


def _strip_prefix(state: Any) -> dict[str, torch.Tensor]:
    if not isinstance(state, dict):
        raise ValueError(f"weights are a {type(state).__name__}, expected a dict of tensors")
    out = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            continue
        for prefix in ("module.", "model."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        out[k] = v
    return out


def _classify(obj: Any) -> tuple[str, dict[str, torch.Tensor], dict[str, Any]]:
    if not isinstance(obj, dict):
        raise ValueError(f"expected a dict of weights, found {type(obj).__name__}")
    if obj.get("format") == CHECKPOINT_FORMAT:
        version = obj.get("format_version")
        if version != CHECKPOINT_FORMAT_VERSION:
            raise ValueError(f"unsupported {CHECKPOINT_FORMAT} format_version {version!r}")
        meta = obj.get("meta") or {}
        if not isinstance(meta, dict):
            raise ValueError("'meta' is not a dict")
        return CHECKPOINT_FORMAT, _strip_prefix(obj["state_dict"]), meta
    for key in ("model", "model_state_dict", "state_dict"):
        if isinstance(obj.get(key), dict):
            state = _strip_prefix(obj[key])
            break
    else:
        state = _strip_prefix(obj)
    if not state:
        raise ValueError("no weight tensors found")
    study = study_network_reason(state)
    if study:
        raise ValueError(f"refused: {study}")
    fc = state.get("fc.weight")
    if fc is None:
        raise ValueError("no 'fc.weight' tensor: not a ResNet classifier state dict")
    outputs = int(fc.shape[0])
    if outputs == 2:
        kind = "two-class"
    elif outputs == 1:
        kind = "cnndetection" if "model" in obj else "one-logit"
    else:
        raise ValueError(f"fc has {outputs} outputs; expected 1 (logit) or 2 (real/fake)")
    return kind, state, {}


def _unpickling_detail(message: str) -> str:
    """The informative line of torch's weights-only refusal, never its advice to disable it."""
    boilerplate = ("Weights only load failed", "In PyTorch", "Re-running", "Check the documentation",
                   "Please file an issue")
    for line in message.splitlines():
        line = line.strip().removeprefix("WeightsUnpickler error:").strip()
        if line and not line.startswith(boilerplate) and "weights_only" not in line:
            return line
    return "unreadable pickle data"


def _pickle_kind(path: Path) -> str | None:
    """"pickle protocol N" when the file starts like a pickle (any protocol), else None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return None
    return describe_pickle(head)


def _refusal(path: Path, message: str) -> CheckpointError:
    """What torch's weights-only unpickler refused, in this app's words."""
    detail = _unpickling_detail(message)
    found = re.search(r"GLOBAL ([\w.]+)", detail)
    if found:
        return CheckpointError(
            f"{path}: refused: the file contains pickled code or objects (GLOBAL "
            f"{found.group(1)}), not only weights; it was not loaded and nothing in it ran")
    operand = re.search(r"Unsupported operand (\d+)", detail)
    kind = _pickle_kind(path)
    if kind == "pickle protocol 0/1":
        return CheckpointError(
            f"{path}: refused: a plain pickle ({kind}), not a PyTorch checkpoint (torch.save "
            "writes a zip archive); it was not loaded")
    if operand and kind is None:
        # Random bytes, text or an image: torch reads its first byte as an opcode.
        return CheckpointError(f"{path}: not a PyTorch checkpoint (neither a PyTorch zip "
                               f"archive nor a pickle); it was not loaded")
    if operand:
        return CheckpointError(
            f"{path}: refused: the file is a pickle using an operation outside the weights-only "
            f"subset (opcode {operand.group(1)}), not a PyTorch weights file; it was not loaded")
    return CheckpointError(f"{path}: not a PyTorch checkpoint ({detail[:300]})")


def load_checkpoint(path: Path | str, fake_index: int = 1) -> LoadedCheckpoint:
    """Load any supported checkpoint into an fp32 model in eval mode, on the CPU."""
    path = Path(path)
    problem = checkpoint_file_problem(path)  # a FIFO, device or folder is never opened
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    try:
        check_archive_sizes(path)  # a zip bomb is refused from its directory, unread
        with warnings.catch_warnings():  # torch's warnings are about the file: not the user's
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointFieldError as exc:
        raise CheckpointError(f"{path}: unusable checkpoint: {exc}") from None
    except pickle.UnpicklingError as exc:
        raise _refusal(path, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 -- arbitrary bytes make torch.load raise anything
        if _pickle_kind(path) == "pickle protocol 0/1":
            raise _refusal(path, str(exc)) from None
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint ({type(exc).__name__}: "
            f"{_unpickling_detail(str(exc))[:200]})"
        ) from None
    try:
        kind, state, meta = _classify(obj)
        validate_meta(meta)
        dropped = drop_unusable_metadata(meta, READ_META_FIELDS)
        if dropped:  # recorded, so the case and the side-car say what was left out
            meta["dropped_metadata"] = dropped
        arch = resolve_arch(meta["architecture"]) if "architecture" in meta else (
            infer_arch_from_state_dict(state)
        )
        if kind == "two-class" and fake_index not in (0, 1):
            raise ValueError(f"fake_index must be 0 or 1, got {fake_index}")
        check_state_fits(state, arch)  # before building: nothing is allocated for a bad shape
        check_finite(state)
        model = build_model(arch)
        model.load_state_dict(state, strict=True)
    except CheckpointFieldError as exc:
        raise CheckpointError(f"{path}: unusable checkpoint: {exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{path}: not a detector checkpoint this app can use: {exc}. Expected this app's "
            "format, a CNNDetection {'model': state_dict} or a ResNet state dict with a 1- or "
            "2-output fc."
        ) from None
    except RuntimeError as exc:
        msg = str(exc).replace("\n", " ").replace("\t", "")
        raise CheckpointError(
            f"{path}: weights do not fit a {arch['name']} with a {arch['num_outputs']}-output "
            f"head: {msg[:400]}"
        ) from None
    model.float().eval()
    if kind != "two-class":
        fake_index = 0
    return LoadedCheckpoint(model, arch, meta, kind, str(path), file_sha256(path), fake_index)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; asking for CUDA without it is an error."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested but no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {name!r}")
    return torch.device(name)


def describe_device(device: torch.device, precision: str = "fp32") -> str:
    """``cpu (2 threads)``, ``cpu (2 threads, int8)``, ``cuda (<name>)``..."""
    extra = "" if precision == "fp32" else f", {precision}"
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)}{extra})"
    n = torch.get_num_threads()
    return f"cpu ({n} thread{'' if n == 1 else 's'}{extra})"


def auto_precision(ckpt: LoadedCheckpoint, dev: torch.device) -> str:
    """``precision="auto"``: int8 on a CPU whose quantized engine the checkpoint's stored int8
    ranges were measured for, else fp32."""
    from forensics_app.core.quantize import quantized_engine

    stored = ckpt.meta.get("int8_calibration") or {}
    engine = quantized_engine() if dev.type == "cpu" else None
    return "int8" if engine is not None and stored.get("engine") == engine else "fp32"


@dataclass
class Detector:
    """A loaded checkpoint on a device, scoring batches of preprocessed tensors.

    The detector takes over the checkpoint's model and readies it for inference only: moved
    to the device and set up as its :class:`SpeedLevers` say (by default channels-last,
    BatchNorm folded into the convolutions, inference mode). Grad-CAM and anything else that
    needs the network as trained should use :func:`load_checkpoint`.
    """

    checkpoint: LoadedCheckpoint
    device: torch.device
    levers: SpeedLevers = field(default_factory=SpeedLevers)
    _calib: tuple[float, float] = field(default=(1.0, 0.0), init=False)
    _forward: Any = field(default=None, init=False, repr=False)
    int8_source: str | None = field(default=None, init=False)  # where int8 ranges came from
    # Branches beside the trace CNN (``core.branches``), built from the checkpoint's metadata,
    # and the rule that fuses their logits into the row's P(generated).
    branches: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    fusion: Fusion = field(default_factory=Fusion, init=False)

    @classmethod
    def from_checkpoint(
        cls, path: Path | str, device: str = "auto", fake_index: int = 1,
        threads: int | None = None, levers: SpeedLevers | None = None,
        with_branches: bool = True,
    ) -> Detector:
        ckpt = load_checkpoint(path, fake_index=fake_index)
        return cls.from_loaded(ckpt, device, threads, levers, with_branches)

    @classmethod
    def from_loaded(
        cls, ckpt: LoadedCheckpoint, device: str = "auto", threads: int | None = None,
        levers: SpeedLevers | None = None, with_branches: bool = True,
        check_behaviour: bool = True,
    ) -> Detector:
        """``with_branches=False`` loads the trace CNN alone (Grad-CAM, int8 checks)."""
        dev = resolve_device(device)
        levers = levers or SpeedLevers()
        if levers.precision == "auto":
            levers = dataclasses.replace(levers, precision=auto_precision(ckpt, dev))
        if levers.precision == "bf16" and dev.type == "cpu" and not cpu_has_native_bf16():
            raise ValueError("bf16 was requested but this CPU has no native bf16 (AVX512-BF16 "
                             "or AMX); emulated bf16 is slower than fp32 -- use fp32")
        if levers.precision == "int8" and not isinstance(ckpt.model, ForensicResNet):
            raise ValueError(f"int8 is available for the ResNet trace CNNs only; this detector "
                             f"is a {ckpt.model.arch['name']} -- use fp32")
        if levers.precision == "int8" and dev.type != "cpu":
            raise ValueError(f"int8 runs on the CPU only; this scan uses {dev.type} -- use fp32 "
                             "(or bf16) there")
        if dev.type == "cpu":
            torch.set_num_threads(threads or max(1, os.cpu_count() or 1))
        det = cls(ckpt, dev, levers)
        if levers.fold_batchnorm:
            fold_batchnorm(det.checkpoint.model.eval())
        det.checkpoint.model.to(dev)
        if levers.channels_last:
            det.checkpoint.model.to(memory_format=torch.channels_last)
        det._forward = det.checkpoint.model
        if levers.precision == "int8":
            from forensics_app.core.quantize import quantize_int8

            det._forward, det.int8_source = quantize_int8(
                det.checkpoint.model.eval(), stored=ckpt.meta.get("int8_calibration"))
        if levers.compile:
            det._forward = torch.compile(det._forward, dynamic=False)
        cal = ckpt.meta.get("calibration") or {}
        if cal.get("type") == "platt":
            det._calib = (float(cal["a"]), float(cal["b"]))
        if with_branches:
            try:
                det.branches = build_branches(ckpt.meta, threads)
            except MissingWeightsError as exc:
                raise CheckpointError(f"{ckpt.path}: this detector's branches need weights "
                                      f"that are not installed: {exc}") from None
            except BranchError as exc:
                raise CheckpointError(f"{ckpt.path}: {exc}") from None
            det.fusion = fusion_of(ckpt.meta)
        if check_behaviour:
            det.check_behaviour()
        return det

    def fuse(self, trace_prob: float, branch_logits: dict[str, float]) -> tuple[float, dict]:
        """The row's P(generated) from the trace branch's probability and the other branches'
        logits; also each branch's own probability (for the row's ``branch_probs``)."""
        p = min(max(trace_prob, 1e-7), 1 - 1e-7)
        logits = {TRACE: math.log(p / (1 - p)), **branch_logits}
        probs = {k: 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, v)))) for k, v in logits.items()}
        return self.fusion.fuse(logits), probs

    def check_behaviour(self) -> None:
        """Score the bundled self-test samples through this detector's own forward path and
        refuse (``CheckpointError``) a model whose scores are non-finite or all the same."""
        from forensics_app.paths import samples_dir

        probs, names = self_test_scores(self.predict_proba, samples_dir())
        try:
            check_scores_separate(probs, names)
        except CheckpointFieldError as exc:
            raise CheckpointError(f"{self.checkpoint.path}: unusable checkpoint: {exc}") from None

    @property
    def model(self) -> ForensicResNet:
        return self.checkpoint.model

    @property
    def channels_last(self) -> bool:
        return self.levers.channels_last

    @property
    def model_id(self) -> str:
        return self.checkpoint.model_id

    @property
    def device_description(self) -> str:
        text = describe_device(self.device, self.levers.precision)
        for name, branch in self.branches.items():
            text += f"; {name}: {getattr(branch, 'runtime', type(branch).__name__)}"
        return text

    def logits_to_proba(self, out: torch.Tensor) -> np.ndarray:
        """Model outputs -> calibrated P(generated) as float64 numpy. A row with a non-finite
        logit is NaN (the scan makes it an error row), never a saturated 0 or 1."""
        out = out.float()
        finite = torch.isfinite(out).all(dim=1, keepdim=True)
        out = torch.where(finite, out, torch.full_like(out, float("nan")))
        if out.shape[1] == 2:
            p = torch.softmax(out, dim=1)[:, self.checkpoint.fake_index]
            return p.cpu().double().numpy()
        a, b = self._calib
        return torch.sigmoid(out[:, 0] * a + b).cpu().double().numpy()

    def predict_proba(self, batch: torch.Tensor) -> np.ndarray:
        """P(generated) for a batch (N, 3, H, W) of normalised images."""
        grad_off = torch.inference_mode() if self.levers.inference_mode else torch.no_grad()
        with grad_off:
            x = batch.to(self.device, non_blocking=True)
            # int8: the float NPR transform runs before quantisation and is 4x slower on a
            # channels-last input (the whole forward 1.3x); the int8 trunk packs its own layout.
            if self.channels_last and self.levers.precision != "int8":
                x = x.contiguous(memory_format=torch.channels_last)
            if self.levers.precision == "bf16":
                with torch.autocast(self.device.type, dtype=torch.bfloat16):
                    out = (self.model if self._forward is None else self._forward)(x)
            else:
                out = (self.model if self._forward is None else self._forward)(x)
            return self.logits_to_proba(out)
