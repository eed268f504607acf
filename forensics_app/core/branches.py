"""Detector branches beside the trace CNN, and how their evidence is fused.

A detector checkpoint (``core.detector``) always holds the **trace** branch — the CNN whose
weights are its state dict (full-resolution, tiled, Grad-CAM-able). Its metadata may add more
branches and a fusion rule, as plain numbers (``weights_only`` loading; nothing here runs
code from a checkpoint)::

    meta["branches"] = {"semantic": {"kind": "clip-vitb16-linear", "asset": "clip-vitb16",
                                     "head": {LinearHead record}, "description": "..."}}
    meta["fusion"] = {"kind": "logistic", "weights": {"trace": a, "semantic": b}, "bias": c}

Every branch yields a logit per image (:func:`assess`: an Assessment, which may carry a
caveat that makes the row Inconclusive); the fused P(generated) is
``sigmoid(bias + Σ weight[k] · logit[k])`` over the branches present (a branch with weight 0
is reported but does not move the verdict). ``BRANCH_KINDS`` is the registry: a new kind of
branch is one entry there, with its builder and its validator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

TRACE = "trace"
SEMANTIC = "semantic"


class BranchError(ValueError):
    """A branch or fusion record in a checkpoint is unusable; names the field."""


@dataclass
class SemanticBranch:
    """Frozen CLIP ViT-B/16 embedding + a linear head (``core.semantic``)."""

    key: str
    encoder: Any  # ClipEncoder
    head: Any  # LinearHead
    description: str = ""

    @property
    def runtime(self) -> str:
        return f"CLIP ViT-B/16, {getattr(self.encoder, 'runtime', 'ONNX Runtime')}"

    def input_for(self, img: Image.Image) -> np.ndarray:
        from forensics_app.core.semantic import clip_input

        return clip_input(img)

    def logits(self, inputs: list[np.ndarray]) -> np.ndarray:
        return self.head.logits(self.encoder.embed(np.stack(inputs)))


def _validate_clip_linear(rec: dict[str, Any], name: str) -> None:
    from forensics_app.core.semantic import EMBED_DIM, LinearHead

    if rec.get("asset") != "clip-vitb16":
        raise BranchError(f"meta.branches.{name}.asset: unknown asset {rec.get('asset')!r:.60}")
    try:
        head = LinearHead.from_record(rec.get("head") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise BranchError(f"meta.branches.{name}.head: {exc}") from None
    if head.weight.shape != (EMBED_DIM,):
        raise BranchError(f"meta.branches.{name}.head: dim must be {EMBED_DIM}")


def _build_clip_linear(rec: dict[str, Any], name: str, threads: int | None) -> SemanticBranch:
    from forensics_app.core.semantic import ClipEncoder, LinearHead
    from forensics_app.weights import find_asset

    encoder = ClipEncoder(find_asset("clip-vitb16"), threads=threads)
    return SemanticBranch(name, encoder, LinearHead.from_record(rec["head"]),
                          str(rec.get("description", "")))


def _validate_clip_blocks(rec: dict[str, Any], name: str) -> None:
    from forensics_app.core.clip_blocks import BlockHead, BlockRecordError, DomainCheck

    if rec.get("asset") != "clip-vitb16":
        raise BranchError(f"meta.branches.{name}.asset: unknown asset {rec.get('asset')!r:.60}")
    for key, parse in (("head", BlockHead.from_record), ("domain", DomainCheck.from_record)):
        if key == "domain" and rec.get(key) is None:
            continue
        try:
            parse(rec.get(key))
        except (BlockRecordError, TypeError, ValueError) as exc:
            raise BranchError(f"meta.branches.{name}.{key}: {exc}") from None


def _build_clip_blocks(rec: dict[str, Any], name: str, threads: int | None) -> Any:
    from forensics_app.core.clip_blocks import BlockHead, ClipBlocksBranch, DomainCheck
    from forensics_app.core.semantic import ClipEncoder
    from forensics_app.weights import find_asset

    encoder = ClipEncoder(find_asset("clip-vitb16"), threads=threads)
    if not encoder.has_blocks:
        raise BranchError(f"meta.branches.{name}: the installed CLIP graph has no block_cls "
                          "output; run `python -m forensics_app.weights fetch` to rebuild it")
    domain = DomainCheck.from_record(rec["domain"]) if rec.get("domain") is not None else None
    return ClipBlocksBranch(name, encoder, BlockHead.from_record(rec["head"]), domain,
                            str(rec.get("description", "")))


@dataclass(frozen=True)
class BranchKind:
    validate: Callable[[dict[str, Any], str], None]
    build: Callable[[dict[str, Any], str, int | None], Any]
    summary: str


BRANCH_KINDS: dict[str, BranchKind] = {
    "clip-vitb16-linear": BranchKind(
        _validate_clip_linear, _build_clip_linear,
        "frozen CLIP ViT-B/16 image embedding (centre 224² crop, no resize) + logistic head"),
    "clip-vitb16-blocks": BranchKind(
        _validate_clip_blocks, _build_clip_blocks,
        "frozen CLIP ViT-B/16, CLS token of all 12 blocks, logistic head; views: the centre "
        "224² crop at native scale and, for larger images, the whole image resized to 224 "
        "(mean of the views); images outside the validated domains are Inconclusive"),
}


@dataclass(frozen=True)
class Fusion:
    weights: dict[str, float] = field(default_factory=lambda: {TRACE: 1.0})
    bias: float = 0.0

    def fuse(self, logits: dict[str, float]) -> float:
        z = self.bias + sum(w * logits[k] for k, w in self.weights.items() if k in logits)
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    @classmethod
    def from_record(cls, rec: Any, branches: set[str]) -> Fusion:
        if not isinstance(rec, dict) or rec.get("kind") != "logistic":
            raise BranchError("meta.fusion: must be {'kind': 'logistic', 'weights': {...}, "
                              "'bias': x}")
        weights = rec.get("weights")
        if not isinstance(weights, dict) or not weights:
            raise BranchError("meta.fusion.weights: must be a non-empty mapping")
        out = {}
        for k, v in weights.items():
            if k not in branches:
                raise BranchError(f"meta.fusion.weights.{k!s:.40}: no such branch "
                                  f"(have {sorted(branches)})")
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise BranchError(f"meta.fusion.weights.{k}: must be a finite number")
            out[k] = float(v)
        bias = rec.get("bias", 0.0)
        if isinstance(bias, bool) or not isinstance(bias, int | float) or not math.isfinite(bias):
            raise BranchError("meta.fusion.bias: must be a finite number")
        return cls(out, float(bias))

    def to_record(self) -> dict[str, Any]:
        return {"kind": "logistic", "weights": dict(self.weights), "bias": self.bias}


def assess(branch: Any, inputs: list[Any]) -> list[Any]:
    """One :class:`~forensics_app.core.semantic.Assessment` per image: the branch's own
    ``assess`` where it can say "not on this image" (a domain check), else its logits."""
    own = getattr(branch, "assess", None)
    if own is not None:
        return own(inputs)
    from forensics_app.core.semantic import Assessment

    return [Assessment(float(v)) for v in branch.logits(inputs)]


def validate_branches(meta: dict[str, Any]) -> None:
    """Check ``meta.branches`` and ``meta.fusion`` (called by ``validate_meta``)."""
    branches = meta.get("branches")
    names = {TRACE}
    if branches is not None:
        if not isinstance(branches, dict):
            raise BranchError("meta.branches: must be a mapping of name -> branch record")
        for name, rec in branches.items():
            if not isinstance(name, str) or name == TRACE or not isinstance(rec, dict):
                raise BranchError(f"meta.branches.{name!s:.40}: must be a named record")
            kind = BRANCH_KINDS.get(rec.get("kind"))
            if kind is None:
                raise BranchError(f"meta.branches.{name}.kind: unknown {rec.get('kind')!r:.60}"
                                  f" (known: {sorted(BRANCH_KINDS)})")
            kind.validate(rec, name)
            names.add(name)
    if "fusion" in meta:
        Fusion.from_record(meta["fusion"], names)


def build_branches(meta: dict[str, Any], threads: int | None = None) -> dict[str, Any]:
    """The extra branches a checkpoint declares, built (weights looked up, never fetched)."""
    return {name: BRANCH_KINDS[rec["kind"]].build(rec, name, threads)
            for name, rec in (meta.get("branches") or {}).items()}


def fusion_of(meta: dict[str, Any]) -> Fusion:
    names = {TRACE, *(meta.get("branches") or {})}
    return Fusion.from_record(meta["fusion"], names) if "fusion" in meta else Fusion()


def describe_branches(meta: dict[str, Any]) -> list[str]:
    """One line per branch, for the model dialog, the report's method text and --info."""
    from forensics_app.core.architectures import describe_arch

    lines = []
    arch = meta.get("architecture") or {}
    lines.append(f"{TRACE}: {describe_arch(arch)} at full resolution")
    for name, rec in (meta.get("branches") or {}).items():
        kind = BRANCH_KINDS.get(rec.get("kind"))
        lines.append(f"{name}: {kind.summary if kind else rec.get('kind')}")
    fusion = meta.get("fusion")
    if fusion:
        w = ", ".join(f"{k} {v:+.2f}" for k, v in fusion.get("weights", {}).items())
        lines.append(f"fusion: logistic ({w}; bias {fusion.get('bias', 0):+.2f})")
    return lines
