"""Guard rails: nothing the analyst has not saved is thrown away by one key or one click.

* Esc cancels a running scan only from the results table or the queue, never from a text
  field, and asks first (D2); the menu entry asks too.
* Clear results asks before discarding rows that exist nowhere else (no case, not exported)
  (D7).
* Closing the window mid-scan asks; on "stop and close" the scan is cancelled and the window
  closes only when the worker has handed over every finished row, so the case stores them
  (or the unexported-results question offers them for export) (D14).

The question is one injectable callable, ``ask(title, text) -> bool``, so tests answer it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)


def is_text_input(widget: QWidget | None) -> bool:
    """A widget the analyst types into (Esc there means "stop typing", not "stop the scan")."""
    while widget is not None:
        if isinstance(widget, QLineEdit | QPlainTextEdit | QTextEdit | QAbstractSpinBox):
            return True
        if isinstance(widget, QComboBox) and widget.isEditable():
            return True
        widget = widget.parentWidget()
    return False


class GuardRails(QObject):
    def __init__(self, window: Any, ask: Callable[[str, str], bool] | None = None):
        super().__init__(window)
        self.window = window
        self.ask = ask or self._ask
        self.warn: Callable[[str, str], None] = self._warn  # (title, text); tests record it
        self.close_after_scan = False
        self.esc_shortcuts = []
        for view in (window.table, window.queue_view):
            sc = QShortcut(QKeySequence(Qt.Key.Key_Escape), view)
            sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.activated.connect(self.cancel_scan_from_key)
            self.esc_shortcuts.append(sc)
        window.queue.job_finished.connect(self._on_job_finished)

    # -- D2
    def cancel_scan_from_key(self) -> bool:
        if is_text_input(QApplication.focusWidget()):
            return False
        return self.cancel_scan()

    def cancel_scan(self) -> bool:
        """Ask, then cancel the running scan; True when it was asked to stop."""
        queue = self.window.queue
        if queue.running_thread is None:
            return False
        job = queue.current
        what = f"“{job.title}”" if job is not None else "the running scan"
        if not self.ask("Cancel the scan?", f"Stop scanning {what}? Files finished so far are "
                        "kept; scanning the same folder again later resumes."):
            return False
        queue.cancel_running()
        return True

    # -- D4
    def case_inside_evidence(self, paths) -> str | None:
        """Why ``paths`` cannot be scanned into the open case (it lies inside them), or None:
        the rule the CLI applies to ``--case`` (core.output_guard.evidence_conflict)."""
        from pathlib import Path

        from forensics_app.core.output_guard import evidence_conflict

        case = self.window.cases.case
        if case is None:
            return None
        conflict = evidence_conflict(case.folder, [Path(p) for p in paths])
        if conflict:
            return (f"The open case {case.folder} lies inside what you asked to scan "
                    f"({conflict}). Scan a folder that does not contain the case, or keep "
                    "the case elsewhere.")
        return None

    # -- D7
    def may_clear(self) -> bool:
        guard = self.window.close_guard
        n = guard.unexported
        if not n or guard.case_open():
            return True
        return self.ask("Discard results?", f"{n} result(s) have not been exported and no "
                        "case is open: clearing discards them. Clear anyway?")

    # -- D14
    def may_close_now(self) -> bool:
        """False while a scan runs: asks, then cancels it and closes once it has ended."""
        queue = self.window.queue
        if queue.running_thread is None:
            return True
        if self.close_after_scan:
            return False  # already stopping; the window closes when the scan has ended
        if not self.ask("A scan is running", "Stop the scan and close the window? Files "
                        "finished so far are kept (stored in the case, or offered for "
                        "export)."):
            return False
        self.close_after_scan = True
        queue.cancel_pending()
        queue.cancel_running()
        self.window._flash("Stopping the scan; the window closes when it has stopped…")
        return False

    def _on_job_finished(self, _job: Any) -> None:
        if self.close_after_scan and self.window.queue.running_thread is None:
            self.close_after_scan = False
            QTimer.singleShot(0, self.window, self.window.close)

    def _warn(self, title: str, text: str) -> None:
        self.window._flash(f"{title}: {text.splitlines()[0]}")
        if self.window.isVisible():
            QMessageBox.warning(self.window, title, text)

    def _ask(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self.window, title, text,
                                      QMessageBox.StandardButton.Yes
                                      | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes
