"""The provenance details panel: every field read from the selected file's metadata, grouped.

Shows the core's :class:`~forensics_app.core.provenance.Provenance` record (through
``iter_detail_groups``, the same listing reports use) beside the detector's verdict, with a
highlighted line when the two disagree. Every value is selectable and copyable; nothing here
interprets metadata.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from forensics_app.core.metadata_disagreement import metadata_disagreement
from forensics_app.core.provenance import iter_detail_groups
from forensics_app.core.results import ScanResult
from forensics_app.core.safetext import escape_text, html_text, isolate
from forensics_app.gui.plain_text import plain_label, plain_tooltip

DISAGREE_STYLE = "background: #fff0c2; border: 1px solid #e0a526; border-radius: 3px; padding: 4px;"
DISAGREE_COLOUR = "#fff0c2"
_DECLARED_COLOURS = {True: "#a3261b", False: "#1e6b2b", None: "#555555"}


class ProvenancePanel(QWidget):
    """Details of one record's provenance; ``show_record(None)`` clears it."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.record: ScanResult | None = None
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warning = plain_label(QLabel())  # it quotes EXIF text (M4)
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(DISAGREE_STYLE)
        self.warning.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warning.hide()
        self.tree = QTreeWidget()
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Field", "Value"])
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setWordWrap(True)
        self.tree.setUniformRowHeights(False)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._menu)
        self.copy_button = QPushButton("Copy all")
        self.copy_button.setToolTip("Copy every provenance field of this file as text")
        self.copy_button.clicked.connect(self.copy_all)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.title)
        layout.addWidget(self.warning)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        self.show_record(None)

    def show_record(self, record: ScanResult | None) -> None:
        self.record = record
        self.tree.clear()
        self.warning.hide()
        prov = record.provenance if record is not None else None
        self.copy_button.setEnabled(prov is not None)
        if record is None:
            self.title.setText("<i>Select a row to see what its metadata says.</i>")
            return
        if prov is None:
            self.title.setText(f"<b>{_esc(record.file_name)}</b><br>Provenance was not read "
                               "for this file.")
            return
        colour = _DECLARED_COLOURS[prov.declared_generated]
        self.title.setText(
            f"<b>{_esc(record.file_name)}</b><br>{_esc(prov.summary)}<br>"
            f"Metadata declares generated: <b style='color:{colour}'>{prov.declared_text}</b>"
            + (f" ({_esc(prov.declared_strength)})" if prov.declared_strength else "")
            + f" · detector: <b>{_esc(record.verdict.value)}</b>"
            + (f" ({record.prob_fake:.3f})" if record.prob_fake is not None else "")
            + (f"<br>{_esc(record.caveat_note)}" if record.caveat_note else "")
            + (f"<br>Detector notes: {_esc('; '.join(record.notes))}" if record.notes else ""))
        clash = metadata_disagreement(prov, record.verdict)
        if clash:
            self.warning.setText(f"⚠ Metadata and detector disagree: {clash}. Either can be "
                                 "wrong; neither changes the other.")
            self.warning.show()
        bold = QFont()
        bold.setBold(True)
        for title, rows in iter_detail_groups(prov):
            group = QTreeWidgetItem(self.tree, [title, ""])
            group.setFont(0, bold)
            group.setFirstColumnSpanned(True)
            for name, value in rows:
                item = QTreeWidgetItem(group, [name, value])
                item.setToolTip(1, plain_tooltip(value))
                if name.endswith("status: failure") or name.startswith("Status: failure") \
                        or name == "Error":
                    item.setForeground(1, QBrush(QColor("#a3261b")))
            group.setExpanded(True)

    def as_text(self) -> str:
        """The panel's content as plain text (what *Copy all* puts on the clipboard)."""
        if self.record is None or self.record.provenance is None:
            return ""
        prov = self.record.provenance
        lines = [escape_text(self.record.path), f"summary: {escape_text(prov.summary)}",
                 f"declared_generated: {prov.declared_text}",
                 f"detector: {self.record.verdict.value}"]
        clash = metadata_disagreement(prov, self.record.verdict)
        if clash:
            lines.append(f"disagreement: {clash}")
        for title, rows in iter_detail_groups(prov):
            lines.append(f"[{title}]")
            lines += [f"  {name}: {value}" for name, value in rows]
        return "\n".join(lines) + "\n"

    def copy_all(self) -> None:
        QGuiApplication.clipboard().setText(self.as_text())

    def copy_selected(self) -> None:
        items = self.tree.selectedItems()
        text = "\n".join(f"{i.text(0)}: {i.text(1)}" if i.parent() else f"[{i.text(0)}]"
                         for i in items)
        if text:
            QGuiApplication.clipboard().setText(text + "\n")

    def keyPressEvent(self, event) -> None:
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy_selected()
            return
        super().keyPressEvent(event)

    def _menu(self, pos) -> None:
        menu = QMenu(self)
        menu.addAction("Copy selected", self.copy_selected)
        menu.addAction("Copy all", self.copy_all)
        menu.exec(self.tree.viewport().mapToGlobal(pos))


def _esc(text: str) -> str:
    """Rich text for evidence text: control/bidi characters visible (core.safetext)."""
    return isolate(html_text(text))
