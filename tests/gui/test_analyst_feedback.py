"""Issue 25's remaining trial defects: counts, progress, heatmap, caption and export that say
what they mean (D15, D17, D18, D19, D24, D27)."""

from __future__ import annotations

from gui_helpers import wait_idle

from forensics_app.core.case import Case, CaseRecorder, detector_facts
from forensics_app.core.scan import ScanOptions, discover_files, scan_files


def _record_scan(case: Case, detector, sources, files, n_files, finish: bool) -> int:
    scan_id = case.begin_scan(detector_facts(detector), {"mode": "full"},
                              [str(s) for s in sources], False, n_files)
    rec = CaseRecorder(case, scan_id, batch_size=4)
    scan_files(files, detector, ScanOptions(batch_size=4), on_result=rec)
    rec.flush()
    if finish:
        case.finish_scan(scan_id, "cancelled")
    return scan_id


def test_resume_prompt_counts_what_the_case_holds(make_window, tiny_detector, image_folder,
                                                  tmp_path, qtbot):
    """D15: a scan resumed once has rows from both attempts; the prompt counts them all."""
    files = discover_files([image_folder])
    assert len(files) == 8
    with Case.create(tmp_path / "case", name="Op Resume") as case:
        # first attempt: 3 files, cancelled; second attempt scored 2 more and was killed
        _record_scan(case, tiny_detector, [image_folder], files[:3], 8, finish=True)
        _record_scan(case, tiny_detector, [image_folder], files[3:5], 8, finish=False)
        # a file outside the scanned folder is not counted for it
        other = tmp_path / "elsewhere"
        other.mkdir()
        extra = other / "x.png"
        extra.write_bytes(files[0].read_bytes())
        _record_scan(case, tiny_detector, [other], [extra], 1, finish=True)
        assert [s.n_done for s in case.scans()] == [3, 2, 1]
    window = make_window()
    asked: list[str] = []
    window.cases.ask = lambda _title, text: asked.append(text) or False
    window.cases.open_case(tmp_path / "case")
    assert len(asked) == 1
    assert "holds results for 5 of 8" in asked[0], asked[0]
    assert "2 of 8" not in asked[0]
    wait_idle(qtbot, window)


def test_no_eta_during_warm_up_then_a_steady_one():
    """D24: the first file carries the model's warm-up (8 s here); the old estimate
    (done / elapsed) said ~20 min for 150 files that take 15 s. No estimate until 10 files
    and 3 s after the first; then the steady rate."""
    from forensics_app.gui.records import ScanJob
    from forensics_app.gui.scan_progress import EtaEstimator, running_text

    est = EtaEstimator()
    total = 150
    est.update(0, total, 0.0)
    est.update(1, total, 8.0)  # warm-up: first file after 8 s
    assert est.eta is None and est.rate is None
    for done in range(2, 11):  # 9 more files in 0.9 s: too few, too soon
        est.update(done, total, 8.0 + (done - 1) * 0.1)
        assert est.eta is None
    for done in range(11, 41):  # then steady at 10 files/s
        est.update(done, total, 8.0 + (done - 1) * 0.1)
    assert est.rate is not None and abs(est.rate - 10.0) < 0.5
    assert abs(est.eta - (total - 40) / 10.0) < 1.0  # ~11 s left, not minutes

    job = ScanJob(["/evidence"], False, total=total)
    job.progressed(1, total, now=8.0)
    assert "ETA" not in running_text(job) and "estimating time left" in running_text(job)
    for done in range(2, 41):
        job.progressed(done, total, now=8.0 + (done - 1) * 0.1)
    assert "ETA 0:11" in running_text(job), running_text(job)


def test_skipped_files_are_counted_and_explained():
    """D17: "120/124" said nothing of the 4 files that were not images."""
    from forensics_app.core.discovery import Skipped
    from forensics_app.gui.records import JobStatus, ScanJob
    from forensics_app.gui.scan_progress import finished_text, running_text

    job = ScanJob(["/evidence"], False, total=124)
    job.skipped = [Skipped(f"/evidence/f{i}", "not an image", "not-image") for i in range(4)]
    job.progressed(124, 124)
    assert "124/124" in running_text(job) and "4 skipped: 4 not images" in running_text(job)
    job.status, job.done = JobStatus.DONE, 120
    text = finished_text(job)
    assert "120 files of 124" in text and "4 skipped: 4 not images" in text, text


