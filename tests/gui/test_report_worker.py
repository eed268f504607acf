"""D1: case reports are written by a worker (progress, cancel), with the chosen rows."""

from __future__ import annotations

import csv

from gui_helpers import wait_idle

from forensics_app.core.case import ACTION_REPORT_EXPORTED
from forensics_app.gui.report_worker import ReportRequest, ReportWorker
from forensics_app.gui.workers import release_thread, start_worker


def scanned(make_window, image_folder, tmp_path, qtbot):
    window = make_window()
    case = window.cases.new_case(tmp_path / "case")
    window.scan_paths([str(image_folder)])
    wait_idle(qtbot, window)
    return window, case


def test_html_report_is_written_in_the_background_and_audited(make_window, image_folder,
                                                              tmp_path, qtbot):
    window, case = scanned(make_window, image_folder, tmp_path, qtbot)
    jobs = window.report_jobs
    progress: list[tuple[int, int]] = []
    out = tmp_path / "reports" / "case.html"
    with qtbot.waitSignal(jobs.report_written, timeout=120_000) as got:
        assert jobs.start_case_report(out, "all") is not None
        assert jobs.busy and jobs.status.isVisibleTo(window)  # returned at once: not blocking
        jobs._worker.progress.connect(lambda d, t: progress.append((d, t)))
        assert jobs.start_case_report(tmp_path / "second.html") is None  # one at a time
    assert got.args == [str(out.absolute())]
    assert out.is_file() and "Examiner's conclusions" in out.read_text(encoding="utf-8")
    qtbot.waitUntil(lambda: not jobs.busy)
    assert not jobs.status.isVisibleTo(window)
    entry = case.audit_entries()[-1]
    assert entry.action == ACTION_REPORT_EXPORTED and entry.params["n_rows"] == 8
    assert progress and progress[-1][0] == progress[-1][1]


def test_report_of_the_filtered_rows_and_pdf(make_window, image_folder, tmp_path, qtbot):
    window, _case = scanned(make_window, image_folder, tmp_path, qtbot)
    first = window.results.record(0)
    window.text_filter.setText(first.file_name)
    assert window.proxy.rowCount() == 1
    out = tmp_path / "filtered.csv"
    with qtbot.waitSignal(window.report_jobs.report_written, timeout=120_000):
        window.report_jobs.start_case_report(out, "filter")
    with open(out, encoding="utf-8", newline="") as fh:
        assert [r["path"] for r in csv.DictReader(fh)] == [first.path]
    qtbot.waitUntil(lambda: not window.report_jobs.busy)
    pdf = tmp_path / "case.pdf"
    with qtbot.waitSignal(window.report_jobs.report_written, timeout=120_000):
        window.report_jobs.start_case_report(pdf, "all")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    qtbot.waitUntil(lambda: not window.report_jobs.busy)


def test_cancelled_report_writes_nothing(make_window, image_folder, tmp_path, qtbot):
    window, case = scanned(make_window, image_folder, tmp_path, qtbot)
    out = tmp_path / "never.html"
    worker = ReportWorker(ReportRequest(str(case.folder), str(out)))
    worker.cancel()  # before it starts: the first check stops it
    with qtbot.waitSignal(worker.cancelled, timeout=60_000):
        thread = start_worker(worker, "report-test")
    qtbot.waitUntil(lambda: thread.isFinished())
    assert release_thread(thread)
    assert not out.exists() and not list(tmp_path.glob(".never.html*"))
