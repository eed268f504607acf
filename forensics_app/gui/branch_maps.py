"""The heatmap viewer's choice of map: one per branch, labelled with its weight (issue 37, H3).

The verdict can come from a branch Grad-CAM does not see into (the semantic branch). The
viewer therefore lists every branch in the order of its fusion weight -- the one that decides
first, shown first -- with its own map: Grad-CAM for the trace CNN, occlusion sensitivity
(:mod:`forensics_app.core.branch_explain`) for any other branch. The maps are computed in the
heatmap worker (``core.branch_explain``); this module only shows them.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel

from forensics_app.core.branches import TRACE

CAM_CAPTION = "Grad-CAM: regions that most raised the “generated” score"


def qimage_from_array(arr: Any) -> QImage:
    """RGB or RGBA uint8 array (H, W, C) -> a QImage owning its pixels."""
    h, w, c = arr.shape
    fmt = QImage.Format.Format_RGB888 if c == 3 else QImage.Format.Format_RGBA8888
    return QImage(arr.tobytes(), w, h, c * w, fmt).copy()


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
            self.viewer.heat_item.setPixmap(QPixmap.fromImage(qimage_from_array(rgba)))
        self.viewer.cam_caption.setText(caption(role))
