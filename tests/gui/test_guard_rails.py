"""Guard rails (issue 25): D2 Esc, D7 Clear results, D14 close mid-scan, D3/D25 model
fallback, D11 threshold origin, D6 window size, D12 keyboard."""

from __future__ import annotations

from gui_helpers import ctrl_click, wait_idle
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from forensics_app.core.case import Case
from forensics_app.gui.scan_queue import ScanQueue
from helpers import make_images


def recorder(answer: bool):
    asked: list[str] = []
    return asked, lambda title, _text: (asked.append(title), answer)[1]


def test_esc_never_cancels_from_a_text_field_and_asks_from_the_table(make_window, qtbot,
                                                                      monkeypatch):
    window = make_window()
    cancelled: list[bool] = []
    monkeypatch.setattr(ScanQueue, "running_thread", property(lambda self: object()))
    monkeypatch.setattr(window.queue, "cancel_running", lambda: cancelled.append(True))
    asked, window.guards.ask = recorder(False)
    window.text_filter.setFocus()
    qtbot.keyClicks(window.text_filter, "abc")
    qtbot.keyClick(window.text_filter, Qt.Key.Key_Escape)
    assert asked == [] and cancelled == []
    assert window.act_cancel.shortcut().isEmpty()  # no window-wide Esc any more
    assert window.guards.cancel_scan_from_key() is False  # focus is in a text field
    window.table.setVisible(True)
    window.table.setFocus()
    assert window.guards.cancel_scan_from_key() is False  # asked, and the answer was No
    assert asked == ["Cancel the scan?"] and cancelled == []
    window.guards.ask = recorder(True)[1]
    assert window.guards.cancel_scan_from_key() and cancelled == [True]


def test_clear_results_asks_before_discarding_unexported_rows(make_window, qtbot, tmp_path):
    window = make_window()
    window.scan_paths(make_images(tmp_path / "imgs", 3))
    wait_idle(qtbot, window)
    asked, window.guards.ask = recorder(False)
    window.act_clear_results.trigger()
    assert asked == ["Discard results?"] and window.results.rowCount() == 3
    window.export_report(tmp_path / "r.csv")
    asked2, window.guards.ask = recorder(False)
    window.act_clear_results.trigger()  # exported: nothing to lose, no question
    assert asked2 == [] and window.results.rowCount() == 0


def test_filtered_export_without_case_writes_the_shown_rows_and_keeps_the_guard(
        make_window, qtbot, tmp_path):
    window = make_window()
    window.scan_paths(make_images(tmp_path / "imgs", 4))
    wait_idle(qtbot, window)
    window.text_filter.setText("img_001")
    assert window.proxy.rowCount() == 1
    out = window.export_report(tmp_path / "only.csv", filtered=True)
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2  # header + the shown row
    assert window.close_guard.unexported == 4  # three rows still exist nowhere else


def test_closing_mid_scan_asks_and_keeps_every_finished_row(make_window, qtbot, tmp_path):
    window = make_window()
    case = window.cases.new_case(tmp_path / "case")
    files = make_images(tmp_path / "many", 150, size=(160, 160))
    asked, window.guards.ask = recorder(True)
    window.scan_paths([str(tmp_path / "many")])
    qtbot.waitUntil(lambda: window.results.rowCount() > 0, timeout=60_000)
    assert window.queue.running_thread is not None
    assert not window.close()  # asks, stops the scan, closes once it has stopped
    assert asked == ["A scan is running"]
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=120_000)
    shown = window.results.rowCount()
    assert 0 < shown <= len(files)
    with Case.open(case.folder, read_only=True) as reopened:
        assert reopened.count_results() == shown  # nothing finished was dropped
        assert reopened.scans()[-1].status in ("cancelled", "finished")


def test_failed_checkpoint_is_not_saved_and_banner_names_the_model_in_use(make_window, qtbot,
                                                                          tmp_path):
    window = make_window()
    good = window.models.info
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    window.load_checkpoint(str(bad))
    qtbot.waitUntil(lambda: not window.models.is_loading and bool(window.models.last_error),
                    timeout=60_000)
    assert window.settings.model_path != str(bad)  # D3: never saved as the model
    assert window.banner.isVisibleTo(window)
    text = window.banner_text.text()
    assert "could not be loaded" in text and good.file_name in text  # D25


def test_failed_first_model_falls_back_to_the_bundled_one(make_window, qtbot, tmp_path):
    from forensics_app.paths import bundled_model_path

    if not bundled_model_path().is_file():
        import pytest

        pytest.skip("no bundled model in this checkout")
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"junk")
    window = make_window(model_path=bad, wait_model=False)
    qtbot.waitUntil(lambda: window.models.info is not None, timeout=120_000)
    assert window.models.info.bundled
    assert "bundled model is used instead" in window.banner_text.text()
    assert window.settings.model_path == ""


def test_threshold_that_differs_from_the_model_says_so(make_window):
    window = make_window()
    info = window.models.info
    assert not window.threshold_differs and window.reset_threshold.text() == "Model default"
    window.set_threshold(round(info.threshold + 0.1, 2))
    assert window.threshold_differs
    assert f"model {info.threshold:.2f}" in window.reset_threshold.text()
    window.reset_threshold.click()
    assert not window.threshold_differs


def test_window_fits_the_screen_and_keyboard_reaches_the_filter(make_window, qtbot):
    window = make_window()
    avail = QGuiApplication.primaryScreen().availableGeometry()
    window.resize(avail.width() + 900, avail.height() + 900)
    window.fit_to_screen()
    minimum = window.minimumSizeHint()
    assert minimum.width() <= 1024 and minimum.height() <= 700  # fits a 1024×700 screen
    assert window.width() <= max(avail.width(), minimum.width())
    assert window.height() <= max(avail.height(), minimum.height())
    window.table.setFocus()
    ctrl_click(qtbot, window, Qt.Key.Key_F)
    assert window.text_filter.hasFocus()
    assert not window.table.tabKeyNavigation()
