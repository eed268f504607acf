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
