"""A saved Grad-CAM overlay says what it is: PNG text chunks plus a caption under the image.

Cut loose from the app, a heatmap PNG would otherwise carry no file name, hash, model or
score -- nothing to tie it to the evidence or to the detector that produced it.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter

from forensics_app.core.results import ScanResult
from forensics_app.core.safetext import escape_undecodable


def threshold_words(record: ScanResult) -> str:
    """The operating point the verdict was taken at, in words (D19)."""
    t, b = record.threshold, record.inconclusive_band or 0.0
    if b:
        return (f"threshold {t:.2f} ± {b:.2f}: AI-generated at P ≥ {t + b:.2f}, real below "
                f"{t - b:.2f}")
    return f"threshold {t:.2f}: AI-generated at P ≥ {t:.2f}"


def overlay_facts(record: ScanResult, branch: str = "") -> dict[str, str]:
    """The PNG text chunks (keys as in the PNG spec's keyword style); ``branch``: whose map
    it is ("semantic branch (fusion weight +1.00)"), H3."""
    score = "" if record.prob_fake is None else f"{record.prob_fake:.4f}"
    return {
        "Title": f"{'Explanation map' if branch else 'Grad-CAM'} overlay of "
                 f"{escape_undecodable(record.file_name)}",
        "Source": escape_undecodable(record.file_name),
        "SHA-256": record.sha256 or "",
        "Model": record.model_id,
        "P(generated)": score,
        "Verdict": record.verdict.value,
        "Threshold": threshold_words(record),
        "Description": (f"Map of the {branch}: r" if branch else "R")
                       + "egions that most raised the detector's score for this image; not a "
                       "map of edited or manipulated areas.",
    }


def caption_text(record: ScanResult, branch: str = "") -> str:
    facts = overlay_facts(record, branch)
    sha = facts["SHA-256"]  # in groups of 16, so it wraps whole on a narrow image
    sha = " ".join(sha[i : i + 16] for i in range(0, len(sha), 16)) or "n/a"
    return (f"{facts['Source']} · SHA-256 {sha} · model {facts['Model']} · "
            f"P(generated) {facts['P(generated)'] or 'n/a'}: {facts['Verdict']} at "
            f"{facts['Threshold']} · {facts['Description']}")


def wrap_caption(text: str, metrics: QFontMetrics, width: int) -> list[str]:
    """Lines no wider than ``width``, broken only between words (D19: the caption broke
    words, hashes included, wherever the line ran out). A single word wider than a line --
    a long file name on a narrow image -- is elided in its middle, never split."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        if metrics.horizontalAdvance(word) > width:
            word = metrics.elidedText(word, Qt.TextElideMode.ElideMiddle, width)
        candidate = f"{line} {word}" if line else word
        if line and metrics.horizontalAdvance(candidate) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    if line:
        lines.append(line)
    return lines


def captioned_overlay(image: QImage, record: ScanResult, branch: str = "") -> QImage:
    """``image`` with a caption strip below it and the facts as PNG text chunks."""
    facts = overlay_facts(record, branch)
    w = max(1, image.width())
    font = QFont()
    font.setPixelSize(max(9, min(18, w // 50)))
    metrics = QFontMetrics(font)
    pad = font.pixelSize() // 2 + 2
    lines = wrap_caption(caption_text(record, branch), metrics, max(1, w - 2 * pad))
    line_h = metrics.lineSpacing()
    text_h = line_h * len(lines)
    out = QImage(w, image.height() + text_h + 2 * pad, QImage.Format.Format_RGB32)
    out.fill(QColor("white"))
    painter = QPainter(out)
    painter.drawImage(0, 0, image)
    painter.setFont(font)
    painter.setPen(QColor("black"))
    for i, line in enumerate(lines):
        painter.drawText(QRect(pad, image.height() + pad + i * line_h, w - 2 * pad, line_h),
                         int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), line)
    painter.end()
    for key, value in facts.items():
        out.setText(key, value)
    return out
