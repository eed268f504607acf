"""Evidence text is shown as text, never as markup (issue 37, M4).

A Qt tooltip has no text-format setting: a string that *looks* like rich text (a file named
``IMG_2041.jpg<font color=#ffffdc>.generated``) is rendered as HTML, and its tail vanishes.
:func:`plain_tooltip` escapes the text and wraps it in ``<qt>`` so Qt renders exactly the
characters given; :func:`plain_label` sets a label to plain text for good.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel


def plain_tooltip(text: str | None) -> str | None:
    """``text`` as a tooltip that shows every character literally (line breaks kept)."""
    if not text:
        return text
    lines = html.escape(str(text), quote=False).split("\n")
    return "<qt><p style='white-space:pre-wrap'>" + "<br>".join(lines) + "</p></qt>"


def plain_label(label: QLabel) -> QLabel:
    """A label whose text is never interpreted as markup."""
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label
