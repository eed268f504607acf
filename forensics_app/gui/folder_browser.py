"""Folder browser dock: a file-system tree of folders and image files."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QDir, QModelIndex, QSize, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileSystemModel,
    QHBoxLayout,
    QPushButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from forensics_app.core.loading import IMAGE_EXTENSIONS


class FolderBrowser(QWidget):
    scan_requested = Signal(list, bool)  # paths, recursive
    folder_changed = Signal(str)

    def __init__(self, recursive: bool = True, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = QFileSystemModel(self)
        self.model.setFilter(QDir.Filter.AllDirs | QDir.Filter.Files | QDir.Filter.NoDotAndDotDot)
        self.model.setNameFilters(sorted(f"*{ext}" for ext in IMAGE_EXTENSIONS))
        self.model.setNameFilterDisables(False)  # hide non-images instead of greying them
        self.model.setRootPath(QDir.rootPath())

        self.tree = QTreeView()
        self.tree.setModel(self.model)
        for col in range(1, self.model.columnCount()):
            self.tree.hideColumn(col)
        self.tree.setHeaderHidden(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.doubleClicked.connect(self._on_double_click)
        self.tree.selectionModel().currentChanged.connect(self._on_current)

        self.recursive = QCheckBox("Include sub-folders")
        self.recursive.setChecked(recursive)
        self.scan_folder_button = QPushButton("Scan folder")
        self.scan_folder_button.setToolTip("Scan the selected folder (or the folder of the "
                                           "selected file)")
        self.scan_folder_button.clicked.connect(self.scan_current_folder)
        self.scan_selection_button = QPushButton("Scan selection")
        self.scan_selection_button.setToolTip("Scan the selected files and folders "
                                              "(double-click an image to scan it alone)")
        self.scan_selection_button.clicked.connect(self.scan_selection)

        buttons = QHBoxLayout()
        buttons.addWidget(self.scan_folder_button)
        buttons.addWidget(self.scan_selection_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.recursive)
        layout.addLayout(buttons)

    def set_folder(self, folder: str) -> None:
        """Reveal and select ``folder`` (e.g. the last folder of the previous session)."""
        if not folder or not Path(folder).is_dir():
            folder = str(Path.home())
        idx = self.model.index(folder)
        if idx.isValid():
            self.tree.setCurrentIndex(idx)
            self.tree.expand(idx)
            self.tree.scrollTo(idx, QAbstractItemView.ScrollHint.PositionAtTop)

    def current_folder(self) -> str | None:
        idx = self.tree.currentIndex()
        if not idx.isValid():
            return None
        path = Path(self.model.filePath(idx))
        return str(path if path.is_dir() else path.parent)

    def selected_paths(self) -> list[str]:
        rows = self.tree.selectionModel().selectedRows(0)
        return [self.model.filePath(i) for i in rows]

    def scan_current_folder(self) -> None:
        folder = self.current_folder()
        if folder:
            self.scan_requested.emit([folder], self.recursive.isChecked())

    def scan_selection(self) -> None:
        paths = self.selected_paths()
        if paths:
            self.scan_requested.emit(paths, self.recursive.isChecked())

    def _on_double_click(self, index: QModelIndex) -> None:
        if not self.model.isDir(index):
            self.scan_requested.emit([self.model.filePath(index)], False)

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        folder = self.current_folder()
        if folder:
            self.folder_changed.emit(folder)

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        hint.setWidth(260)
        return hint
