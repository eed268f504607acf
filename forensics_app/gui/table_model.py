"""The results table: a ``QAbstractTableModel`` over core ``ScanResult`` records.

Columns are declared once (:class:`Column` plus the :data:`COLUMNS` table); display text,
sort keys and tooltips all come from there. Views, exports and clipboard copies read the
records (:meth:`ResultsTableModel.record`), never cell text. The threshold and inconclusive
band live here: changing them re-judges every record through the core's ``with_threshold``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPalette
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from forensics_app.core.metadata_disagreement import metadata_disagreement
from forensics_app.core.results import ScanResult, Verdict
from forensics_app.core.review import Review, ReviewStatus, disagrees
from forensics_app.core.safetext import escape_text, isolate
from forensics_app.gui.plain_text import plain_tooltip
from forensics_app.gui.records import ScanSettings

RecordRole = Qt.ItemDataRole.UserRole + 1  # the ScanResult of the row
ProbRole = Qt.ItemDataRole.UserRole + 2  # P(generated) as float, or None

DISAGREE_COLOUR = "#fff0c2"  # metadata and detector point opposite ways
_LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
_CENTER = Qt.AlignmentFlag.AlignCenter

# (background, text) per verdict: soft fills, dark text, readable on light themes.
VERDICT_COLOURS: dict[Verdict, tuple[str, str]] = {
    Verdict.AI_GENERATED: ("#fbe3e1", "#a3261b"),
    Verdict.REAL: ("#e3f2e5", "#1e6b2b"),
    Verdict.INCONCLUSIVE: ("#fdf1d6", "#7a5600"),
    Verdict.ERROR: ("#ececec", "#555555"),
}
BAR_COLOURS: dict[Verdict, str] = {
    Verdict.AI_GENERATED: "#d9534f",
    Verdict.REAL: "#4caf50",
    Verdict.INCONCLUSIVE: "#e0a526",
    Verdict.ERROR: "#9e9e9e",
}


class Column(IntEnum):
    THUMBNAIL = 0
    FILE = 1
    VERDICT = 2
    PROB = 3
    DIMENSIONS = 4
    FORMAT = 5
    SIZE = 6
    SHA256 = 7
    TIME = 8
    PROVENANCE = 9
    ERROR = 10
    TRACE = 11  # each detector branch's own score (multi-branch detectors; else empty)
    SEMANTIC = 12
    # later columns (the view shows REVIEW beside P(generated); the header menu hides any)
    REVIEW = 13
    COPIES = 14
    FOLDER = 15


def is_triage(r: ScanResult) -> bool:
    """Scored in triage mode (a seeded sample of tiles, core.preprocess.sample_mode_name)."""
    return r.preprocessing.startswith("sample")


def _none_last(value: Any) -> tuple[int, Any]:
    return (1, 0) if value is None else (0, value)


def _prob_tip(r: ScanResult) -> str | None:
    """Which branch scores the fused P(generated) came from, and the trace's tiles."""
    parts = []
    if r.branch_probs:
        parts.append("fused from " + ", ".join(f"{k} {v:.3f}" for k, v in r.branch_probs.items()))
    if r.tile_probs:
        parts.append(f"trace: mean of {len(r.tile_probs)} tile scores")
    return "; ".join(parts) or None


def _branch_spec(key: str, title: str, what: str) -> ColumnSpec:
    return ColumnSpec(
        title, lambda r: f"{r.branch_probs[key]:.3f}" if key in r.branch_probs else "",
        lambda r: _none_last(r.branch_probs.get(key)), align=_RIGHT, width=80,
        header_tip=f"The {key} branch's own score (0.5 = its own threshold): {what}. "
                   "P(generated) is the fusion of the branches.")


