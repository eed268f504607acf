"""Issue 11 item 18: closing with results that exist nowhere else asks first."""

from __future__ import annotations

from gui_helpers import wait_idle
from PySide6.QtWidgets import QFileDialog

from forensics_app.gui.close_guard import CloseChoice, CloseGuard
from helpers import make_images


def test_close_with_unexported_results_asks_and_cancel_keeps_the_window(
        make_window, qtbot, tmp_path, monkeypatch):
    window = make_window()
    asked: list[int] = []
    answer = [CloseChoice.CANCEL]
    window.close_guard.ask = lambda _parent, n: (asked.append(n), answer[0])[1]
    assert window.close_guard.may_close() and not asked  # nothing scanned: no question
    window.scan_paths(make_images(tmp_path / "imgs", 2))
    wait_idle(qtbot, window)
    assert window.results.rowCount() == 2

    assert not window.close()  # Cancel: the window stays open, the rows stay
    assert asked == [2] and window.isVisible() and window.results.rowCount() == 2

    # Save, but the save dialog is cancelled: still open
    answer[0] = CloseChoice.SAVE
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: ("", ""))
    assert not window.close()
    assert window.isVisible()

    # Save to a file: the report is written and the window closes
    report = tmp_path / "out" / "report.csv"
    report.parent.mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(report), ""))
    assert window.close()
    assert report.is_file() and len(report.read_text().splitlines()) >= 3


def test_export_clears_and_new_results_set_the_question_again(make_window, qtbot, tmp_path):
    window = make_window()
    asked: list[int] = []
    window.close_guard.ask = lambda _parent, n: (asked.append(n), CloseChoice.CANCEL)[1]
    window.scan_paths(make_images(tmp_path / "a", 1))
    wait_idle(qtbot, window)
    window.export_report(tmp_path / "r.jsonl")
    assert window.close_guard.may_close() and not asked
    window.scan_paths(make_images(tmp_path / "b", 1, seed=5))
    wait_idle(qtbot, window)
    assert not window.close_guard.may_close() and asked == [1]
    window.clear_results()
    assert window.close_guard.may_close()


def test_open_case_means_no_question_and_discard_closes(qapp):
    asked: list[int] = []
    case_open = [True]
    guard = CloseGuard(None, save=lambda: None, case_open=lambda: case_open[0],
                       ask=lambda _p, n: (asked.append(n), CloseChoice.DISCARD)[1])
    guard.added(3)
    assert guard.may_close() and not asked  # stored in the case already
    case_open[0] = False
    assert guard.may_close() and asked == [3]  # Discard: close anyway
