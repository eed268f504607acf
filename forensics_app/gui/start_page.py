"""The empty window's start page (D26): scan a folder, open or create a case, recent cases.

Also the window's drop target while there are no rows (drops land on the window)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class StartPage(QWidget):
    scan_folder = Signal()
    new_case = Signal()
    open_case = Signal()
    open_recent = Signal(str)

    def __init__(self, recent: Callable[[], list[str]], parent: QWidget | None = None):
        super().__init__(parent)
        self.recent = recent
        title = QLabel("<h2>Forensics App</h2><p>Scores images for traces of AI generation. "
                       "A score is evidence to weigh, not proof; your conclusion is recorded "
                       "beside it.</p>")
        title.setWordWrap(True)
        title.setTextFormat(Qt.TextFormat.RichText)
        self.buttons = {}
        row = QHBoxLayout()
        for key, text, signal in (("scan", "Scan a folder…", self.scan_folder),
                                  ("new", "New case…", self.new_case),
                                  ("open", "Open case…", self.open_case)):
            b = QPushButton(text)
            b.setMinimumHeight(34)
            b.clicked.connect(signal.emit)
            self.buttons[key] = b
            row.addWidget(b)
        row.addStretch(1)
        hint = QLabel("…or drop images or folders anywhere on this window. Without a case, "
                      "results live in memory until you export them; a case stores every "
                      "result, your review and an audit log as they happen.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #666;")
        self.recent_list = QListWidget()
        self.recent_list.setMaximumHeight(160)
        self.recent_list.itemActivated.connect(
            lambda item: self.open_recent.emit(item.data(Qt.ItemDataRole.UserRole)))
        self.recent_label = QLabel("<b>Recent cases</b> (double-click or Enter to open)")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(28, 20, 28, 20)
        layout.addWidget(title)
        layout.addLayout(row)
        layout.addWidget(hint)
        layout.addSpacing(10)
        layout.addWidget(self.recent_label)
        layout.addWidget(self.recent_list)
        layout.addStretch(1)
        self.refresh()

    def refresh(self) -> None:
        self.recent_list.clear()
        folders = self.recent()
        for folder in folders:
            item = QListWidgetItem(folder)
            item.setData(Qt.ItemDataRole.UserRole, folder)
            item.setToolTip(folder)
            self.recent_list.addItem(item)
        self.recent_label.setVisible(bool(folders))
        self.recent_list.setVisible(bool(folders))

    def showEvent(self, event) -> None:  # noqa: N802 -- Qt's name
        self.refresh()
        super().showEvent(event)