def human_size(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def _dimensions(r: ScanResult) -> str:
    return f"{r.width} × {r.height}" if r.width and r.height else ""


def _problem(r: ScanResult) -> str:
    return r.error or "; ".join(r.notes)


def _notes_tip(r: ScanResult) -> str:
    """H2: why the detector said what it said, when it says (an Inconclusive reason)."""
    notes = [n for n in (r.caveat_note, *r.notes) if n]  # the detector's own reason first
    if not notes:
        return ""
    head = "Why Inconclusive" if r.verdict is Verdict.INCONCLUSIVE else "Detector notes"
    return f"\n{head}: " + "; ".join(escape_text(n) for n in notes)


def _provenance(r: ScanResult) -> str:
    return r.provenance.summary if r.provenance is not None else ""


def _provenance_tip(r: ScanResult) -> str | None:
    if r.provenance is None:
        return None
    clash = metadata_disagreement(r.provenance, r.verdict)
    tip = f"{r.provenance.summary}\nmetadata declares generated: {r.provenance.declared_text}"
    return tip + (f"\n⚠ {clash}" if clash else "")


# sort: declared generated first, then declared not generated, then unknown / not read
_DECLARED_ORDER = {True: 0, False: 1, None: 2}


@dataclass(frozen=True)
class ColumnSpec:
    title: str
    text: Callable[[ScanResult], str]
    sort_key: Callable[[ScanResult], Any]
    tooltip: Callable[[ScanResult], str | None] = lambda r: None
    align: Qt.AlignmentFlag = _LEFT
    width: int = 100
    header_tip: str = ""


COLUMNS: dict[Column, ColumnSpec] = {
    Column.THUMBNAIL: ColumnSpec("", lambda r: "", lambda r: r.index, width=46,
                                 header_tip="Preview"),
    # Names are shown escaped (control/bidi characters visible) and isolated (core.safetext).
    Column.FILE: ColumnSpec("File", lambda r: isolate(escape_text(r.file_name)),
                            lambda r: r.file_name.casefold(),
                            tooltip=lambda r: isolate(escape_text(r.path)), width=240),
    Column.VERDICT: ColumnSpec("Verdict",
                               lambda r: r.verdict.value + (" · triage" if is_triage(r) else ""),
                               lambda r: list(Verdict).index(r.verdict), align=_CENTER, width=124,
                               tooltip=lambda r: (f"threshold {r.threshold:.2f}, inconclusive "
                                                  f"band ±{r.inconclusive_band:.2f}"
                                                  + (f"\nTRIAGE verdict ({r.preprocessing}): a "
                                                     "sample of tiles was scored; re-scan in "
                                                     "full before relying on it"
                                                     if is_triage(r) else "")
                                                  + _notes_tip(r))),
    Column.PROB: ColumnSpec("P(generated)",
                            lambda r: "" if r.prob_fake is None else f"{r.prob_fake:.3f}",
                            lambda r: _none_last(r.prob_fake), width=140,
                            tooltip=_prob_tip,
                            header_tip="The detector's score P(generated), 0–1: an operating "
                                       "scale, not a calibrated probability (see the model card)"),
    Column.DIMENSIONS: ColumnSpec("Dimensions", _dimensions,
                                  lambda r: _none_last((r.width or 0) * (r.height or 0) or None),
                                  align=_RIGHT, width=88),
    Column.FORMAT: ColumnSpec("Format", lambda r: r.format or "", lambda r: r.format or "",
                              tooltip=lambda r: f"mode {r.mode}" if r.mode else None, width=60),
    Column.SIZE: ColumnSpec("Size", lambda r: human_size(r.bytes), lambda r: _none_last(r.bytes),
                            align=_RIGHT, width=70),
    Column.SHA256: ColumnSpec("SHA-256", lambda r: f"{r.sha256[:12]}…" if r.sha256 else "",
                              lambda r: r.sha256 or "", tooltip=lambda r: r.sha256, width=108,
                              header_tip="SHA-256 of the file's bytes (hover for the full hash)"),
    Column.TIME: ColumnSpec("Scan time", lambda r: f"{r.elapsed_ms:.0f} ms",
                            lambda r: r.elapsed_ms, align=_RIGHT, width=74),
    Column.PROVENANCE: ColumnSpec(
        "Provenance", _provenance,
        lambda r: (_DECLARED_ORDER[r.provenance.declared_generated] if r.provenance else 3,
                   _provenance(r).casefold()),
        tooltip=_provenance_tip, width=220,
        header_tip="What the file's own metadata says (C2PA, IPTC/XMP, EXIF, generator text); "
                   "highlighted when it disagrees with the detector"),
    Column.ERROR: ColumnSpec("Error / notes", _problem, _problem, tooltip=lambda r: _problem(r) or None,
                             width=140),
    Column.TRACE: _branch_spec("trace", "Trace", "the CNN on full-resolution pixels "
                               "(generator up-sampling traces; Grad-CAM explains it)"),
    Column.SEMANTIC: _branch_spec("semantic", "Semantic", "frozen CLIP ViT-B/16 on the centre "
                                  "224² crop (what the picture looks like)"),
    # text/sort of these three come from the model (they need the reviews and the copies)
    Column.REVIEW: ColumnSpec("Examiner", lambda r: "", lambda r: 0, width=190,
                              header_tip="The examiner's own conclusion (stored and audited in "
                                         "the case); double-click to change it"),
    Column.COPIES: ColumnSpec("Copies", lambda r: "", lambda r: 0, align=_RIGHT, width=56,
                              header_tip="Files in this table with the same SHA-256"),
    Column.FOLDER: ColumnSpec("Folder", lambda r: isolate(escape_text(str(Path(r.path).parent))),
                              lambda r: str(Path(r.path).parent).casefold(),
                              tooltip=lambda r: isolate(escape_text(str(Path(r.path).parent))),
                              width=200),
}
REVIEW_COLOURS: dict[ReviewStatus, str] = {
    ReviewStatus.UNREVIEWED: "#777777", ReviewStatus.CONFIRMED_GENERATED: "#a3261b",
    ReviewStatus.CONFIRMED_REAL: "#1e6b2b", ReviewStatus.NEEDS_SECOND_OPINION: "#7a5600",
}


def review_text(review: Review | None) -> str:
    if review is None:
        return ""
    bits = [] if review.status is ReviewStatus.UNREVIEWED else [review.status.label]
    if review.bookmarked:
        bits.insert(0, "★")
    if review.tags:
        bits.append("#" + " #".join(review.tags))
    if review.note and not review.reviewed:
        bits.append("(note)")
    return " ".join(bits)


def review_tip(review: Review | None) -> str | None:
    if review is None or not review.marked:
        return None
    lines = [review.status.label]
    if review.bookmarked:
        lines.append("bookmarked")
    if review.tags:
        lines.append("tags: " + ", ".join(review.tags))
    if review.note:
        lines.append("note: " + (review.note if len(review.note) < 400
                                 else review.note[:399] + "…"))
    if review.examiner:
        lines.append(f"by {review.examiner}, {review.updated_utc[:19]} UTC")
    return "\n".join(lines)


class ResultsTableModel(QAbstractTableModel):
    """Rows in scan order; each row is a ScanResult plus the settings it was scanned with."""

    counts_changed = Signal()
    review_requested = Signal(int, str)  # source row, ReviewStatus value (edited in the table)

    def __init__(self, parent: QObject | None = None, threshold: float = 0.5, band: float = 0.05):
        super().__init__(parent)
        self._records: list[ScanResult] = []
        self._settings: list[ScanSettings] = []
        self._row_of_path: dict[str, int] = {}
        self._counts: Counter[Verdict] = Counter()
        self.threshold, self.band = threshold, band
        self.thumbnails = None  # a ThumbnailCache, set by the window
        self._bold = QFont()
        self._bold.setBold(True)
        self._colours = {v: (QBrush(QColor(bg)), QBrush(QColor(fg)))
                         for v, (bg, fg) in VERDICT_COLOURS.items()}
        self._disagree = QBrush(QColor(DISAGREE_COLOUR))
        # The case's reviews (gui.review_panel sets it when a case is open; None: no case)
        self.review_of: Callable[[ScanResult], Review | None] | None = None
        self._copies: Counter[str] = Counter()  # SHA-256 -> rows holding those bytes
        self._review_brushes = {s: QBrush(QColor(c)) for s, c in REVIEW_COLOURS.items()}

    # -- Qt model interface
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._records)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        spec = COLUMNS[Column(section)]
        if role == Qt.ItemDataRole.DisplayRole:
            return spec.title
        if role == Qt.ItemDataRole.ToolTipRole:
            return spec.header_tip or None
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._records):
            return None
        r = self._records[index.row()]
        col = Column(index.column())
        spec = COLUMNS[col]
        if role == Qt.ItemDataRole.ToolTipRole:  # M4: evidence text never as markup
            return plain_tooltip(self._tooltip(r, col))
        if col is Column.REVIEW:
            return self._review_data(r, role)
        if col is Column.COPIES:
            n = self._copies.get(r.sha256 or "", 0)
            if role == Qt.ItemDataRole.DisplayRole:
                return f"×{n}" if n > 1 else ""
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int(spec.align)
        if role == Qt.ItemDataRole.DisplayRole:
            return spec.text(r)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(spec.align)
        if role == RecordRole:
            return r
        if role == ProbRole:
            return r.prob_fake
        if col is Column.VERDICT:
            if role == Qt.ItemDataRole.BackgroundRole:
                return self._colours[r.verdict][0]
            if role == Qt.ItemDataRole.ForegroundRole:
                return self._colours[r.verdict][1]
            if role == Qt.ItemDataRole.FontRole:
                return self._bold
        if (col is Column.PROVENANCE and role == Qt.ItemDataRole.BackgroundRole
                and r.provenance is not None and metadata_disagreement(r.provenance, r.verdict)):
            return self._disagree
        if (col is Column.PROVENANCE and role == Qt.ItemDataRole.ForegroundRole
                and r.provenance is not None and r.provenance.declared_generated):
            return self._colours[Verdict.AI_GENERATED][1]
        if col is Column.ERROR and role == Qt.ItemDataRole.ForegroundRole and r.error:
            return self._colours[Verdict.AI_GENERATED][1]
        if (col is Column.THUMBNAIL and role == Qt.ItemDataRole.DecorationRole
                and self.thumbnails is not None and r.ok):
            return self.thumbnails.pixmap(r.path)
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = (Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                 | Qt.ItemFlag.ItemNeverHasChildren)
        if index.column() == Column.REVIEW and self.review_of is not None:
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def setData(self, index: QModelIndex | QPersistentModelIndex, value: Any,
                role: int = Qt.ItemDataRole.EditRole) -> bool:
        """An edit of the Examiner cell asks for a review change (the case records it and
        :meth:`reviews_changed` repaints); the model itself stores nothing."""
        if (role != Qt.ItemDataRole.EditRole or not index.isValid()
                or index.column() != Column.REVIEW or self.review_of is None):
            return False
        try:
            status = ReviewStatus(value)
        except ValueError:
            return False
        self.review_requested.emit(index.row(), status.value)
        return True

    def _tooltip(self, r: ScanResult, col: Column) -> str | None:
        if col is Column.REVIEW:
            return self._review_data(r, Qt.ItemDataRole.ToolTipRole)
        if col is Column.COPIES:
            n = self._copies.get(r.sha256 or "", 0)
            return f"{n} files in this table have these bytes (SHA-256 {r.sha256})" \
                if n > 1 else None
        return COLUMNS[col].tooltip(r)

    def _review_data(self, r: ScanResult, role: int) -> Any:
        review = self.review_of(r) if self.review_of is not None else None
        if role == Qt.ItemDataRole.DisplayRole:
            return review_text(review)
        if role == Qt.ItemDataRole.EditRole:
            return (review.status if review is not None else ReviewStatus.UNREVIEWED).value
        if role == Qt.ItemDataRole.ToolTipRole:
            if self.review_of is None:
                return "Open or create a case to record the examiner's conclusions"
            tip = review_tip(review)
            if tip and disagrees(r.verdict, review):
                tip += "\n⚠ contradicts the detector's verdict"
            return tip
        if role == Qt.ItemDataRole.ForegroundRole and review is not None:
            return self._review_brushes[review.status]
        if role == Qt.ItemDataRole.BackgroundRole and disagrees(r.verdict, review):
            return self._disagree
        if role == Qt.ItemDataRole.FontRole and review is not None and review.reviewed:
            return self._bold
        if role == RecordRole:
            return r
        return None

    def review_sort_key(self, r: ScanResult) -> tuple:
        review = self.review_of(r) if self.review_of is not None else None
        if review is None:
            return (len(ReviewStatus), 1, "")
        return (list(ReviewStatus).index(review.status) if review.reviewed else len(ReviewStatus),
                0 if review.bookmarked else 1, review_text(review).casefold())

    def copies_of(self, r: ScanResult) -> int:
        return self._copies.get(r.sha256 or "", 0) if r.sha256 else 0

    def rows_with_sha(self, sha256: str) -> list[int]:
        return [i for i, r in enumerate(self._records) if sha256 and r.sha256 == sha256]

    def reviews_changed(self, paths: Iterable[str] | None = None) -> None:
        """Repaint the Examiner cells (of ``paths``, or all) after the case recorded a change."""
        if not self._records:
            return
        rows = (range(len(self._records)) if paths is None else
                [row for p in paths if (row := self._row_of_path.get(p)) is not None])
        for row in rows:
            idx = self.index(row, Column.REVIEW)
            self.dataChanged.emit(idx, idx)
        self.counts_changed.emit()

    # -- records
    def record(self, row: int) -> ScanResult:
        return self._records[row]

    def settings_for(self, row: int) -> ScanSettings:
        return self._settings[row]

    def records(self) -> list[ScanResult]:
        """All rows in the order they were scanned, judged at the current threshold."""
        return list(self._records)

    def row_of_path(self, path: str) -> int | None:
        return self._row_of_path.get(path)

    def counts(self) -> Counter[Verdict]:
        return Counter(self._counts)

    def add_results(self, results: Sequence[ScanResult], settings: ScanSettings) -> None:
        fresh = [self._judged(r) for r in results]
        if not fresh:
            return
        first = len(self._records)
        self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
        for i, r in enumerate(fresh):
            self._row_of_path[r.path] = first + i
            self._counts[r.verdict] += 1
            if r.sha256:
                self._copies[r.sha256] += 1
        self._records.extend(fresh)
        self._settings.extend([settings] * len(fresh))
        self.endInsertRows()
        if any(self._copies[r.sha256] > 1 for r in fresh if r.sha256):
            self.dataChanged.emit(self.index(0, Column.COPIES),
                                  self.index(len(self._records) - 1, Column.COPIES))
        self.counts_changed.emit()

    def remove_rows(self, rows: Iterable[int]) -> list[ScanResult]:
        """Remove rows (source-model numbers); returns the removed records."""
        removed = []
        for row in sorted(set(rows), reverse=True):
            self.beginRemoveRows(QModelIndex(), row, row)
            removed.append(self._records.pop(row))
            self._settings.pop(row)
            self.endRemoveRows()
        self._reindex()
        return removed

    def clear(self) -> list[ScanResult]:
        removed = self._records
        self.beginResetModel()
        self._records, self._settings = [], []
        self.endResetModel()
        self._reindex()
        return removed

    def set_threshold(self, threshold: float, band: float) -> None:
        """Re-judge every row live; the scores themselves do not change."""
        if (threshold, band) == (self.threshold, self.band):
            return
        self.threshold, self.band = threshold, band
        self._records = [self._judged(r) for r in self._records]
        self._counts = Counter(r.verdict for r in self._records)
        if self._records:
            self.dataChanged.emit(self.index(0, Column.VERDICT),  # REVIEW marks disagreement
                                  self.index(len(self._records) - 1, len(COLUMNS) - 1))
        self.counts_changed.emit()

    def thumbnail_ready(self, path: str) -> None:
        row = self._row_of_path.get(path)
        if row is not None:
            idx = self.index(row, Column.THUMBNAIL)
            self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])

    def _judged(self, r: ScanResult) -> ScanResult:
        if (r.threshold, r.inconclusive_band) == (self.threshold, self.band):
            return r
        return r.with_threshold(self.threshold, self.band)

    def _reindex(self) -> None:
        self._row_of_path = {r.path: i for i, r in enumerate(self._records)}
        self._counts = Counter(r.verdict for r in self._records)
        self._copies = Counter(r.sha256 for r in self._records if r.sha256)
        self.counts_changed.emit()


