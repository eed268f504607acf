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
from forensics_app.core.report import ReportData, build_report, in_scope, render_html, write_html
from forensics_app.core.review import ReviewBook, review_key
from forensics_app.core.safetext import escape_text

log = logging.getLogger(__name__)

PDF_RESOLUTION = 150


def _qt_app() -> Any:
    """An application object for text layout; offscreen when the process has none. It is a
    QApplication (a QGuiApplication that also allows widgets): a process that lays out a
    report first and opens a window later (the test suite) would otherwise abort in Qt."""
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    app = QGuiApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QApplication([])
    return app


def write_pdf(data: ReportData, path: Path | str, isolated: bool = False,
              should_cancel: Any = None) -> Path:
    """The report as an A4 PDF (Qt rich text), atomically written.

    ``isolated``: lay it out in a child process. PySide6 holds Python's GIL for the whole of
    ``QTextDocument.setHtml`` and ``print_`` (3.4 s for a 20,000-row table, measured), so in
    a worker thread of the window they would freeze the GUI thread just the same; a spawned
    process shares no GIL. ``should_cancel()`` is polled meanwhile and ends the child.
    """
    path = Path(path)
    images: dict[str, bytes] = {}

    def src(key: str, jpeg: bytes) -> str:
        images[key] = jpeg
        return f"img://{key}"

    html = render_html(data, image_src=src, qt=True, compact=True)
    title = f"Case report — {escape_text(data.case_name)}"
    creator = f"Forensics App {data.app_version}"
    if not isolated:
        return _pdf_from_html(html, images, str(path), title, creator)
    import multiprocessing

    from forensics_app.core.report import ReportCancelled

    child = multiprocessing.get_context("spawn").Process(
        target=_pdf_from_html, args=(html, images, str(path), title, creator),
        name="report-pdf", daemon=True)
    child.start()
    try:
        while child.is_alive():
            child.join(0.1)
            if should_cancel is not None and should_cancel():
                child.terminate()  # a process, not a thread: nothing of ours is half-written
                child.join()
                path.with_name(f".{path.name}.tmp").unlink(missing_ok=True)
                raise ReportCancelled("report cancelled")
    finally:
        if child.is_alive():
            child.kill()
            child.join()
    if child.exitcode != 0 or not path.is_file():
        raise OSError(f"Qt could not lay out the PDF {path} (child process exit code "
                      f"{child.exitcode})")
    return path


def _pdf_from_html(html: str, images: dict[str, bytes], path: str, title: str,
                   creator: str) -> Path:
    from PySide6.QtCore import QMarginsF, QUrl
    from PySide6.QtGui import QFont, QImage, QPageLayout, QPageSize, QPdfWriter, QTextDocument

    _qt_app()
    path = Path(path)
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
    writer.setTitle(title)
    writer.setCreator(creator)
    from forensics_app.pdf_pages import print_document

    print_document(doc, writer)  # rows kept whole across pages (M2)
    del writer  # finishes the document
    buffer.close()
    if pdf.isEmpty():
        raise OSError(f"Qt could not render the PDF {path}")
    # written like every other output (core.outputs): a new file renamed over the name
    return atomic_write(path, bytes(pdf.data()))


def report_kind(out: Path | str) -> str:
    kind = Path(out).suffix.lower().lstrip(".")
    kind = "html" if kind == "htm" else kind
    if kind not in ("html", "pdf", "csv", "jsonl"):
        raise ValueError(f"unknown report format {Path(out).suffix!r} (use .html, .pdf, .csv, "
                         ".jsonl)")
    return kind


def export_params(case: Case, out: Path | str, threshold: float | None, band: float | None,
                  scope: str = "all", paths: Any = None) -> dict[str, Any]:
    """What the "report exported" audit entry records (logged before the report is built)."""
    return {"path": absolute_path(out), "format": report_kind(out),
            "n_rows": case.count_results(), "threshold": threshold, "inconclusive_band": band,
            "scope": scope, "filtered": paths is not None}


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
    out = Path(out)
    report_kind(out)
    owned = not isinstance(case, Case)
    if owned:
        try:
            case = Case.open(case)
        except CaseError as exc:
            log.warning("report without audit entry: %s", exc)
            case = Case.open(case, read_only=True)
    try:
        if not case.read_only:
            case.audit(ACTION_REPORT_EXPORTED, export_params(
                case, out, threshold, band, build_kwargs.get("scope", "all"),
                build_kwargs.get("paths")))
        try:
            write_case_report(case, out, threshold, band, **build_kwargs)
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


def write_case_report(case: Case, out: Path | str, threshold: float | None = None,
                      band: float | None = None, pdf_in_process: bool = False,
                      **build_kwargs: Any) -> Path:
    """Write the report and its anchor from an open (possibly read-only) case; no audit
    entry (the caller logs the export first, so the printed heads are --verify's). The
    GUI's report worker calls this on its own read-only connection."""
    from forensics_app.core.export import write_csv, write_jsonl
    from forensics_app.core.outputs import refuse_outputs_over_inputs

    out = Path(out)
    kind = report_kind(out)
    # Files, not spellings: a report (or its anchor) that is a hard or symbolic link to a file
    # of the case is refused for every front end that writes case reports.
    refuse_outputs_over_inputs({"report": out, "report anchor": anchor_path(out)},
                               case.evidence_paths())
    paths = build_kwargs.get("paths")
    scope = build_kwargs.get("scope", "all")
    if kind in ("csv", "jsonl"):
        reviews = ReviewBook(case).all()
        rows = case.results()
        if threshold is not None:
            rows = [r.with_threshold(threshold, band if band is not None
                                     else r.inconclusive_band) for r in rows]
        rows = [r for r in rows if (paths is None or r.path in paths)
                and in_scope(r, reviews.get(review_key(r)), scope)]
        extra = {"command": "case report", "case": str(case.folder), "case_id": case.case_id,
                 "scope": scope, "filtered": paths is not None,
                 "threshold": threshold, "inconclusive_band": band}  # M5
        (write_csv if kind == "csv" else write_jsonl)(out, rows, extra, reviews=reviews)
        verified = case.verify()
    else:
        if kind == "pdf":  # the compact file table has no thumbnails: do not decode them
            build_kwargs.setdefault("thumbnails", False)
        data = build_report(case, threshold=threshold, band=band, **build_kwargs)
        if kind == "html":
            write_html(data, out)
        else:
            write_pdf(data, out, isolated=pdf_in_process,
                      should_cancel=build_kwargs.get("should_cancel"))
        verified = data.verify
    write_anchor(case, verified, out)
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
