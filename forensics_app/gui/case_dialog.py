"""New case (D23): case number, examiner and description, created in the documents folder.

The case folder defaults to ``<Documents>/Forensics cases/<case number>``; the dialog refuses
a folder inside the evidence being scanned (D4) with the same rule the CLI applies to
``--case`` (:func:`forensics_app.core.output_guard.evidence_conflict`). The details are one
entry in the case's audit log, so they are part of what ``--verify`` checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from forensics_app.core.case_details import ACTION_CASE_DETAILS
from forensics_app.core.output_guard import evidence_conflict


@dataclass(frozen=True)
class CaseDetails:
    case_number: str
    examiner: str
    description: str
    folder: Path

    def audit_params(self) -> dict[str, str]:
        return {"case_number": self.case_number, "examiner": self.examiner,
                "description": self.description}


def default_cases_root() -> Path:
    docs = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return Path(docs or Path.home()) / "Forensics cases"


def folder_name(case_number: str) -> str:
    """A folder name from a case number: letters, digits, dot, dash, underscore."""
    name = re.sub(r"[^\w.\-]+", "_", case_number.strip()).strip("._")
    return name[:80] or "case"


def case_folder_problem(folder: Path, evidence: Iterable[str | Path]) -> str | None:
    """Why a case cannot be created at ``folder`` (None: it can)."""
    conflict = evidence_conflict(folder, [Path(p) for p in evidence])
    if conflict:
        return f"{conflict}: a case must live outside the evidence it describes"
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        return f"{folder} already exists and is not empty; choose another case number or folder"
    return None


class NewCaseDialog(QDialog):
    def __init__(self, parent: QWidget | None, evidence: Iterable[str | Path] = (),
                 examiner: str = "", root: Path | None = None):
        super().__init__(parent)
        self.setWindowTitle("New case")
        self.evidence = [str(p) for p in evidence]
        self.root = root or default_cases_root()
        self.number = QLineEdit()
        self.number.setPlaceholderText("e.g. 2026-0147")
        self.examiner = QLineEdit(examiner)
        self.description = QPlainTextEdit()
        self.description.setTabChangesFocus(True)
        self.description.setPlaceholderText("What the case is about (optional)")
        self.description.setMaximumHeight(90)
        self.folder = QLineEdit()
        self.folder.setMinimumWidth(360)
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #a3261b;")
        form = QFormLayout()
        form.addRow("Case number", self.number)
        form.addRow("Examiner", self.examiner)
        form.addRow("Description", self.description)
        form.addRow("Case folder", row)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Create case")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        self._folder_edited = False
        self.number.textChanged.connect(self._number_changed)
        self.folder.textEdited.connect(lambda _t: setattr(self, "_folder_edited", True))
        self.folder.textChanged.connect(lambda _t: self._validate())
        self.examiner.textChanged.connect(lambda _t: self._validate())
        self._number_changed("")

    def _number_changed(self, text: str) -> None:
        if not self._folder_edited:
            self.folder.setText(str(self.root / folder_name(text or "new-case")))
        self._validate()

    def _browse(self) -> None:
        start = self.folder.text() or str(self.root)
        parent = QFileDialog.getExistingDirectory(self, "Create the case in…",
                                                  str(Path(start).parent))
        if parent:
            self._folder_edited = True
            self.folder.setText(str(Path(parent) / folder_name(self.number.text() or "case")))

    def problem_text(self) -> str | None:
        if not self.number.text().strip():
            return "Enter a case number."
        if not self.examiner.text().strip():
            return "Enter the examiner's name."
        if not self.folder.text().strip():
            return "Choose a folder for the case."
        return case_folder_problem(Path(self.folder.text().strip()), self.evidence)

    def _validate(self) -> None:
        problem = self.problem_text()
        self.problem.setText(problem or "")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(problem is None)

    def details(self) -> CaseDetails:
        return CaseDetails(self.number.text().strip(), self.examiner.text().strip(),
                           self.description.toPlainText().strip(),
                           Path(self.folder.text().strip()))


def case_examiner(case) -> str:
    """The examiner named when the case was created (latest "case details" entry), or ""."""
    for entry in reversed(case.audit_entries()):
        if entry.action == ACTION_CASE_DETAILS:
            return str(entry.params.get("examiner") or "")
    return ""


def evidence_sources(window) -> list[str]:
    """Everything the window scans or has scanned: a case may not live inside any of it."""
    sources = [s for job in window.queue.jobs for s in job.sources]
    return list(dict.fromkeys(sources))


def create_case(window, details: CaseDetails):
    """Create the case the dialog describes and record its details in the audit log."""
    problem = case_folder_problem(details.folder, evidence_sources(window))
    if problem:
        window.guards.warn("Case not created", problem)
        return None
    case = window.cases.new_case(details.folder)
    if case is not None:
        case.audit(ACTION_CASE_DETAILS, details.audit_params())
        window.reviews.examiner = details.examiner
    return case


def choose_new_case(window) -> None:
    """File → New case…"""
    from forensics_app.core.case import _os_user

    dialog = NewCaseDialog(window, evidence_sources(window), examiner=_os_user())
    if dialog.exec() == QDialog.DialogCode.Accepted:
        create_case(window, dialog.details())
