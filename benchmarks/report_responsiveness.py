"""How long the GUI event loop stalls while the window exports a case report (issue 25, D1).

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/report_responsiveness.py \
        [--rows 2000] [--flagged 0.1] [--formats html,pdf]

Builds a case of ``--rows`` small generated images (rows stored directly, a ``--flagged``
share of them AI-generated with a tiny random-weight checkpoint recorded as their model, so
every flagged page computes a real Grad-CAM), opens it in the real main window and exports
the report through *File → Export case report*'s worker while a precise 10 ms QTimer on the
GUI thread measures its own lateness. Prints the export time and the lateness p50/p99/worst
per format; the target is p99 <= 50 ms while the report is written. torch is imported before
measuring, as the running app has it (its model loads at start).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))

from gui_responsiveness import TARGET_P99_MS, LatenessProbe, report, run_until  # noqa: E402


def build_case(folder: Path, n: int, flagged: float) -> Path:
    from forensics_app.core.case import Case
    from forensics_app.core.detector import file_sha256
    from forensics_app.core.results import ScanResult, Verdict
    from helpers import make_image, save_tiny_checkpoint

    images = folder / "evidence"
    images.mkdir(parents=True)
    ckpt = folder / "tiny.pt"
    save_tiny_checkpoint(ckpt)
    facts = {"model_id": "tiny", "path": str(ckpt), "sha256": file_sha256(ckpt),
             "kind": "one-logit", "meta": {}}
    rng = random.Random(0)
    rows = []
    for i in range(n):
        p = images / f"img_{i:05d}.png"
        make_image((64, 64), i).save(p)
        prob = rng.random() * 0.5 + (0.5 if rng.random() < flagged else 0.0)
        rows.append(ScanResult(str(p), hashlib.sha256(p.read_bytes()).hexdigest(),
                               p.stat().st_size, "PNG", 64, 64, "RGB", prob,
                               Verdict.AI_GENERATED if prob >= 0.5 else Verdict.REAL, 0.5, 0.0,
                               "tiny", "cpu", "full", 1.0))
    case_dir = folder / "case"
    with Case.create(case_dir, name="report benchmark") as case:
        scan_id = case.begin_scan(facts, {"mode": "full"}, [str(images)], False, n)
        for start in range(0, n, 256):
            case.add_results(scan_id, rows[start:start + 256])
        case.finish_scan(scan_id)
    return case_dir


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--flagged", type=float, default=0.1)
    ap.add_argument("--formats", default="html,pdf")
    args = ap.parse_args()
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    import torch  # noqa: F401 -- the app imports it at start (model load); not part of a report

    from forensics_app.gui.main_window import MainWindow

    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        case_dir = build_case(Path(tmp), args.rows, args.flagged)
        print(f"case of {args.rows} rows built in {time.perf_counter() - t0:.1f} s")
        window = MainWindow(settings_path=None)  # never shown: no model load competes
        assert window.cases.open_case(case_dir) is not None
        app.processEvents()
        probe = LatenessProbe()
        for fmt in args.formats.split(","):
            out = Path(tmp) / f"report.{fmt}"
            probe.start()
            t0 = time.perf_counter()
            window.report_jobs.start_case_report(out, "all")
            run_until(lambda: not window.report_jobs.busy, window.report_jobs.busy_changed)
            seconds = time.perf_counter() - t0
            samples = probe.stop()
            assert out.is_file(), f"no {out}"
            p99 = report(f"{fmt} report ({out.stat().st_size / 1e6:.1f} MB)", samples, seconds)
            worst = max(worst, p99)
        window.shutdown()
    print(f"report export p99 stall {worst:.1f} ms (target <= {TARGET_P99_MS:.0f} ms)")
    return 0 if worst <= TARGET_P99_MS else 1


if __name__ == "__main__":
    sys.exit(main())
