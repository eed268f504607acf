"""D23 New-case dialog, D4 no case inside the evidence (the CLI's rule), D26 start page."""

from __future__ import annotations

from pathlib import Path

from gui_helpers import wait_idle

from forensics_app.core.case import is_case_folder
from forensics_app.gui.case_dialog import (
    ACTION_CASE_DETAILS,
    CaseDetails,
    NewCaseDialog,
    create_case,
    default_cases_root,
    folder_name,
)
from forensics_app.gui.start_page import StartPage


def test_dialog_defaults_to_the_documents_folder_and_validates(qtbot, tmp_path, image_folder):
    dialog = NewCaseDialog(None, evidence=[image_folder], examiner="E. Ames")
    qtbot.addWidget(dialog)
    assert Path(dialog.folder.text()).parent == default_cases_root()
    assert dialog.problem_text() == "Enter a case number."
    dialog.number.setText("2026/0147 Harbour")
    assert Path(dialog.folder.text()).name == "2026_0147_Harbour" == folder_name(
        "2026/0147 Harbour")
    dialog.folder.setText(str(image_folder / "cases" / "x"))  # inside the evidence
    assert "inside the scanned folder" in dialog.problem_text()
    dialog.folder.setText(str(tmp_path / "cases" / "harbour"))
    assert dialog.problem_text() is None
    details = dialog.details()
    assert (details.case_number, details.examiner) == ("2026/0147 Harbour", "E. Ames")


def test_case_created_with_details_and_examiner_reviews_under_that_name(
        make_window, qtbot, tmp_path):
    window = make_window()
    details = CaseDetails("2026-0147", "E. Ames", "phone dump", tmp_path / "cases" / "c1")
    case = create_case(window, details)
    assert case is not None and is_case_folder(details.folder)
    entry = case.audit_entries()[-1]
    assert entry.action == ACTION_CASE_DETAILS and entry.params["examiner"] == "E. Ames"
    assert window.reviews.examiner == "E. Ames"


def test_scanning_a_folder_that_holds_the_open_case_is_refused(make_window, qtbot, tmp_path,
                                                                image_folder):
    window = make_window()
    warned: list[str] = []
    window.guards.warn = lambda title, text: warned.append(text)
    window.cases.new_case(image_folder / "case-inside")
    assert window.scan_paths([str(image_folder)]) is None
    assert window.queue.jobs == []
    assert len(warned) == 1 and "lies inside what you asked to scan" in warned[0]
    # a folder beside the case is fine
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.png").write_bytes((image_folder / sorted(p.name for p in image_folder.glob(
        "*.png"))[0]).read_bytes())
    assert window.scan_paths([str(other)]) is not None
    wait_idle(qtbot, window)


def test_start_page_lists_recent_cases_and_opens_one(make_window, qtbot, tmp_path):
    window = make_window()
    window.cases.new_case(tmp_path / "c1")
    window.cases.close_case()
    page = window.empty_hint
    assert isinstance(page, StartPage) and page.isVisibleTo(window)
    page.refresh()
    assert page.recent_list.count() == 1
    item = page.recent_list.item(0)
    page.recent_list.itemActivated.emit(item)
    assert window.cases.case is not None and window.cases.case.folder == tmp_path / "c1"
