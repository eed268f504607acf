"""Drops are taken as a copy or a link, never a move.

A file manager that sees a drop accepted as ``MoveAction`` may delete the source once the drop
is done; the source is evidence. Each handler asks :func:`accept_without_move` instead of
``acceptProposedAction()``.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QDropEvent


def accept_without_move(event: QDropEvent) -> bool:
    """Accept ``event`` (a drag-enter, -move or drop) as Copy, else Link; refuse a move-only
    drag. Returns whether it was accepted."""
    possible = event.possibleActions()
    for action in (Qt.DropAction.CopyAction, Qt.DropAction.LinkAction):
        if possible & action:
            event.setDropAction(action)
            event.accept()
            return True
    event.ignore()
    return False
