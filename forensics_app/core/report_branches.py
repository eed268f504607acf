"""The report's account of the branches: in the order of their weight in the verdict, each
with what it sees and its own explanation map (issue 37, H3).

The bundled detector's verdict comes from its semantic branch (fusion weight 1.0); its trace
CNN weighs 0. A report that shows only the trace CNN's Grad-CAM as "the regions that most
raised the score" explains a branch that does not decide. Here every view of the report is
built from :func:`forensics_app.core.branch_explain.meta_roles` (the checkpoint's own
metadata, as the case recorded it): the method text lists the branches heaviest first, and a
flagged image gets one map per branch -- Grad-CAM for the trace CNN, occlusion sensitivity
for any other -- each captioned with its weight.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from forensics_app.core.branch_explain import BranchRole, meta_roles
from forensics_app.core.branches import TRACE
from forensics_app.core.safetext import html_text

log = logging.getLogger(__name__)



@dataclass
class BranchMap:
    """One branch's map of one flagged image (``jpeg`` None: no map, ``note`` says why)."""

    role: BranchRole
    jpeg: bytes | None
    note: str = ""

    @property
    def caption(self) -> str:
        return map_caption(self.role)


def map_caption(role: BranchRole) -> str:
    how = "Grad-CAM overlay" if role.name == TRACE else role.explanation
    text = f"{role.label}, {how}: regions that most raised the “generated” score"
    if not role.decides:
        text += " (this branch does not move the verdict)"
    return text


def method_paragraphs(models: list[Any]) -> list[str]:
    """The "Method and limits" paragraphs (HTML, escaped): per model, its branches by weight."""
    out: list[str] = []
    for m in models:
        roles = meta_roles(getattr(m, "meta", None))
        many = len(roles) > 1
        head = (f"Model {html_text(m.model_id)}: P(generated) is the logistic fusion of "
                f"{len(roles)} branches, listed by their weight in the verdict." if many else
                f"Model {html_text(m.model_id)}: one branch scores each image.")
        items = []
        for role in roles:
            sees = role.sees or "the image"
            what = ("a convolutional trace detector in the style of Wang et al., <i>CNN-"
                    "generated images are surprisingly easy to spot… for now</i> (CVPR 2020); "
                    "each scan's preprocessing is listed under Scans" if role.name == TRACE
                    else "")
            weight = ("" if not many else " — <b>decides the verdict</b>" if role is roles[0]
                      and role.decides else " — <b>does not move the verdict</b>"
                      if not role.decides else "")
            items.append(f"<li><b>{html_text(role.label)}</b>{weight}. It sees "
                         f"{html_text(sees)}" + (f"; {what}" if what else "") + ".</li>")
        out.append(f"{head}<ul>{''.join(items)}</ul>")
    out.append(
        "Every file is read once, read-only; its SHA-256 describes exactly the bytes analysed. "
        "A file's row keeps every branch's own score beside the fused P(generated); an image "
        "the detector finds outside the domains it was validated on is Inconclusive "
        "whatever its score, and the row says why.")
    out.append(
        "Each flagged image shows one map per branch, in the same order: Grad-CAM for the "
        "trace CNN; for any other branch, occlusion sensitivity — a grey patch laid over each "
        "cell of a grid over the part of the image that branch sees, and the drop of its "
        "“generated” logit (cells it never sees are left uncoloured). Each map is labelled "
        "with its branch's fusion weight. A map is <b>not</b> a map of manipulated areas and "
        "does not localise edits.")
    return out


class BranchSource:
    """The non-trace branches of the checkpoints a report's rows used, built on first need
    (the branch weights are looked up where the app keeps them, never fetched)."""

    def __init__(self, models: dict[str, Any]):
        self.models = models
        self._cache: dict[str, dict[str, Any] | str] = {}

    def roles(self, model_id: str) -> list[BranchRole]:
        rec = self.models.get(model_id)
        return meta_roles(getattr(rec, "meta", None))

    def get(self, model_id: str) -> dict[str, Any] | str:
        if model_id not in self._cache:
            self._cache[model_id] = self._load(model_id)
        return self._cache[model_id]

    def _load(self, model_id: str) -> dict[str, Any] | str:
        from forensics_app.core.branches import build_branches

        rec = self.models.get(model_id)
        meta = getattr(rec, "meta", None)
        if not isinstance(meta, dict) or not meta.get("branches"):
            return {}
        try:
            return build_branches(meta)
        except Exception as exc:  # noqa: BLE001 -- missing weights, bad record: a note
            log.warning("branches of %s unavailable for the report: %s", model_id, exc)
            return f"map unavailable: {type(exc).__name__}: {exc}"


def occlusion_jpeg(img: Any, branch: Any, name: str, max_px: int) -> tuple[bytes, str]:
    """The image (at most ``max_px``) with ``branch``'s occlusion map over what it sees, the
    rest dimmed; and a note (forward passes, unseen cells)."""
    from PIL import Image

    from forensics_app.core.branch_explain import OCCLUSION_GRID, occlusion_map

    img = img.convert("RGB")
    m = occlusion_map(branch, img, name=name, grid=OCCLUSION_GRID)
    shown = img.copy()
    shown.thumbnail((max_px, max_px), Image.LANCZOS)
    w, h = shown.size
    base = np.asarray(shown, np.float32)
    rgba = m.rgba(w, h)
    seen = rgba[..., 3:] > 0
    coloured = 0.5 * base + 0.5 * rgba[..., :3].astype(np.float32)
    dimmed = 0.35 * base + 0.65 * 255
    out = np.where(seen, coloured, dimmed).round().clip(0, 255).astype(np.uint8)
    import io

    buf = io.BytesIO()
    Image.fromarray(out).save(buf, format="JPEG", quality=85)
    notes = [*m.notes, f"occlusion sensitivity: {m.n_forward} forward passes of the {name} "
             "branch; the pale area is outside what it sees"]
    return buf.getvalue(), "; ".join(notes)


def branch_maps(img: Any, model_id: str, trace_overlay: bytes | None, trace_note: str,
                source: BranchSource, max_px: int) -> list[BranchMap]:
    """Every branch's map of ``img``, heaviest branch first (the trace CNN's is the Grad-CAM
    overlay already made)."""
    roles = source.roles(model_id)
    built: dict[str, Any] | str | None = None
    out: list[BranchMap] = []
    for role in roles:
        if role.name == TRACE:
            out.append(BranchMap(role, trace_overlay, trace_note))
            continue
        if built is None:
            built = source.get(model_id)
        if isinstance(built, str):
            out.append(BranchMap(role, None, built))
            continue
        branch = built.get(role.name)
        if branch is None:
            out.append(BranchMap(role, None, "map unavailable: the branch was not built"))
            continue
        try:
            jpeg, note = occlusion_jpeg(img, branch, role.name, max_px)
            out.append(BranchMap(role, jpeg, note))
        except Exception as exc:  # noqa: BLE001 -- one map must not stop the report
            log.warning("occlusion map of %s failed: %s", role.name, exc)
            out.append(BranchMap(role, None, f"map failed: {type(exc).__name__}: {exc}"))
    return out
