"""Folder browser dock: a file-system tree of folders and image files."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QDir, QModelIndex, QSize, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QFileSystemModel,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from forensics_app.core.loading import IMAGE_EXTENSIONS


class FolderBrowser(QWidget):
    """A folder (editable path, up, browse) and the tree of its sub-folders and images."""

    scan_requested = Signal(list, bool)  # paths, recursive
    folder_changed = Signal(str)

    def __init__(self, recursive: bool = True, parent: QWidget | None = None):
        super().__init__(parent)
        self.root = ""
        self.model = QFileSystemModel(self)
        self.model.setFilter(QDir.Filter.AllDirs | QDir.Filter.Files | QDir.Filter.NoDotAndDotDot)
        self.model.setNameFilters(sorted(f"*{ext}" for ext in IMAGE_EXTENSIONS))
        self.model.setNameFilterDisables(False)  # hide non-images instead of greying them

        self.location = QLineEdit()
        self.location.setToolTip("Folder shown below; type a path and press Enter")
        self.location.returnPressed.connect(lambda: self.set_folder(self.location.text()))
        up = QToolButton()
        up.setText("↑")
        up.setToolTip("Parent folder")
        up.clicked.connect(lambda: self.set_folder(str(Path(self.root).parent)))
        browse = QToolButton()
        browse.setText("…")
        browse.setToolTip("Choose a folder")
        browse.clicked.connect(self._browse)

        self.tree = QTreeView()
        self.tree.setModel(self.model)
        for col in range(1, self.model.columnCount()):
            self.tree.hideColumn(col)
        self.tree.setHeaderHidden(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.doubleClicked.connect(self._on_double_click)

        self.recursive = QCheckBox("Include sub-folders")
        self.recursive.setChecked(recursive)
        self.scan_folder_button = QPushButton("Scan folder")
        self.scan_folder_button.setToolTip("Scan the selected folder (or, with nothing "
                                           "selected, the folder shown)")
        self.scan_folder_button.clicked.connect(self.scan_current_folder)
        self.scan_selection_button = QPushButton("Scan selection")
        self.scan_selection_button.setToolTip("Scan the selected files and folders "
                                              "(double-click an image to scan it alone)")
        self.scan_selection_button.clicked.connect(self.scan_selection)

        top = QHBoxLayout()
        top.addWidget(self.location, 1)
        top.addWidget(up)
        top.addWidget(browse)
        buttons = QHBoxLayout()
        buttons.addWidget(self.scan_folder_button)
        buttons.addWidget(self.scan_selection_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.recursive)
        layout.addLayout(buttons)

    def set_folder(self, folder: str) -> None:
        """Show ``folder`` (e.g. the last folder of the previous session; home if it is gone)."""
        path = Path(folder).expanduser() if folder else Path.home()
        if not path.is_dir():
            path = Path.home()
        self.root = str(path)
        self.location.setText(self.root)
        self.tree.setRootIndex(self.model.setRootPath(self.root))
        self.tree.clearSelection()
        self.folder_changed.emit(self.root)

    def current_folder(self) -> str | None:
        idx = self.tree.currentIndex()
        if idx.isValid() and self.tree.selectionModel().isSelected(idx):
            path = Path(self.model.filePath(idx))
            return str(path if path.is_dir() else path.parent)
        return self.root or None

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

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Show folder", self.root)
        if folder:
            self.set_folder(folder)

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        hint.setWidth(250)
        return hint
