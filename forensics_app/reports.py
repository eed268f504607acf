"""Case reports in every format: HTML, PDF, CSV, JSON Lines -- the one call CLI and GUI make.

The HTML and the records come from the engine (:mod:`forensics_app.core.report`,
:mod:`forensics_app.core.export`). The PDF is laid out by Qt's own ``QTextDocument`` and
written by ``QPdfWriter``: PySide6 is already a dependency of the app, so the PDF needs no
new package, no browser and no external program, and it renders the same records as the
HTML (Qt's rich-text subset: tables, images, page breaks). This module lives outside
``core`` because the engine imports no Qt.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from forensics_app.core.case import (
    ACTION_REPORT_EXPORTED,
    ACTION_REPORT_FAILED,
    Case,
    CaseError,
)
from forensics_app.core.case_chain import absolute_path, anchor_path, anchor_record
from forensics_app.core.report import ReportData, build_report, render_html, write_html
from forensics_app.core.safetext import escape_text

log = logging.getLogger(__name__)

PDF_RESOLUTION = 150


def _qt_app() -> Any:
    """A QGuiApplication for text layout; offscreen when the process has none."""
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QGuiApplication([])
    return app


def write_pdf(data: ReportData, path: Path | str) -> Path:
    """The report as an A4 PDF (Qt rich text), atomically written."""
    from PySide6.QtCore import QMarginsF, QUrl
    from PySide6.QtGui import QFont, QImage, QPageLayout, QPageSize, QPdfWriter, QTextDocument

    _qt_app()
    path = Path(path)
    images: dict[str, bytes] = {}

    def src(key: str, jpeg: bytes) -> str:
        images[key] = jpeg
        return f"img://{key}"

    html = render_html(data, image_src=src, qt=True)
    doc = QTextDocument()
    doc.setDefaultFont(QFont("DejaVu Sans", 8))
    for key, jpeg in images.items():
        img = QImage()
        img.loadFromData(jpeg, "JPEG")
        doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(f"img://{key}"), img)
    doc.setHtml(html)
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    from forensics_app.core.outputs import atomic_write

    pdf = QByteArray()
    buffer = QBuffer(pdf)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QPdfWriter(buffer)
    writer.setResolution(PDF_RESOLUTION)
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setPageMargins(QMarginsF(12, 12, 12, 12), QPageLayout.Unit.Millimeter)
    writer.setTitle(f"Case report — {escape_text(data.case_name)}")
    writer.setCreator(f"Forensics App {data.app_version}")
    doc.print_(writer)
    del writer  # finishes the document
    buffer.close()
    if pdf.isEmpty():
        raise OSError(f"Qt could not render the PDF {path}")
    # written like every other output (core.outputs): a new file renamed over the name
    return atomic_write(path, bytes(pdf.data()))


def export_case_report(case: Case | Path | str, out: Path | str,
                       threshold: float | None = None, band: float | None = None,
                       **build_kwargs: Any) -> Path:
    """Write the case report in the format ``out``'s suffix names, and its anchor.

    ``case`` is an open :class:`Case` (the GUI's) or a case folder; a folder is opened for
    writing to record the export, or read-only when that is not possible (read-only media,
    another instance holds it): the report is written, the export is then not logged.

    The export is logged *before* the report is built, so the chain heads the report prints
    (and its anchor, ``OUT.anchor.json``, records) are the ones ``--verify`` shows later.
    """
    from forensics_app.core.export import write_csv, write_jsonl

    out = Path(out)
    kind = out.suffix.lower().lstrip(".")
    if kind == "htm":
        kind = "html"
    if kind not in ("html", "pdf", "csv", "jsonl"):
        raise ValueError(f"unknown report format {out.suffix!r} (use .html, .pdf, .csv, .jsonl)")
    owned = not isinstance(case, Case)
    if owned:
        try:
            case = Case.open(case)
        except CaseError as exc:
            log.warning("report without audit entry: %s", exc)
            case = Case.open(case, read_only=True)
    try:
        if not case.read_only:
            case.audit(ACTION_REPORT_EXPORTED, {"path": absolute_path(out), "format": kind,
                                                "n_rows": case.count_results(),
                                                "threshold": threshold,
                                                "inconclusive_band": band})
        try:
            if kind in ("csv", "jsonl"):
                rows = case.results()
                if threshold is not None:
                    rows = [r.with_threshold(threshold, band if band is not None
                                             else r.inconclusive_band) for r in rows]
                extra = {"command": "case report", "case": str(case.folder),
                         "case_id": case.case_id}
                (write_csv if kind == "csv" else write_jsonl)(out, rows, extra)
                verified = case.verify()
            else:
                data = build_report(case, threshold=threshold, band=band, **build_kwargs)
                (write_html if kind == "html" else write_pdf)(data, out)
                verified = data.verify
            write_anchor(case, verified, out)
        except BaseException as exc:
            if not case.read_only:
                try:
                    case.audit(ACTION_REPORT_FAILED, {"path": absolute_path(out),
                                                      "error": str(exc) or type(exc).__name__})
                except CaseError:
                    pass
            raise
    finally:
        if owned:
            case.close()
    return out


def write_anchor(case: Case, verified: Any, report: Path) -> Path:
    """``REPORT.anchor.json``: both heads and counts as the report shows them."""
    import hashlib
    import json

    from forensics_app.core.outputs import atomic_write

    record = anchor_record(case.case_id, case.name, verified, case.info("created_utc") or "",
                           report.name)
    with open(report, "rb") as fh:
        record["report_sha256"] = hashlib.file_digest(fh, "sha256").hexdigest()
    path = anchor_path(report)
    atomic_write(path, lambda fh: json.dump(record, fh, indent=2))
    return path
