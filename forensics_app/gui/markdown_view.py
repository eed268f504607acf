"""Markdown shown safely (D5): raw HTML in a model card or guide is text, never markup.

Qt's default Markdown dialect reads ``<artist>`` as an HTML tag and swallows the table it
sits in; the GitHub dialect without HTML keeps tables and shows such text as written.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

SAFE_MARKDOWN = (QTextDocument.MarkdownFeature.MarkdownDialectGitHub
                 | QTextDocument.MarkdownFeature.MarkdownNoHTML)


def set_markdown(view: QTextBrowser, markdown: str) -> None:
    view.document().setMarkdown(markdown, SAFE_MARKDOWN)
    view.verticalScrollBar().setValue(0)  # a card or guide opens at its top (issue 37, Low)


class MarkdownDialog(QDialog):
    """Help → Model card / User guide."""

    def __init__(self, parent: QWidget | None, title: str, markdown: str):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.view = QTextBrowser()
        self.view.setOpenExternalLinks(False)
        self.view.setOpenLinks(False)  # a link in a card is text to read, not a place to go
        set_markdown(self.view, markdown)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view, 1)
        layout.addWidget(buttons)
        self.resize(760, 620)


def read_markdown(path: Path, missing: str) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return missing
