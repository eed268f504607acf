"""Drop files on the real window, let the queue scan them, check the table against the engine."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from gui_helpers import drop, wait_idle
from PySide6.QtWidgets import QApplication, QFileDialog

from forensics_app.core.export import COLUMNS, write_csv
from forensics_app.core.results import Verdict, verdict_for
from forensics_app.core.scan import discover_files, scan_files
from forensics_app.gui.records import JobStatus
from forensics_app.gui.table_model import Column
from forensics_app.gui.workers import live_threads
from helpers import make_images


@pytest.fixture
def evidence(tmp_path):
    """Twelve generated images and one broken file in a folder, plus a stray text file."""
    folder = tmp_path / "evidence"
    make_images(folder, 12, seed=3)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    notes = tmp_path / "notes.txt"
    notes.write_text("case notes, not an image")
    return folder, notes


def test_dropped_folder_rows_equal_engine_results(make_window, qtbot, evidence, tiny_detector):
    folder, _ = evidence
    window = make_window()
    # Dropped onto the table area: the event travels up to the window, as a real drop does.
    assert drop(window.empty_hint, [folder])
    jobs = wait_idle(qtbot, window)
    assert [j.status for j in jobs] == [JobStatus.DONE]

    engine = scan_files(discover_files([folder], recursive=True), tiny_detector)
    gui = {r.path: r for r in window.results.records()}
    assert window.results.rowCount() == len(engine) == 13
    for r in engine:
        g = gui[r.path]
        assert g.sha256 == r.sha256 and g.verdict == r.verdict and g.error == r.error
        if r.ok:
            assert g.prob_fake == pytest.approx(r.prob_fake, abs=1e-5)
    broken = gui[str(folder / "broken.png")]
    assert broken.verdict is Verdict.ERROR and broken.prob_fake is None
    assert "PNG" in broken.format and broken.error
    row = window.results.row_of_path(broken.path)
    assert window.results.index(row, Column.VERDICT).data() == "Error"
    assert window.results.index(row, Column.ERROR).data() == broken.error
    assert jobs[0].errors == 1 and jobs[0].done == 13


def test_duplicates_skipped_and_non_image_becomes_error_row(make_window, qtbot, evidence):
    folder, notes = evidence
    window = make_window()
    assert drop(window, [folder])
    wait_idle(qtbot, window)
    assert drop(window, [folder / "img_000.png", notes])
    jobs = wait_idle(qtbot, window)
    assert jobs[1].duplicates == 1 and jobs[1].total == 1
    assert window.results.rowCount() == 14
    row = window.results.record(window.results.row_of_path(str(notes)))
    assert row.verdict is Verdict.ERROR and "not an image" in row.error
    # The same request while it is still queued is not queued twice.
    window.models.detector, detector = None, window.models.detector  # hold the queue
    try:
        assert window.scan_paths([str(folder)], recursive=False) is not None
        assert window.scan_paths([str(folder)], recursive=False) is None
    finally:
        window.models.detector = detector
        window.queue.cancel_pending()


def test_verdict_and_text_filters(make_window, qtbot, evidence):
    folder, _ = evidence
    window = make_window()
    drop(window, [folder])
    wait_idle(qtbot, window)
    counts = window.results.counts()
    for i in range(window.verdict_filter.count()):
        window.verdict_filter.setCurrentIndex(i)
        wanted = window.verdict_filter.currentData()
        shown = window.proxy.visible_records()
        if wanted is None:
            assert len(shown) == window.results.rowCount()
        else:
            assert {r.verdict for r in shown} <= wanted
            assert len(shown) == sum(counts[v] for v in wanted)
    window.verdict_filter.setCurrentIndex(0)
    window.text_filter.setText("IMG_003")  # case-insensitive, on the path
    assert [r.file_name for r in window.proxy.visible_records()] == ["img_003.jpg"]
    window.text_filter.setText(window.results.record(0).sha256[:16])
    assert window.proxy.rowCount() == 1


def test_threshold_change_rejudges_verdicts_live(make_window, qtbot, evidence):
    folder, _ = evidence
    window = make_window()
    drop(window, [folder])
    wait_idle(qtbot, window)
    probs = [r.prob_fake for r in window.results.records()]
    for threshold, band in ((0.0, 0.0), (1.0, 0.0), (0.6, 0.1), (0.5, 0.05)):
        window.band_spin.setValue(band)
        window.threshold_spin.setValue(threshold)
        records = window.results.records()
        assert [r.prob_fake for r in records] == probs  # scores never change
        for r in records:
            assert r.verdict is (verdict_for(r.prob_fake, threshold, band) if r.ok
                                 else Verdict.ERROR)
            assert (r.threshold, r.inconclusive_band) == (threshold, band)
        row = window.results.row_of_path(records[1].path)
        assert window.results.index(row, Column.VERDICT).data() == records[1].verdict.value
    window.threshold_spin.setValue(0.0)
    window.band_spin.setValue(0.0)
    ok = sum(r.ok for r in window.results.records())
    assert window.results.counts()[Verdict.AI_GENERATED] == ok
    assert window.settings.threshold == 0.0  # the analyst's choice is remembered


def test_export_csv_equals_core_exporter(make_window, qtbot, evidence, tmp_path, monkeypatch):
    folder, _ = evidence
    window = make_window()
    drop(window, [folder])
    wait_idle(qtbot, window)
    window.set_threshold(0.55, 0.02)
    out = tmp_path / "report.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(out), "CSV report (*.csv)")))
    window.act_export.trigger()
    assert out.is_file() and (tmp_path / "report.csv.meta.json").is_file()

    expected = tmp_path / "expected.csv"
    write_csv(expected, window.results.records())
    with open(out, newline="", encoding="utf-8") as a, open(expected, newline="",
                                                            encoding="utf-8") as b:
        got, want = list(csv.DictReader(a)), list(csv.DictReader(b))
    assert got == want and len(got) == 13
    assert list(got[0]) == list(COLUMNS)
    assert {row["threshold"] for row in got} == {"0.55"}
    meta = json.loads((tmp_path / "report.csv.meta.json").read_text())
    assert meta["threshold"] == 0.55 and meta["n_errors"] == 1

    jsonl = window.export_report(tmp_path / "report.jsonl")
    lines = jsonl.read_text().splitlines()
    assert len(lines) == 13 and json.loads(lines[0])["sha256"] == got[0]["sha256"]


def test_cancel_long_scan_keeps_finished_rows(make_window, qtbot, tmp_path):
    folder = tmp_path / "many"
    make_images(folder, 160, size=(160, 160))
    window = make_window()
    drop(window, [folder])
    qtbot.waitUntil(lambda: window.results.rowCount() >= 8, timeout=60_000)
    assert window.queue.running_thread is not None
    with qtbot.waitSignal(window.queue.job_finished, timeout=30_000):
        window.queue_view.cancel_running_button.click()
    job = window.queue.jobs[0]
    assert job.status is JobStatus.CANCELLED
    rows = window.results.rowCount()
    assert 8 <= rows < 160 and job.done == rows
    assert all(r.ok for r in window.results.records())
    assert window.queue.running_thread is None
    assert not [t for t in live_threads() if t.objectName().startswith("scan-job")]
    # Files that were not reached are released: scanning the folder again completes it.
    drop(window, [folder])
    jobs = wait_idle(qtbot, window)
    assert jobs[1].status is JobStatus.DONE and jobs[1].duplicates == rows
    assert window.results.rowCount() == 160
    assert len({r.path for r in window.results.records()}) == 160


def test_copy_rows_reads_records(make_window, qtbot, evidence):
    folder, _ = evidence
    window = make_window()
    drop(window, [folder])
    wait_idle(qtbot, window)
    window.select_source_row(2)
    window.act_copy.trigger()
    lines = QApplication.clipboard().text().splitlines()
    assert lines[0].split("\t") == list(COLUMNS)
    record = window.results.record(2)
    assert record.sha256 in lines[1] and lines[1].startswith(record.path)


def test_gui_import_does_not_import_torch():
    code = ("import sys; import forensics_app.gui.app, forensics_app.gui.main_window; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_dropped_folder_reports_what_it_did_not_scan(make_window, qtbot, tmp_path):
    """Issue 11 item 3: entries of a dropped folder that are not scanned are never silent."""
    folder = tmp_path / "ev"
    make_images(folder, 1)
    (folder / ".hidden.png").write_bytes((folder / "img_000.png").read_bytes())
    (folder / "readme").write_text("no extension and not an image")  # sniffed, then skipped
    window = make_window()
    assert drop(window, [folder])
    jobs = wait_idle(qtbot, window)
    assert [r.file_name for r in window.results.records()] == ["img_000.png"]
    # D17: counted on the job, worded with the reason, in the status bar and the queue
    assert "2 skipped: 1 hidden, 1 not an image" in window.progress_label.text()
    assert "2 skipped: 1 hidden, 1 not an image" in window.queue.model.data(
        window.queue.model.index(0, 4))
    assert [s.kind for s in jobs[0].skipped] == ["hidden", "not-image"]
