"""The examiner's conclusions in the window: a Review menu, keyboard shortcuts, a details panel.

Every change goes through :class:`forensics_app.core.review.ReviewBook`, so it lands in the
open case with its audit entry; the table model only asks the book what to paint. Without a
case nothing can be recorded (a review nobody can audit is not evidence), and the panel says
so. Shortcuts use Ctrl so that typing in the filter box never changes a review.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from forensics_app.core.case import Case, CaseError
from forensics_app.core.results import ScanResult
from forensics_app.core.review import (
    Review,
    ReviewBook,
    ReviewError,
    ReviewStatus,
    disagrees,
    review_key,
)
from forensics_app.core.safetext import escape_for_terminal
from forensics_app.gui.plain_text import plain_tooltip

log = logging.getLogger(__name__)

STATUS_SHORTCUTS: dict[ReviewStatus, str] = {
    ReviewStatus.CONFIRMED_GENERATED: "Ctrl+1",
    ReviewStatus.CONFIRMED_REAL: "Ctrl+2",
    ReviewStatus.NEEDS_SECOND_OPINION: "Ctrl+3",
    ReviewStatus.UNREVIEWED: "Ctrl+0",
}
NO_CASE_TEXT = ("Open or create a case (File → New case…) to record your conclusions: each "
                "change is stored in the case with an audit entry.")


def shown(text: str) -> str:
    """Evidence-controlled text (paths) made safe for a label: no control or bidi tricks."""
    return escape_for_terminal(text)


class ReviewController(QObject):
    """Owns the open case's :class:`ReviewBook`, the review actions and the panel."""

    reviews_changed = Signal()

    def __init__(self, window: Any):
        super().__init__(window)
        self.window = window
        self.book: ReviewBook | None = None
        self.examiner = ""  # the case's examiner (New case dialog); "": the OS user
        self._build_actions()
        self.panel = ReviewPanel(self)
        window.results.review_requested.connect(self._on_table_edit)
        window.cases.case_changed.connect(self.set_case)
        self.set_case(window.cases.case)

    # ------------------------------------------------------------------ actions
    def _build_actions(self) -> None:
        w = self.window
        self.status_actions: dict[ReviewStatus, QAction] = {}
        for status, keys in STATUS_SHORTCUTS.items():
            text = "Mark unreviewed" if status is ReviewStatus.UNREVIEWED else status.label
            a = QAction(text, w)
            a.setShortcut(QKeySequence(keys))
            a.setStatusTip(f"Record “{status.label}” for the selected file(s) in the case")
            a.triggered.connect(lambda _c=False, s=status: self.set_status(s))
            self.status_actions[status] = a
        self.act_bookmark = QAction("Toggle bookmark", w)
        self.act_bookmark.setShortcut(QKeySequence("Ctrl+B"))
        self.act_bookmark.triggered.connect(self.toggle_bookmark)
        self.act_next = QAction("Next unreviewed", w)
        self.act_next.setShortcut(QKeySequence("Ctrl+J"))
        self.act_next.setStatusTip("Select the next row (in the table's order) nobody has "
                                   "reviewed yet")
        self.act_next.triggered.connect(self.next_unreviewed)
        self.act_all_copies = QAction("Apply to all copies (same SHA-256)", w, checkable=True)
        self.act_all_copies.setChecked(True)
        self.act_all_copies.setStatusTip("A review of one file also records it for every "
                                         "file in the case with the same bytes")
        bar = w.menuBar()
        help_menu = bar.actions()[-1] if bar.actions() else None
        self.menu = QMenu("&Review", w)
        bar.insertMenu(help_menu, self.menu)
        for a in (*self.status_actions.values(), self.act_bookmark, None, self.act_next,
                  None, self.act_all_copies):
            self.menu.addSeparator() if a is None else self.menu.addAction(a)
        for a in self.actions():
            w.addAction(a)  # shortcuts work while the menu is closed

    def actions(self) -> list[QAction]:
        return [*self.status_actions.values(), self.act_bookmark, self.act_next]

    # ------------------------------------------------------------------ case
    def set_case(self, case: Case | None) -> None:
        self.book = ReviewBook(case) if case is not None else None
        if case is not None:
            from forensics_app.gui.case_dialog import case_examiner

            self.examiner = case_examiner(case)
        results = self.window.results
        results.review_of = self.book.find if self.book is not None else None
        results.reviews_changed()
        self.window.proxy.refilter_reviews()
        for a in self.actions():
            a.setEnabled(self.book is not None)
        self.panel.show_record(self.window_record())

    def window_record(self) -> ScanResult | None:
        row = self.window.current_row() if self.window.results.rowCount() else None
        return None if row is None else self.window.results.record(row)

    # ------------------------------------------------------------------ changes
    def targets(self, records: list[ScanResult], all_copies: bool | None = None) -> list:
        """(path, SHA-256) keys of the records, and their copies when asked."""
        if all_copies is None:
            all_copies = self.act_all_copies.isChecked()
        keys = []
        for r in records:
            keys.append(review_key(r))
            if all_copies and r.sha256 and self.book is not None:
                keys.extend(self.book.copies(r.sha256))
        return list(dict.fromkeys(keys))

    def change(self, records: list[ScanResult], **changes: Any) -> list[Review]:
        """Record a change for ``records`` (and their copies); [] when nothing was recorded."""
        if self.book is None:
            self.window._flash(NO_CASE_TEXT)  # not modal: a shortcut pressed by habit
            return []
        if not records:
            return []
        try:
            changes.setdefault("examiner", self.examiner or None)
            out = self.book.set(self.targets(records), **changes)
        except (CaseError, ReviewError) as exc:
            self._warn("Review not recorded", str(exc))
            return []
        self.window.results.reviews_changed({rev.path for rev in out})
        self.window.proxy.refilter_reviews()
        self.panel.show_record(self.window_record())
        n = len(out)
        self.window._flash(f"Review recorded for {n} file(s) in the case" if n else
                           "Nothing to record")
        self.reviews_changed.emit()
        return out

    def set_status(self, status: ReviewStatus) -> list[Review]:
        return self.change(self.window.selected_records(), status=status)

    def toggle_bookmark(self) -> list[Review]:
        records = self.window.selected_records()
        if self.book is None or not records:
            return self.change(records)
        on = not all(self.book.get(r.path, r.sha256).bookmarked for r in records)
        return self.change(records, bookmarked=on)

    def _on_table_edit(self, row: int, status: str) -> None:
        self.change([self.window.results.record(row)], status=ReviewStatus(status))

    def next_unreviewed(self) -> bool:
        """Select the next unreviewed row after the current one (in view order, wrapping)."""
        proxy, results = self.window.proxy, self.window.results
        n = proxy.rowCount()
        if not n or self.book is None:
            return False
        current = self.window.table.currentIndex()
        start = current.row() + 1 if current.isValid() else 0
        for i in range(n):
            row = proxy.mapToSource(proxy.index((start + i) % n, 0)).row()
            if not self.book.get(results.record(row).path, results.record(row).sha256).reviewed:
                self.window.select_source_row(row)
                self.window.table.setFocus()
                return True
        self.window._flash("Every file shown has been reviewed")
        return False

    def _warn(self, title: str, text: str) -> None:
        log.warning("%s: %s", title, text)
        if self.window.isVisible():
            QMessageBox.warning(self.window, title, text)
        self.window._flash(f"{title}: {text.splitlines()[0]}")


