"""An explanation map for every branch, not only the trace CNN (issue 37, H3).

The verdict may come from a branch Grad-CAM cannot see into (the semantic branch: a frozen
CLIP embedding behind ONNX Runtime). Occlusion sensitivity needs nothing but the branch's own
interface (``core.branches``: ``input_for(img)`` then ``logits(inputs)``): a grey patch is
laid over the *image*, the branch prepares its input from the occluded image as it would
from the evidence, and the drop of its logit is that region's weight. Nothing assumes the
input is one 224² crop: cells whose occlusion leaves the branch's input unchanged are regions
the branch never sees -- reported as such, never scored.

Coarse-to-fine, to keep the forward passes few: a coarse grid over the whole image finds the
region the branch sees (by comparing inputs, no forward pass), a finer grid over that region
is scored in batches.

:func:`branch_order` lists the branches by the size of their fusion weight, so every view
describes first the branch that decides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

GREY = (128, 128, 128)
OCCLUSION_GRID = 5  # 5 × 5 cells over what a branch sees: at most 26 forward passes


class ExplainCancelled(Exception):
    """``should_cancel`` returned True between batches."""


@dataclass
class OcclusionMap:
    """Logit drop per cell of ``boxes`` (image pixels ``(x0, y0, x1, y1)``).

    ``drops[i] > 0``: hiding cell ``i`` lowered the branch's "generated" logit, i.e. the
    region raised it. ``seen[i]`` False: the branch's input does not depend on that cell.
    """

    branch: str
    size: tuple[int, int]  # image (width, height)
    base_logit: float
    boxes: list[tuple[int, int, int, int]]
    drops: np.ndarray  # float32, one per box
    seen: np.ndarray  # bool, one per box
    region: tuple[int, int, int, int] | None  # bounding box of what the branch sees
    n_forward: int = 0
    notes: list[str] = field(default_factory=list)

    def heat(self, width: int | None = None, height: int | None = None) -> np.ndarray:
        """A ``(height, width)`` map in [0, 1]: the positive drops, scaled by the largest
        (0 where unseen or where hiding raised the logit). Defaults to the image's size."""
        w0, h0 = self.size
        width, height = width or w0, height or h0
        sx, sy = width / w0, height / h0
        out = np.zeros((height, width), np.float32)
        pos = np.clip(self.drops, 0.0, None)
        top = float(pos.max()) if pos.size else 0.0
        if top <= 0:
            return out
        for (x0, y0, x1, y1), v, seen in zip(self.boxes, pos, self.seen, strict=True):
            if seen and v > 0:
                ys, ye = int(y0 * sy), max(int(y0 * sy) + 1, int(round(y1 * sy)))
                xs, xe = int(x0 * sx), max(int(x0 * sx) + 1, int(round(x1 * sx)))
                np.maximum(out[ys:ye, xs:xe], v / top, out=out[ys:ye, xs:xe])
        return out

    def rgba(self, width: int, height: int) -> np.ndarray:
        """The map coloured like a Grad-CAM (``core.gradcam.colour_map``), transparent where
        the branch does not look: ``(height, width, 4)`` uint8."""
        from forensics_app.core.gradcam import colour_map

        rgb = colour_map(self.heat(width, height))
        alpha = np.where(self.seen_mask(width, height), 255, 0).astype(np.uint8)[..., None]
        return np.ascontiguousarray(np.concatenate([rgb, alpha], axis=2))

    def seen_mask(self, width: int | None = None, height: int | None = None) -> np.ndarray:
        """True where the branch sees the image (at ``width`` × ``height``)."""
        w0, h0 = self.size
        width, height = width or w0, height or h0
        out = np.zeros((height, width), bool)
        if self.region is not None:
            x0, y0, x1, y1 = self.region
            out[int(y0 * height / h0):int(np.ceil(y1 * height / h0)),
                int(x0 * width / w0):int(np.ceil(x1 * width / w0))] = True
        return out


def _grid(box: tuple[int, int, int, int], n: int) -> list[tuple[int, int, int, int]]:
    x0, y0, x1, y1 = box
    xs = np.linspace(x0, x1, n + 1).round().astype(int)
    ys = np.linspace(y0, y1, n + 1).round().astype(int)
    return [(int(xs[i]), int(ys[j]), int(xs[i + 1]), int(ys[j + 1]))
            for j in range(n) for i in range(n) if xs[i + 1] > xs[i] and ys[j + 1] > ys[j]]