def test_overlay_caption_wraps_between_words_and_names_the_threshold(qapp, tmp_path):
    """D19: the saved overlay's caption broke words (and the hash) anywhere and did not say
    at which threshold the verdict was taken."""
    from PIL import Image
    from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage

    from forensics_app.core.results import ScanResult, Verdict
    from forensics_app.gui.overlay_export import caption_text, captioned_overlay, wrap_caption

    record = ScanResult(path=str(tmp_path / "holiday photo from the beach.jpg"),
                        sha256="ab" * 32, prob_fake=0.8125, verdict=Verdict.AI_GENERATED,
                        model_id="tiny.pt@0123456789ab", threshold=0.62,
                        inconclusive_band=0.05)
    text = caption_text(record)
    assert "threshold 0.62 ± 0.05" in text and "AI-generated at P ≥ 0.67" in text
    font = QFont()
    font.setPixelSize(12)
    metrics = QFontMetrics(font)
    for width in (900, 400, 260):  # the hash fits at these widths: no word is touched
        lines = wrap_caption(text, metrics, width)
        assert len(lines) > 1
        assert all(metrics.horizontalAdvance(line) <= width for line in lines)
        assert " ".join(lines) == " ".join(text.split())  # every word whole, in order
    assert " ".join(("ab" * 32)[i : i + 16] for i in range(0, 64, 16)) in text
    long_name = "x" * 200 + ".jpg"  # one word wider than the line: elided, never split
    narrow = wrap_caption(f"{long_name} · SHA-256", metrics, 200)
    assert all(metrics.horizontalAdvance(line) <= 200 for line in narrow)
    assert narrow[0].startswith("xxx") and "…" in narrow[0] and "x.jpg" in narrow[0]
    assert narrow[-1].endswith("SHA-256")
    image = QImage(400, 300, QImage.Format.Format_RGB32)
    image.fill(QColor("red"))
    out = captioned_overlay(image, record)
    path = tmp_path / "overlay.png"
    assert out.height() > 300 and out.save(str(path), "PNG")
    with Image.open(path) as saved:
        assert saved.text["Threshold"].startswith("threshold 0.62 ± 0.05")


def test_first_heatmap_says_it_is_computing_and_reports_its_whole_time(make_window, qtbot,
                                                                      image_folder):
    """D18: the first map left both panes blank for seconds, then gave a time without the
    model's preparation. Now: a busy state at once, and the whole time, preparation named."""
    window = make_window()
    window.heatmaps.prewarm_enabled = False  # the cold path (prewarming: the next test)
    window.scan_paths([str(image_folder)])
    wait_idle(qtbot, window)
    window.select_source_row(0)
    assert window.heatmaps.needs_model(window.results.record(0).model_id)
    with qtbot.waitSignal(window.heatmaps.ready, timeout=60_000):
        window.show_heatmap()
        viewer = window.heatmap_viewer
        # at once, before the worker has answered
        assert viewer.busy.isVisible() and viewer.data is None
        assert "preparing Grad-CAM" in viewer.status.text()
    assert viewer.data is not None and not viewer.busy.isVisible()
    text = viewer.status.text()
    assert "after it was asked for" in text and "s preparing Grad-CAM" in text, text
    assert viewer.data.prepare_s > 0.0 and viewer.data.elapsed_s >= viewer.data.prepare_s
    # the next map reuses the model: no preparation to announce or to count
    with qtbot.waitSignal(window.heatmaps.ready, timeout=60_000):
        window.select_source_row(1)
        assert "computing the map" in viewer.status.text()
        assert "preparing" not in viewer.status.text()
    assert "preparing" not in viewer.status.text()
    # back to the first: from the cache, and it says so
    with qtbot.waitSignal(window.heatmaps.ready, timeout=5_000):
        window.select_source_row(0)
    assert viewer.status.text().startswith("From the cache; first computed in")