class ResultsFilterProxy(QSortFilterProxyModel):
    """Sort by each column's declared key; filter by verdict and by text."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._verdicts: frozenset[Verdict] | None = None
        self._text = ""
        self._provenance: str | None = None  # None | "declared" | "disagree"
        self._review: str | None = None  # None | a REVIEW_FILTERS key

    def set_review(self, which: str | None) -> None:
        """None: all rows; a ReviewStatus value, "bookmarked", "tagged", "marked" (anything
        recorded), "disagree" (examiner contradicts detector) or "duplicates"."""
        self._refilter("_review", which)

    def refilter_reviews(self) -> None:
        """A review changed: rows may now enter or leave a review filter."""
        if self._review is not None:
            self._refilter("_review", self._review)

    def set_verdicts(self, verdicts: Iterable[Verdict] | None) -> None:
        self._refilter("_verdicts", None if verdicts is None else frozenset(verdicts))

    def set_text(self, text: str) -> None:
        self._refilter("_text", text.strip().casefold())

    def set_provenance(self, which: str | None) -> None:
        """None: all rows; "declared": metadata declares generated; "disagree": metadata and
        detector point opposite ways."""
        self._refilter("_provenance", which)

    def _refilter(self, attr: str, value: Any) -> None:
        if not hasattr(self, "beginFilterChange"):  # Qt < 6.9
            setattr(self, attr, value)
            self.invalidateFilter()
            return
        self.beginFilterChange()
        setattr(self, attr, value)
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int,
                         source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        r = self.sourceModel().record(source_row)
        if self._verdicts is not None and r.verdict not in self._verdicts:
            return False
        if self._provenance == "declared" and not (
                r.provenance is not None and r.provenance.declared_generated):
            return False
        if self._provenance == "disagree" and metadata_disagreement(r.provenance, r.verdict) is None:
            return False
        model = self.sourceModel()
        review = model.review_of(r) if model.review_of is not None else None
        if self._review is not None and not _review_matches(self._review, r, review,
                                                            model.copies_of(r)):
            return False
        if self._text:
            hay = f"{r.path}\n{r.sha256 or ''}\n{r.error or ''}"
            if review is not None:
                hay += f"\n{review.note}\n{' '.join(review.tags)}"
            return self._text in hay.casefold()
        return True

    def lessThan(self, left: QModelIndex | QPersistentModelIndex,
                 right: QModelIndex | QPersistentModelIndex) -> bool:
        col = Column(left.column())
        spec = COLUMNS[col]
        model = self.sourceModel()
        a, b = model.record(left.row()), model.record(right.row())
        if col is Column.REVIEW:
            ka, kb = model.review_sort_key(a), model.review_sort_key(b)
        elif col is Column.COPIES:
            ka, kb = (-model.copies_of(a), a.sha256 or ""), (-model.copies_of(b), b.sha256 or "")
        else:
            ka, kb = spec.sort_key(a), spec.sort_key(b)
        return left.row() < right.row() if ka == kb else ka < kb

    def visible_records(self) -> list[ScanResult]:
        src = self.sourceModel()
        return [src.record(self.mapToSource(self.index(i, 0)).row()) for i in range(self.rowCount())]


REVIEW_FILTERS: list[tuple[str, str | None]] = [
    ("Any review", None),
    ("Unreviewed", ReviewStatus.UNREVIEWED.value),
    ("Confirmed generated", ReviewStatus.CONFIRMED_GENERATED.value),
    ("Confirmed real", ReviewStatus.CONFIRMED_REAL.value),
    ("Needs second opinion", ReviewStatus.NEEDS_SECOND_OPINION.value),
    ("Bookmarked", "bookmarked"),
    ("Tagged or noted", "tagged"),
    ("Examiner contradicts detector", "disagree"),
    ("Duplicates (same SHA-256)", "duplicates"),
]


def _review_matches(which: str, r: ScanResult, review: Review | None, copies: int) -> bool:
    if which == "duplicates":
        return copies > 1
    if which == "bookmarked":
        return review is not None and review.bookmarked
    if which == "tagged":
        return review is not None and bool(review.tags or review.note)
    if which == "marked":
        return review is not None and review.marked
    if which == "disagree":
        return disagrees(r.verdict, review)
    status = review.status if review is not None else ReviewStatus.UNREVIEWED
    return status.value == which


class ReviewStatusDelegate(QStyledItemDelegate):
    """The Examiner cell edited with a list of the four statuses."""

    def createEditor(self, parent, option, index):  # noqa: N802 -- Qt's name
        from PySide6.QtWidgets import QComboBox

        combo = QComboBox(parent)
        for status in ReviewStatus:
            combo.addItem(status.label, status.value)
        return combo

    def setEditorData(self, editor, index) -> None:  # noqa: N802
        editor.setCurrentIndex(max(0, editor.findData(index.data(Qt.ItemDataRole.EditRole))))
        editor.showPopup()

    def setModelData(self, editor, model, index) -> None:  # noqa: N802
        model.setData(index, editor.currentData(), Qt.ItemDataRole.EditRole)


class ProbabilityDelegate(QStyledItemDelegate):
    """P(generated) as a bar (coloured by verdict, with a threshold tick) and a number."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        style = opt.widget.style() if opt.widget else QApplication.style()
        opt.text = ""
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        record: ScanResult | None = index.data(RecordRole)
        if record is None or record.prob_fake is None:
            return
        rect = opt.rect.adjusted(6, 0, -6, 0)
        text_w = opt.fontMetrics.horizontalAdvance("0.000") + 8
        bar = QRect(rect.left(), rect.center().y() - 5, max(10, rect.width() - text_w), 10)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#e6e6e6"))
        painter.drawRoundedRect(bar, 3, 3)
        filled = QRect(bar)
        filled.setWidth(max(1, round(bar.width() * record.prob_fake)))
        painter.setBrush(QColor(BAR_COLOURS[record.verdict]))
        painter.drawRoundedRect(filled, 3, 3)
        tick_x = bar.left() + round(bar.width() * record.threshold)
        painter.setPen(QColor("#333333"))
        painter.drawLine(tick_x, bar.top() - 2, tick_x, bar.bottom() + 2)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        painter.setPen(opt.palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text))
        text_rect = QRect(bar.right() + 6, rect.top(), text_w, rect.height())
        painter.drawText(text_rect, int(_LEFT), f"{record.prob_fake:.3f}")
        painter.restore()
