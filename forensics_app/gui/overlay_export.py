"""A saved Grad-CAM overlay says what it is: PNG text chunks plus a caption under the image.

Cut loose from the app, a heatmap PNG would otherwise carry no file name, hash, model or
score -- nothing to tie it to the evidence or to the detector that produced it.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter

from forensics_app.core.results import ScanResult
from forensics_app.core.safetext import escape_undecodable


def overlay_facts(record: ScanResult) -> dict[str, str]:
    """The PNG text chunks (keys as in the PNG spec's keyword style)."""
    score = "" if record.prob_fake is None else f"{record.prob_fake:.4f}"
    return {
        "Title": f"Grad-CAM overlay of {escape_undecodable(record.file_name)}",
        "Source": escape_undecodable(record.file_name),
        "SHA-256": record.sha256 or "",
        "Model": record.model_id,
        "P(generated)": score,
        "Verdict": record.verdict.value,
        "Description": "Regions that most raised the detector's score for this image; not a "
                       "map of edited or manipulated areas.",
    }


def captioned_overlay(image: QImage, record: ScanResult) -> QImage:
    """``image`` with a caption strip below it and the facts as PNG text chunks."""
    facts = overlay_facts(record)
    caption = (f"{facts['Source']} · SHA-256 {facts['SHA-256']} · model {facts['Model']} · "
               f"P(generated) {facts['P(generated)'] or 'n/a'} ({facts['Verdict']}) · "
               f"{facts['Description']}")
    w = max(1, image.width())
    font = QFont()
    font.setPixelSize(max(9, min(18, w // 50)))
    metrics = QFontMetrics(font)
    pad = font.pixelSize() // 2 + 2
    flags = int(Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWrapAnywhere)
    text_h = metrics.boundingRect(QRect(0, 0, w - 2 * pad, 10_000), flags, caption).height()
    out = QImage(w, image.height() + text_h + 2 * pad, QImage.Format.Format_RGB32)
    out.fill(QColor("white"))
    painter = QPainter(out)
    painter.drawImage(0, 0, image)
    painter.setFont(font)
    painter.setPen(QColor("black"))
    painter.drawText(QRect(pad, image.height() + pad, w - 2 * pad, text_h), flags, caption)
    painter.end()
    for key, value in facts.items():
        out.setText(key, value)
    return out
