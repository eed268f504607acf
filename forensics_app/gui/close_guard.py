"""Closing the window with results that exist nowhere else asks first (Save / Discard / Cancel).

Results are "unexported" from the moment a scan delivers them until a report is written or they
are cleared. With a case open nothing is at risk -- rows are stored as they arrive -- so the
window closes without asking.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from PySide6.QtWidgets import QMessageBox, QWidget


class CloseChoice(Enum):
    SAVE = "save"
    DISCARD = "discard"
    CANCEL = "cancel"


def ask_with_message_box(parent: QWidget | None, unexported: int,
                         when: str = "the window closes") -> CloseChoice:
    box = QMessageBox(QMessageBox.Icon.Warning, "Unexported results",
                      f"{unexported} result(s) have not been exported and no case is open: "
                      f"they are lost when {when}.",
                      QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                      | QMessageBox.StandardButton.Cancel, parent)
    box.setInformativeText("Export a report first?")
    box.setDefaultButton(QMessageBox.StandardButton.Save)
    return {QMessageBox.StandardButton.Save: CloseChoice.SAVE,
            QMessageBox.StandardButton.Discard: CloseChoice.DISCARD}.get(
        QMessageBox.StandardButton(box.exec()), CloseChoice.CANCEL)


class CloseGuard:
    """Counts results not yet exported; :meth:`may_close` asks when some would be lost.

    ``ask(parent, n) -> CloseChoice`` is the question (tests inject an answer);
    ``save()`` runs the export dialog and is expected to call :meth:`exported` on success.
    """

    def __init__(self, parent: QWidget | None, save: Callable[[], None],
                 case_open: Callable[[], bool],
                 ask: Callable[[QWidget | None, int], CloseChoice] = ask_with_message_box):
        self.parent, self.save, self.case_open, self.ask = parent, save, case_open, ask
        self.unexported = 0

    def added(self, n: int) -> None:
        self.unexported += n

    def exported(self) -> None:
        self.unexported = 0

    cleared = exported

    def may_close(self) -> bool:
        return self.may_discard("the window closes")

    def may_discard(self, when: str) -> bool:
        """Save / Discard / Cancel before anything drops the table's rows (closing the
        window; New case, Open case, Recent cases -- M1). True: go ahead."""
        if not self.unexported or self.case_open():
            return True
        if self.ask is ask_with_message_box:
            choice = ask_with_message_box(self.parent, self.unexported, when)
        else:
            choice = self.ask(self.parent, self.unexported)
        if choice is CloseChoice.SAVE:
            self.save()
            return not self.unexported  # the save dialog was cancelled or failed: stay open
        return choice is CloseChoice.DISCARD
