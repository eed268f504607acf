"""Helpers for the GUI tests: real drop events and waiting for the queue."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget

from forensics_app.gui.main_window import MainWindow
from forensics_app.gui.records import JobStatus, ScanJob

SCAN_TIMEOUT_MS = 60_000


def drop(target: QWidget, paths: list[Path | str]) -> bool:
    """Deliver a real drag-enter / drag-move / drop sequence of file URLs onto ``target``."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(target.rect().center())
    actions = Qt.DropAction.CopyAction | Qt.DropAction.LinkAction
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(pos, actions, mime, buttons, mods)
    QApplication.sendEvent(target, enter)
    if not enter.isAccepted():
        return False
    move = QDragMoveEvent(pos, actions, mime, buttons, mods)
    QApplication.sendEvent(target, move)
    event = QDropEvent(pos, actions, mime, buttons, mods)
    QApplication.sendEvent(target, event)
    return event.isAccepted()


def ctrl_click(qtbot, widget, key) -> None:
    """Ctrl+key as the analyst types it, then the modifier state reset: QTest leaves Ctrl
    "held" for the application after a shortcut consumed the press, which turns the next
    test's row selection into a toggle."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication

    qtbot.keyClick(widget, key, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyRelease(widget, Qt.Key.Key_Control, Qt.KeyboardModifier.NoModifier)
    assert QGuiApplication.keyboardModifiers() == Qt.KeyboardModifier.NoModifier


def wait_idle(qtbot, window: MainWindow, timeout: int = SCAN_TIMEOUT_MS) -> list[ScanJob]:
    """Wait until every queued job has finished; return the jobs."""
    qtbot.waitUntil(lambda: not window.queue.busy, timeout=timeout)
    assert all(j.status.finished for j in window.queue.jobs)
    return window.queue.jobs


def done_jobs(window: MainWindow) -> list[ScanJob]:
    return [j for j in window.queue.jobs if j.status is JobStatus.DONE]
