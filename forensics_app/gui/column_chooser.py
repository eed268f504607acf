"""The results table's column chooser (D20): right-click the header to show or hide columns.

The choice is kept in the settings (``hidden_columns``, by column title so a new column never
inherits an old index), and the File column can never be hidden.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QHeaderView, QMenu

from forensics_app.gui.table_model import COLUMNS, Column

# Shown unless the analyst asks for them: the table stays readable on a small screen.
HIDDEN_BY_DEFAULT = ("Folder", "Scan time")


def _title(col: Column) -> str:
    return COLUMNS[col].title or "Preview"


class ColumnChooser:
    def __init__(self, header: QHeaderView, settings: Any):
        self.header, self.settings = header, settings
        if settings.hidden_columns is None:
            settings.hidden_columns = list(HIDDEN_BY_DEFAULT)
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self.show_menu)
        self.apply()

    def apply(self) -> None:
        hidden = set(self.settings.hidden_columns or ())
        for col in COLUMNS:
            self.header.setSectionHidden(col, col is not Column.FILE and _title(col) in hidden)

    def set_visible(self, col: Column, visible: bool) -> None:
        if col is Column.FILE:
            return
        hidden = [t for t in (self.settings.hidden_columns or []) if t != _title(col)]
        if not visible:
            hidden.append(_title(col))
        self.settings.hidden_columns = hidden
        self.apply()

    def menu(self) -> QMenu:
        menu = QMenu(self.header)
        menu.setTitle("Columns")
        for col in sorted(COLUMNS, key=self.header.visualIndex):
            a = menu.addAction(_title(col))
            a.setCheckable(True)
            a.setChecked(not self.header.isSectionHidden(col))
            a.setEnabled(col is not Column.FILE)
            a.toggled.connect(lambda on, c=col: self.set_visible(c, on))
        return menu

    def show_menu(self, pos: QPoint) -> None:
        self.menu().exec(self.header.mapToGlobal(pos))
