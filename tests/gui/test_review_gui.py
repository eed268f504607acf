"""The examiner's conclusions in the window: shortcuts, table edits, copies, filter, reports."""

from __future__ import annotations

import csv
import shutil

from gui_helpers import ctrl_click, wait_idle
from PySide6.QtCore import Qt

from forensics_app.core.review import ACTION_REVIEW_CHANGED, ReviewBook, ReviewStatus
from forensics_app.gui.table_model import Column


def scanned_case(make_window, image_folder, tmp_path, qtbot):
    shutil.copy(next(iter(sorted(image_folder.glob("*.png")))), image_folder / "zz-copy.png")
    window = make_window()
    case = window.cases.new_case(tmp_path / "case")
    window.scan_paths([str(image_folder)])
    wait_idle(qtbot, window)
    assert window.results.rowCount() == 9
    return window, case


def row_of(window, name: str) -> int:
    return next(i for i, r in enumerate(window.results.records()) if r.file_name == name)


def test_shortcut_records_review_in_case_audit_and_csv(make_window, image_folder, tmp_path,
                                                       qtbot):
    window, case = scanned_case(make_window, image_folder, tmp_path, qtbot)
    copy_row = row_of(window, "zz-copy.png")
    sha = window.results.record(copy_row).sha256
    assert window.results.index(copy_row, Column.COPIES).data() == "×2"
    window.select_source_row(copy_row)
    window.table.setFocus()
    ctrl_click(qtbot, window.table, Qt.Key.Key_1)
    # Both copies (same SHA-256) are confirmed generated, each with its own audit entry.
    book = ReviewBook(case)
    got = {k: v.status for k, v in book.all().items()}
    assert len(got) == 2 and set(got.values()) == {ReviewStatus.CONFIRMED_GENERATED}
    assert {k[1] for k in got} == {sha}
    entries = [a for a in case.audit_entries() if a.action == ACTION_REVIEW_CHANGED]
    assert [e.params["new"]["status"] for e in entries] == ["confirmed-generated"] * 2
    assert window.results.index(copy_row, Column.REVIEW).data() == "Confirmed generated"
    # The panel shows it and its history; a note typed there reaches the case.
    panel = window.reviews.panel
    assert panel.status.currentData() == "confirmed-generated"
    assert "unreviewed → confirmed-generated" in panel.history.text()
    window.reviews.act_all_copies.setChecked(False)
    panel.note.setPlainText("same frame as exhibit 3")
    panel.save_note.click()
    assert ReviewBook(case).get(window.results.record(copy_row).path, sha).note == (
        "same frame as exhibit 3")
    assert len([a for a in case.audit_entries() if a.action == ACTION_REVIEW_CHANGED]) == 3
    assert case.verify().ok
    # The case report (CSV) carries it.
    out = window.cases.export_report(tmp_path / "report.csv")
    with open(out, encoding="utf-8", newline="") as fh:
        rows = {r["path"]: r for r in csv.DictReader(fh)}
    mine = rows[window.results.record(copy_row).path]
    assert mine["review_status"] == "confirmed-generated"
    assert mine["review_note"] == "same frame as exhibit 3"


def test_typing_in_the_filter_never_reviews_and_table_edit_does(make_window, image_folder,
                                                                tmp_path, qtbot):
    window, case = scanned_case(make_window, image_folder, tmp_path, qtbot)
    window.select_source_row(0)
    window.text_filter.setFocus()
    qtbot.keyClicks(window.text_filter, "g1")
    assert ReviewBook(case).all() == {}
    window.text_filter.clear()
    # An edit of the Examiner cell (what the combo delegate commits) goes to the case.
    idx = window.proxy.mapFromSource(window.results.index(2, Column.REVIEW))
    assert window.proxy.flags(idx) & Qt.ItemFlag.ItemIsEditable
    assert window.proxy.setData(idx, "needs-second-opinion", Qt.ItemDataRole.EditRole)
    r = window.results.record(2)
    assert ReviewBook(case).get(r.path, r.sha256).status is ReviewStatus.NEEDS_SECOND_OPINION


def test_next_unreviewed_and_review_filter(make_window, image_folder, tmp_path, qtbot):
    window, case = scanned_case(make_window, image_folder, tmp_path, qtbot)
    window.reviews.act_all_copies.setChecked(False)
    window.select_source_row(0)
    window.reviews.set_status(ReviewStatus.CONFIRMED_REAL)
    window.reviews.act_next.trigger()
    assert window.current_row() == 1
    window.reviews.set_status(ReviewStatus.CONFIRMED_GENERATED)
    window.reviews.toggle_bookmark()
    window.select_source_row(0)
    assert window.reviews.next_unreviewed() and window.current_row() == 2
    idx = window.review_filter.findData("unreviewed")
    window.review_filter.setCurrentIndex(idx)
    assert window.proxy.rowCount() == 7
    window.review_filter.setCurrentIndex(window.review_filter.findData("bookmarked"))
    assert [r.file_name for r in window.proxy.visible_records()] == [
        window.results.record(1).file_name]
    window.review_filter.setCurrentIndex(window.review_filter.findData("duplicates"))
    assert window.proxy.rowCount() == 2
    # Reopened, the reviews come back from the case.
    window.review_filter.setCurrentIndex(0)
    window.cases.close_case()
    assert window.results.review_of is None
    # D13: no details of a row that is gone
    assert window.provenance_panel.record is None and window.reviews.panel.record is None
    window.cases.open_case(tmp_path / "case")
    assert window.results.index(1, Column.REVIEW).data() == "★ Confirmed generated"


def test_without_a_case_nothing_is_recorded(make_window, image_folder, qtbot):
    window = make_window()
    window.scan_paths([str(image_folder)])
    wait_idle(qtbot, window)
    window.select_source_row(0)
    assert not window.reviews.status_actions[ReviewStatus.CONFIRMED_REAL].isEnabled()
    assert window.reviews.change(window.selected_records(),
                                 status=ReviewStatus.CONFIRMED_REAL) == []
    assert not window.results.flags(window.results.index(0, Column.REVIEW)) & \
        Qt.ItemFlag.ItemIsEditable
    assert window.reviews.panel.hint.isVisibleTo(window.reviews.panel)
