"""The PDF report's pages, laid out and drawn here rather than by ``QTextDocument.print_``.

Qt's table layout splits a table row across two pages line by line: a file's name and first
hash line end one page, its verdict cell -- one line, already placed -- stays there, and the
rest of the row continues on the next page under the repeated header (issue 37, M2: a row with
"P 0.961" and an empty verdict). Qt only moves a row whole when *none* of its cells' first
lines fits. So the document is paginated here on the device it is drawn on, every table row
that would straddle a page boundary is preceded by an invisible spacer row that fills the rest
of the page, and Qt then carries the whole row (under the repeated header) to the next page.
The pages are drawn from the same layout that was checked, so what was checked is what is
printed; the page number is drawn by us too ("page N of M").
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

FOOTER_MM = 6.0  # room under the body for the page number
MAX_ROUNDS = 10_000  # one spacer per round; a document never needs more than it has rows


def _rows(table: Any) -> list[list[Any]]:
    """Each row's cells (a cell spanning rows is counted in its first row only)."""
    rows = []
    for r in range(table.rows()):
        rows.append([table.cellAt(r, c) for c in range(table.columns())
                     if table.cellAt(r, c).row() == r and table.cellAt(r, c).column() == c])
    return rows


def _empty(cell: Any) -> bool:
    return cell.firstCursorPosition().position() == cell.lastCursorPosition().position()


def _extent(layout: Any, cells: list[Any]) -> tuple[float, float] | None:
    """Top of the row's first lines and bottom of its last, in document coordinates."""
    tops, bottoms = [], []
    if all(_empty(cell) for cell in cells):
        return None  # a spacer
    for cell in cells:
        first = layout.blockBoundingRect(cell.firstCursorPosition().block())
        last = layout.blockBoundingRect(cell.lastCursorPosition().block())
        if first.height() <= 0 and last.height() <= 0:
            continue
        tops.append(first.top())
        bottoms.append(last.bottom())
    return (min(tops), max(bottoms)) if tops else None


def _first_line_height(cells: list[Any]) -> float:
    heights = [cell.firstCursorPosition().block().layout().lineAt(0).height()
               for cell in cells if cell.firstCursorPosition().block().layout().lineCount()]
    return max(heights) if heights else 12.0


def _tables(doc: Any) -> list[Any]:
    from PySide6.QtGui import QTextTable

    return [f for f in doc.rootFrame().childFrames() if isinstance(f, QTextTable)]


