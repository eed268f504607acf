"""The heatmap viewer's choice of map: one per branch, labelled with its weight (issue 37, H3).

The verdict can come from a branch Grad-CAM does not see into (the semantic branch). The
viewer therefore lists every branch in the order of its fusion weight -- the one that decides
first, shown first -- with its own map: Grad-CAM for the trace CNN, occlusion sensitivity
(:mod:`forensics_app.core.branch_explain`) for any other branch. The maps are computed in the
heatmap worker; this module only prepares and shows them.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel

from forensics_app.core.branches import TRACE

log = logging.getLogger(__name__)

OCCLUSION_GRID = 5  # 5 × 5 cells over what the branch sees: at most 26 forward passes


def branch_context(detector: Any, model_id: str) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """The branches and roles of ``detector`` when it is the model that scored the row (a row
    of another model: its trace Grad-CAM only, labelled as such)."""
    from forensics_app.core.branch_explain import detector_roles

    if detector is not None and getattr(detector, "model_id", None) == model_id:
        return dict(getattr(detector, "branches", {}) or {}), tuple(detector_roles(detector))
    return {}, ()  # unknown weights: the map is shown as plain Grad-CAM, claiming no weight


def occlusion_maps(req: Any, img: Any, should_cancel: Any) -> dict[str, Any]:
    """Occlusion maps (``core.branch_explain.OcclusionMap``) of every non-trace branch the
    request names; a branch that fails gets a note instead, never stops the Grad-CAM."""
    from forensics_app.core.branch_explain import ExplainCancelled, occlusion_map
    from forensics_app.gui.workers import WorkCancelled

    out: dict[str, Any] = {}
    for role in req.roles:
        branch = req.branches.get(role.name)
        if role.name == TRACE or branch is None:
            continue
        try:
            out[role.name] = occlusion_map(branch, img, name=role.name, grid=OCCLUSION_GRID,
                                           should_cancel=should_cancel)
        except ExplainCancelled:
            raise WorkCancelled() from None
        except Exception as exc:  # noqa: BLE001 - one branch's map, reported on the map
            log.warning("occlusion map of %s failed: %s", role.name, exc)
            out[role.name] = f"{type(exc).__name__}: {exc}"
    return out


def attach_maps(data: Any, maps: dict[str, Any]) -> None:
    """Colour each occlusion map at the size of the image shown, transparent where the
    branch does not look."""
    from forensics_app.core.gradcam import colour_map

    h, w = data.image.shape[:2]
    for name, m in maps.items():
        if isinstance(m, str):
            data.branch_notes[name] = [f"no occlusion map: {m}"]
            continue
        rgb = colour_map(m.heat(w, h))
        alpha = np.where(m.seen_mask(w, h), 255, 0).astype(np.uint8)[..., None]
        data.branch_rgba[name] = np.ascontiguousarray(np.concatenate([rgb, alpha], axis=2))
        data.branch_notes[name] = list(m.notes) + [
            f"occlusion sensitivity: {m.n_forward} forward passes of the {name} branch."]


def caption(role: Any) -> str:
    return f"{role.label}, {role.explanation}: regions that most raised the “generated” score"


class BranchMapChoice:
    """A combo box above the panes: which branch's map the right-hand pane shows."""

    def __init__(self, viewer: Any):
        self.viewer = viewer
        self.combo = QComboBox()
        self.combo.setAccessibleName("Explanation map")
        self.combo.currentIndexChanged.connect(self._show)
        self.sees = QLabel()
        self.sees.setWordWrap(True)
        self.sees.setStyleSheet("color: #444;")
        row = QHBoxLayout()
        row.addWidget(QLabel("Map of:"))
        row.addWidget(self.combo, 1)
        self.row = row

    def refresh(self, data: Any) -> None:
        """Fill the choice from ``data.roles`` (heaviest first) and show the first branch that
        has a map: the branch that decides the verdict."""
        roles = list(getattr(data, "roles", []) or [])
        self.combo.blockSignals(True)
        self.combo.clear()
        first = None
        for i, role in enumerate(roles):
            has = role.name == TRACE or role.name in data.branch_rgba
            self.combo.addItem(f"{role.label}: {role.explanation}"
                               + ("" if has else " (no map)"), role.name)
            self.combo.setItemData(i, role.sees or None, 3)  # ToolTipRole: what it sees
            if has and first is None:
                first = i
        self.combo.blockSignals(False)
        self.combo.setVisible(bool(roles))
        if not roles:
            from forensics_app.gui.heatmap_view import CAM_CAPTION

            self.viewer.cam_caption.setText(CAM_CAPTION)
        self.sees.setText(" · ".join(f"{r.name} (weight {r.weight:+.2f}) sees "
                                     f"{r.sees or 'the image'}" for r in roles))
        if first is not None:
            self.combo.setCurrentIndex(first)
            self._show(first)

    def current(self) -> Any:
        data = self.viewer.data
        i = self.combo.currentIndex()
        roles = list(getattr(data, "roles", []) or []) if data is not None else []
        return roles[i] if 0 <= i < len(roles) else None

    def _show(self, _index: int) -> None:
        data, role = self.viewer.data, self.current()
        if data is None or role is None:
            return
        rgba = data.heat_rgba if role.name == TRACE else data.branch_rgba.get(role.name)
        if rgba is None:
            self.viewer.heat_item.setPixmap(QPixmap())
        else:
            from forensics_app.gui.heatmap_view import qimage_from_array

            self.viewer.heat_item.setPixmap(QPixmap.fromImage(qimage_from_array(rgba)))
        self.viewer.cam_caption.setText(caption(role))
