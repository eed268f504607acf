"""Keyboard reach of the whole window (issue 37, M7).

* Tab leaves the Queue table in one step (it moved cell by cell, a trap), as it leaves the
  results table;
* the tabs of docks sharing one place (Provenance / Review) take Tab focus, arrows switch;
* the toolbar's buttons take Tab focus (a QToolBar makes them unfocusable), so every command
  and the Review panel, the filters and the toolbar are on the Tab chain;
* the window's shortcuts that a line edit would swallow as editing keys (Ctrl+E is "end of
  line" in a QLineEdit on Linux) reach their action while the filter box has focus.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent, QKeySequence
from PySide6.QtWidgets import QLineEdit, QTabBar, QToolBar, QToolButton


class WindowShortcutsFirst(QObject):
    """On a line edit: the listed actions' shortcuts win over the edit's own key bindings."""

    def __init__(self, actions: list[Any], parent: QObject | None = None):
        super().__init__(parent)
        self.actions = actions

    def _action_for(self, event: QKeyEvent) -> Any:
        pressed = QKeySequence(event.keyCombination())
        for action in self.actions:
            if any(s.matches(pressed) == QKeySequence.SequenceMatch.ExactMatch
                   for s in action.shortcuts()):
                return action
        return None

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 -- Qt's name
        if event.type() == QEvent.Type.ShortcutOverride:
            if self._action_for(event) is not None:
                event.ignore()  # not the edit's: the shortcut map delivers it to the action
                return True
        return False


def install_keyboard_navigation(window: Any) -> None:
    window.queue_view.table.setTabKeyNavigation(False)
    for bar in window.findChildren(QToolBar):
        for button in bar.findChildren(QToolButton):
            button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
    for bar in window.findChildren(QTabBar):  # the tabs of tabbed docks: arrows switch
        if bar.parent() is window:
            bar.setFocusPolicy(Qt.FocusPolicy.TabFocus)
    window._shortcuts_first = WindowShortcutsFirst([window.act_export], window)
    for edit in window.findChildren(QLineEdit):
        if edit is window.text_filter:
            edit.installEventFilter(window._shortcuts_first)