class ReviewPanel(QWidget):
    """The selected file's review: status, bookmark, tags, note, copies and history."""

    def __init__(self, controller: ReviewController, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.record: ScanResult | None = None
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status = QComboBox()
        for status in ReviewStatus:
            self.status.addItem(status.label, status.value)
            self.status.setItemData(self.status.count() - 1, STATUS_SHORTCUTS[status],
                                    Qt.ItemDataRole.ToolTipRole)
        self.status.activated.connect(self._status_chosen)
        self.bookmark = QCheckBox("Bookmarked")
        self.bookmark.setToolTip("Ctrl+B")
        self.bookmark.clicked.connect(
            lambda on: self._apply(bookmarked=bool(on)))
        self.tags = QLineEdit()
        self.tags.setPlaceholderText("tags, comma-separated")
        self.tags.editingFinished.connect(self._tags_done)
        self.note = QPlainTextEdit()
        self.note.setPlaceholderText("Your note on this file (what you saw, what you checked)")
        self.note.setTabChangesFocus(True)  # Tab moves on; it does not type a tab
        self.note.setMinimumHeight(60)
        self.save_note = QPushButton("Save note")
        self.save_note.clicked.connect(self._note_done)
        self.copies = QCheckBox()
        self.copies.setToolTip("Record changes for every file with the same SHA-256")
        self.copies.toggled.connect(controller.act_all_copies.setChecked)
        controller.act_all_copies.toggled.connect(self.copies.setChecked)
        self.copies.setChecked(controller.act_all_copies.isChecked())
        self.disagree = QLabel()
        self.disagree.setWordWrap(True)
        self.disagree.setStyleSheet("background: #fff0c2; border: 1px solid #e0a526; "
                                    "border-radius: 3px; padding: 4px;")
        self.history = QLabel()
        self.history.setWordWrap(True)
        self.history.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.history.setStyleSheet("color: #555;")
        self.hint = QLabel(NO_CASE_TEXT)
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: #777;")
        self.next_button = QPushButton("Next unreviewed")
        self.next_button.setToolTip("Ctrl+J")
        self.next_button.clicked.connect(controller.next_unreviewed)

        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)  # fits a narrow dock
        form.addRow("Conclusion", self.status)
        form.addRow("", self.bookmark)
        form.addRow("Tags", self.tags)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.title)
        layout.addWidget(self.hint)
        layout.addLayout(form)
        layout.addWidget(QLabel("Note"))
        layout.addWidget(self.note, 1)
        row = QHBoxLayout()
        row.addWidget(self.save_note)
        row.addStretch(1)
        row.addWidget(self.next_button)
        layout.addLayout(row)
        layout.addWidget(self.copies)
        layout.addWidget(self.disagree)
        layout.addWidget(self.history)
        self.setMinimumWidth(200)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        self.show_record(None)

    def _editors(self) -> list[QWidget]:
        return [self.status, self.bookmark, self.tags, self.note, self.save_note, self.copies]

    def show_record(self, record: ScanResult | None) -> None:
        self.record = record
        book = self.controller.book
        self.hint.setVisible(book is None)
        enabled = book is not None and record is not None
        for w in self._editors():
            w.setEnabled(enabled)
        self.next_button.setEnabled(book is not None)
        self.disagree.hide()
        if record is None:
            self.title.setText("No file selected" if book is not None else "")
            self.note.setPlainText("")
            self.tags.setText("")
            self.history.setText("")
            self.copies.setText("Apply to all copies (same SHA-256)")
            return
        self.title.setText(f"<b>{_html(shown(record.file_name))}</b><br>detector: "
                           f"{_html(record.verdict.value)}")
        self.title.setToolTip(plain_tooltip(shown(record.path)))
        review = book.get(record.path, record.sha256) if book is not None else None
        status = review.status if review is not None else ReviewStatus.UNREVIEWED
        self.status.setCurrentIndex(self.status.findData(status.value))
        self.bookmark.setChecked(bool(review and review.bookmarked))
        self.tags.setText(", ".join(review.tags) if review else "")
        self.note.setPlainText(review.note if review else "")
        n = self.controller.window.results.copies_of(record)
        stored = len(book.copies(record.sha256)) if book is not None and record.sha256 else 0
        n = max(n, stored)
        self.copies.setText(f"Apply to all {n} copies (same SHA-256)" if n > 1 else
                            "Apply to all copies (none)")
        if review is not None and disagrees(record.verdict, review):
            self.disagree.setText(f"⚠ Your conclusion ({review.status.label}) contradicts "
                                  f"the detector ({record.verdict.value}); the report lists it.")
            self.disagree.show()
        if book is not None:
            lines = [f"#{h['seq']} {h['time_utc'][:19]} {h['examiner'] or h['os_user']}: "
                     f"{h['old']['status']} → {h['new']['status']}"
                     for h in book.history(record.path, record.sha256)[-5:]]
            self.history.setText("History (audit log):\n" + "\n".join(lines) if lines
                                 else "Not reviewed yet.")

    # -- edits
    def _apply(self, **changes: Any) -> None:
        if self.record is not None:
            self.controller.change([self.record], **changes)

    def _status_chosen(self, _index: int) -> None:
        self._apply(status=ReviewStatus(self.status.currentData()))

    def _tags_done(self) -> None:
        if self.record is None or self.controller.book is None:
            return
        tags = [t for t in self.tags.text().split(",") if t.strip()]
        current = self.controller.book.get(self.record.path, self.record.sha256).tags
        if tuple(sorted(t.strip() for t in tags)) != tuple(sorted(current)):
            self._apply(tags=tags)

    def _note_done(self) -> None:
        self._apply(note=self.note.toPlainText().strip())


def _html(text: str) -> str:
    import html

    return html.escape(text, quote=True)