def _occluded(img: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    out = img.copy()
    out.paste(GREY, box)
    return out


def occlusion_map(branch: Any, img: Image.Image, *, name: str = "", grid: int = 7,
                  coarse: int = 8, batch_size: int = 8,
                  progress: Callable[[int, int], None] | None = None,
                  should_cancel: Callable[[], bool] | None = None) -> OcclusionMap:
    """Occlusion sensitivity of ``branch``'s logit over ``img`` (an RGB PIL image).

    ``coarse`` × ``coarse`` cells over the whole image find what the branch sees (no forward
    pass); ``grid`` × ``grid`` cells over that region are scored, ``batch_size`` occluded
    inputs per ``branch.logits`` call. Cost: ``1 + grid²`` forward passes at most.
    """
    img = img.convert("RGB")
    w, h = img.size
    base_input = np.asarray(branch.input_for(img))
    seen_boxes = [b for b in _grid((0, 0, w, h), coarse)
                  if not np.array_equal(np.asarray(branch.input_for(_occluded(img, b))),
                                        base_input)]
    notes: list[str] = []
    if not seen_boxes:
        notes.append("no region of the image changes this branch's input")
        return OcclusionMap(name, (w, h), float(branch.logits([base_input])[0]), [],
                            np.zeros(0, np.float32), np.zeros(0, bool), None, 1, notes)
    region = (min(b[0] for b in seen_boxes), min(b[1] for b in seen_boxes),
              max(b[2] for b in seen_boxes), max(b[3] for b in seen_boxes))
    boxes = _grid(region, grid)
    inputs: list[np.ndarray | None] = []
    for b in boxes:
        x = np.asarray(branch.input_for(_occluded(img, b)))
        inputs.append(None if np.array_equal(x, base_input) else x)
    todo = [i for i, x in enumerate(inputs) if x is not None]
    logits = np.zeros(len(boxes), np.float32)
    batch: list[np.ndarray] = [base_input]
    owners: list[int] = [-1]
    base_logit = 0.0
    n_forward = 0
    total = len(todo) + 1

    def run(batch: list[np.ndarray], owners: list[int]) -> None:
        nonlocal base_logit, n_forward
        out = np.asarray(branch.logits(batch), np.float32).reshape(-1)
        n_forward += len(batch)
        for o, v in zip(owners, out, strict=True):
            if o < 0:
                base_logit = float(v)
            else:
                logits[o] = v
        if progress is not None:
            progress(n_forward, total)

    for i in todo:
        if should_cancel is not None and should_cancel():
            raise ExplainCancelled()
        batch.append(inputs[i])  # type: ignore[arg-type]
        owners.append(i)
        if len(batch) >= batch_size:
            run(batch, owners)
            batch, owners = [], []
    if batch:
        run(batch, owners)
    seen = np.array([x is not None for x in inputs], bool)
    drops = np.where(seen, base_logit - logits, 0.0).astype(np.float32)
    if not seen.all():
        notes.append(f"{int((~seen).sum())} of {len(boxes)} cells lie outside what this branch "
                     "sees")
    # the region the branch sees, to the fine cells: what the map can speak for
    fine = [b for b, s in zip(boxes, seen, strict=True) if s] or boxes
    region = (min(b[0] for b in fine), min(b[1] for b in fine),
              max(b[2] for b in fine), max(b[3] for b in fine))
    return OcclusionMap(name, (w, h), base_logit, boxes, drops, seen, region, n_forward, notes)


@dataclass(frozen=True)
class BranchRole:
    """One branch as every view describes it: its weight in the verdict and what it sees."""

    name: str
    weight: float
    sees: str
    explanation: str  # "Grad-CAM" (trace) or "occlusion sensitivity"

    @property
    def label(self) -> str:
        return f"{self.name} branch (fusion weight {self.weight:+.2f})"

    @property
    def decides(self) -> bool:
        return self.weight != 0.0


def branch_order(weights: dict[str, float], sees: dict[str, str] | None = None,
                 names: Sequence[str] = ()) -> list[BranchRole]:
    """Every branch (those in ``weights`` and ``names``), by ``|weight|``, largest first
    (a branch absent from the fusion weighs 0)."""
    from forensics_app.core.branches import TRACE

    sees = sees or {}
    all_names = list(dict.fromkeys([*weights, *names]))
    roles = [BranchRole(n, float(weights.get(n, 0.0)), sees.get(n, ""),
                        "Grad-CAM" if n == TRACE else "occlusion sensitivity")
             for n in all_names]
    return sorted(roles, key=lambda r: (-abs(r.weight), r.name != TRACE, r.name))


def detector_roles(detector: Any) -> list[BranchRole]:
    """:func:`branch_order` for a loaded :class:`forensics_app.core.detector.Detector`."""
    from forensics_app.core.branches import BRANCH_KINDS, TRACE

    sees = {TRACE: TRACE_SEES}
    ckpt = getattr(detector, "checkpoint", None)
    meta_branches = (getattr(ckpt, "meta", None) or {}).get("branches") or {}
    for name, rec in meta_branches.items():
        kind = BRANCH_KINDS.get(rec.get("kind")) if isinstance(rec, dict) else None
        sees[name] = kind.summary if kind else ""
    fusion = getattr(detector, "fusion", None)
    weights = dict(fusion.weights) if fusion is not None else {TRACE: 1.0}
    return branch_order(weights, sees, [TRACE, *getattr(detector, "branches", {})])


TRACE_SEES = "the whole image at full resolution (tiled), no resize"


def meta_roles(meta: Any) -> list[BranchRole]:
    """:func:`branch_order` from a checkpoint's metadata (a case's model record, no network
    loaded): a checkpoint without ``fusion`` is its trace branch alone, weight 1."""
    from forensics_app.core.branches import BRANCH_KINDS, TRACE

    meta = meta if isinstance(meta, dict) else {}
    branches = meta.get("branches") if isinstance(meta.get("branches"), dict) else {}
    sees = {TRACE: TRACE_SEES}
    for name, rec in branches.items():
        kind = BRANCH_KINDS.get(rec.get("kind")) if isinstance(rec, dict) else None
        sees[str(name)] = kind.summary if kind else str((rec or {}).get("kind", ""))
    fusion = meta.get("fusion") if isinstance(meta.get("fusion"), dict) else {}
    raw = fusion.get("weights") if isinstance(fusion.get("weights"), dict) else None
    weights: dict[str, float] = {}
    for k, v in (raw or {TRACE: 1.0}).items():
        try:
            weights[str(k)] = float(v)
        except (TypeError, ValueError):
            weights[str(k)] = 0.0
    return branch_order(weights, sees, [TRACE, *map(str, branches)])


def branch_context(detector: Any, model_id: str) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """The branches and roles of ``detector`` when it is the model that scored the row (a row
    of another model: its trace Grad-CAM only, labelled as such)."""
    if detector is not None and getattr(detector, "model_id", None) == model_id:
        return dict(getattr(detector, "branches", {}) or {}), tuple(detector_roles(detector))
    return {}, ()  # unknown weights: the map is shown as plain Grad-CAM, claiming no weight


def branch_occlusion_maps(roles: Sequence[BranchRole], branches: dict[str, Any],
                          img: Image.Image, should_cancel: Callable[[], bool] | None = None,
                          grid: int = OCCLUSION_GRID) -> dict[str, OcclusionMap | str]:
    """Occlusion maps of every non-trace branch among ``roles``; a branch that fails gets its
    error text instead (it never stops the others). Raises :class:`ExplainCancelled`."""
    import logging

    from forensics_app.core.branches import TRACE

    out: dict[str, OcclusionMap | str] = {}
    for role in roles:
        branch = branches.get(role.name)
        if role.name == TRACE or branch is None:
            continue
        try:
            out[role.name] = occlusion_map(branch, img, name=role.name, grid=grid,
                                           should_cancel=should_cancel)
        except ExplainCancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - one branch's map, reported on the map
            logging.getLogger(__name__).warning("occlusion map of %s failed: %s", role.name, exc)
            out[role.name] = f"{type(exc).__name__}: {exc}"
    return out
