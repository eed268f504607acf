"""The window on a small screen: 1366 × 768, or any screen at 1.5× scale (issue 37, M6).

Side by side, the Folders dock, the table and the Review/Provenance tabs need about 1010 ×
550 logical pixels; at 1.5× a 1366 × 768 screen offers 910 × 512 (less the task bar), so the
window was larger than the screen and the status bar was clipped. On such a screen every dock
joins one tab group on the right (Folders, Queue, Provenance, Review -- each a click away),
which leaves the table the width it needs for P(generated).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDockWidget


def available_size(window: Any) -> QSize | None:
    screen = window.screen() or QGuiApplication.primaryScreen()
    return screen.availableGeometry().size() if screen is not None else None


def needs_compact(window: Any, avail: QSize) -> bool:
    need = window.minimumSizeHint()
    return need.width() > avail.width() or need.height() > avail.height() - 40


def apply_compact_layout(window: Any, avail: QSize | None = None) -> bool:
    """Tab every dock together on the right when the window would not fit ``avail`` (the
    screen's available size by default). Returns whether it did."""
    avail = avail or available_size(window)
    if avail is None or not needs_compact(window, avail):
        return False
    docks = [window.review_dock, window.provenance_dock, window.browser_dock, window.queue_dock]
    # every other dock too (Witnesses, ...), or a left-over dock stacks beside the tab group
    docks += [d for d in window.findChildren(QDockWidget) if d not in docks and d.parent() is window]
    for dock in docks:
        window.removeDockWidget(dock)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, docks[0])
    for dock in docks[1:]:
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        window.tabifyDockWidget(docks[0], dock)
        dock.show()
    docks[0].show()
    docks[0].raise_()
    window.compact_layout = True
    return True