def test_grad_cam_is_prepared_when_a_scan_ends_so_the_first_map_starts_at_once(
        make_window, qtbot, image_folder):
    """D18: the first map waited for the Grad-CAM library and a model copy; both are now
    prepared in the background once the queue is idle after a scan."""
    window = make_window()
    window.scan_paths([str(image_folder)])
    wait_idle(qtbot, window)
    model_id = window.results.record(0).model_id
    qtbot.waitUntil(lambda: not window.heatmaps.busy, timeout=60_000)
    assert not window.heatmaps.needs_model(model_id)  # prepared without any request
    assert window.heatmaps.computed == 0
    assert not window.heatmaps.prewarm(model_id)  # nothing more to prepare
    window.select_source_row(0)
    with qtbot.waitSignal(window.heatmaps.ready, timeout=60_000):
        window.show_heatmap()
        assert "preparing" not in window.heatmap_viewer.status.text()
    assert window.heatmap_viewer.data is not None and window.heatmaps.computed == 1


def test_export_without_a_case_offers_html_pdf_and_the_active_filter(make_window, image_folder,
                                                                     tmp_path, qtbot,
                                                                     monkeypatch):
    """D27: without a case, export offered only CSV/JSONL and ignored the active filter."""
    import csv

    from forensics_app.gui import results_export

    window = make_window()
    window.scan_paths([str(image_folder)])
    wait_idle(qtbot, window)
    assert window.cases.case is None and window.results.rowCount() == 8
    window.set_threshold(0.0, 0.0)  # every row flagged: a Grad-CAM page each
    records = window.results.records()
    first = records[0]
    window.text_filter.setText(first.file_name)
    assert window.proxy.rowCount() == 1

    offered: list[str] = []
    asked: list[tuple[int, int, bool]] = []

    def save_dialog(_parent, _title, start, filters):
        offered.append(filters)
        return str(tmp_path / "out" / "filtered"), "HTML report, not from a case (*.html)"

    monkeypatch.setattr(results_export.QFileDialog, "getSaveFileName", save_dialog)
    window.report_jobs.ask_scope = lambda _w, n_all, n_shown, case: (
        asked.append((n_all, n_shown, case)) or "filter")
    (tmp_path / "out").mkdir()
    assert window.close_guard.unexported == 8
    with qtbot.waitSignal(window.report_jobs.report_written, timeout=120_000) as got:
        window.act_export.trigger()
    assert "*.html" in offered[0] and "*.pdf" in offered[0] and "*.csv" in offered[0]
    assert asked == [(8, 1, False)]
    html_path = tmp_path / "out" / "filtered.html"
    assert got.args == [str(html_path.absolute())]
    html = html_path.read_text(encoding="utf-8")
    assert "Not from a case." in html and "no audit log and no hash chain" in html
    assert "This report lists 1 of the 8 rows the window held" in html
    assert first.sha256[:32] in html
    assert not any(r.sha256[:32] in html for r in records[1:])
    assert "Grad-CAM overlay" in html and "Audit log" not in html
    assert "Integrity: intact" not in html
    assert "<th>Examiner</th>" not in html  # no reviews without a case: no empty column
    assert not list((tmp_path / "out").glob("*.anchor.json"))  # no chain, no anchor
    qtbot.waitUntil(lambda: not window.report_jobs.busy)
    assert window.close_guard.unexported == 8  # a filtered report leaves 7 rows nowhere else

    # every format offers both scopes: PDF of all rows, CSV of all rows
    window.report_jobs.ask_scope = lambda *_a: "all"
    pdf = tmp_path / "out" / "all.pdf"
    with qtbot.waitSignal(window.report_jobs.report_written, timeout=120_000):
        assert results_export.export_results(window, pdf) is not None
    assert pdf.read_bytes()[:5] == b"%PDF-"
    qtbot.waitUntil(lambda: not window.report_jobs.busy)
    assert window.close_guard.unexported == 0  # every row is in the PDF: closing may not ask
    out_csv = results_export.export_results(window, tmp_path / "out" / "all.csv")
    with open(out_csv, encoding="utf-8", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 8
    out_csv = results_export.export_results(window, tmp_path / "out" / "one.csv", "filter")
    with open(out_csv, encoding="utf-8", newline="") as fh:
        assert [r["path"] for r in csv.DictReader(fh)] == [first.path]