def first_split_row(doc: Any, page_height: float,
                    skip: frozenset[tuple[int, int]] = frozenset()
                    ) -> tuple[int, Any, int, float] | None:
    """``(table index, table, row, page bottom)`` of the first table row whose lines fall on
    two pages, or None. Header rows (Qt repeats them), empty rows (our spacers) and the
    ``(table index, row)`` pairs in ``skip`` are not checked."""
    layout = doc.documentLayout()
    bottom_margin = doc.rootFrame().frameFormat().bottomMargin()
    for t, table in enumerate(_tables(doc)):
        header = table.format().headerRowCount()
        for r, cells in enumerate(_rows(table)):
            if r < header or (t, r) in skip:
                continue
            ext = _extent(layout, cells)
            if ext is None:
                continue
            top, bottom = ext
            page = int(top // page_height)
            if int((bottom - 0.5) // page_height) != page:
                return t, table, r, (page + 1) * page_height - bottom_margin
    return None


def _insert_spacer(table: Any, row: int) -> None:
    """An empty, borderless, unpadded row before ``row``."""
    from PySide6.QtGui import QTextTableCellFormat

    table.insertRows(row, 1)
    for c in range(table.columns()):
        cell = table.cellAt(row, c)
        if cell.row() == row:
            fmt = QTextTableCellFormat()
            fmt.setPadding(0)
            cell.setFormat(fmt)


def _insert_spacer_margin(table: Any, row: int, margin: float) -> None:
    """The spacer's height above its empty line, as cell padding (Qt ignores the top
    margin of a cell's first block)."""
    from PySide6.QtGui import QTextTableCellFormat

    for c in range(table.columns()):
        cell = table.cellAt(row, c)
        if cell.row() == row:
            fmt = QTextTableCellFormat()
            fmt.setPadding(0)
            fmt.setTopPadding(max(0.0, margin))
            cell.setFormat(fmt)


def _spacer_line(table: Any, row: int) -> float:
    block = table.cellAt(row, 0).firstCursorPosition().block()
    layout = block.layout()
    return layout.lineAt(0).height() if layout.lineCount() else 0.0


def keep_rows_together(doc: Any, page_height: float) -> int:
    """Push every table row that straddles a page to the next page; returns the number of
    spacers inserted. A row taller than a page is left to split (nothing else is possible)."""
    layout = doc.documentLayout()
    n = 0
    spacer_line: float | None = None
    skip: set[tuple[int, int]] = set()
    last: tuple[int, int, int] | None = None  # (table, row, page) of the last row moved
    for _ in range(MAX_ROUNDS):
        hit = first_split_row(doc, page_height, frozenset(skip))
        if hit is None:
            return n
        t, table, row, page_bottom = hit
        cells = _rows(table)[row]
        top, bottom = _extent(layout, cells) or (0.0, 0.0)
        page = int(top // page_height)
        if bottom - top >= page_height * 0.9 or last == (t, row - 1, page):
            # taller than a page, or the spacer did not move it: it splits (nothing else
            # is possible); the rows after it are still checked
            log.info("table %d row %d could not be kept on one page", t, row)
            skip.add((t, row))
            continue
        last = (t, row, page)
        # The spacer takes the row's place: its line must fit on this page (or Qt carries it
        # to the next, a gap under the header there) and leave less room than the row's
        # first line needs, so that Qt moves the row whole. Half a line of slack each way.
        fmt = cells[0].format().toTableCellFormat()
        pad = max(fmt.topPadding(), table.format().cellPadding(), 0.0)
        room = page_bottom - (top - pad) - _first_line_height(cells) / 2
        _insert_spacer(table, row)
        if spacer_line is None:
            spacer_line = _spacer_line(table, row)  # lays the document out again
        margin = room - spacer_line
        block = table.cellAt(row, 0).firstCursorPosition().block()
        for _try in range(6):  # the spacer's line must stay on this page: shrink until it does
            _insert_spacer_margin(table, row, margin)
            rect = layout.blockBoundingRect(block)  # the empty line, under the padding
            if int((rect.bottom() - 0.5) // page_height) == page or margin <= 0:
                break
            margin -= spacer_line
        n += 1
    return n


def print_document(doc: Any, writer: Any) -> int:
    """Lay ``doc`` out on ``writer``'s pages (rows kept together) and draw them; returns the
    number of pages."""
    from PySide6.QtCore import QRectF, QSizeF, Qt
    from PySide6.QtGui import QColor, QFont, QPainter

    layout = doc.documentLayout()
    layout.setPaintDevice(writer)
    dpi = writer.logicalDpiY()
    width, height = float(writer.width()), float(writer.height())
    footer = FOOTER_MM / 25.4 * dpi
    doc.setDocumentMargin(0)
    root = doc.rootFrame().frameFormat()
    root.setTopMargin(0)
    root.setBottomMargin(footer)
    root.setLeftMargin(0)
    root.setRightMargin(0)
    doc.rootFrame().setFrameFormat(root)
    doc.setPageSize(QSizeF(width, height))
    spacers = keep_rows_together(doc, height)
    if spacers:
        log.debug("%d table rows moved to the next page whole", spacers)
    pages = max(1, doc.pageCount())
    painter = QPainter(writer)
    try:
        font = QFont(doc.defaultFont())
        font.setPointSizeF(7)
        for page in range(pages):
            if page:
                writer.newPage()
            painter.save()
            painter.setClipRect(QRectF(0, 0, width, height - footer))
            painter.translate(0, -page * height)
            doc.drawContents(painter, QRectF(0, page * height, width, height - footer))
            painter.restore()
            painter.setFont(font)
            painter.setPen(QColor("#555555"))
            painter.drawText(QRectF(0, height - footer, width, footer),
                             int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom),
                             f"page {page + 1} of {pages}")
    finally:
        painter.end()
    return pages
