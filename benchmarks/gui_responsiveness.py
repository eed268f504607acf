"""How long the GUI event loop stalls while the window scans a few hundred images.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/gui_responsiveness.py \
        [--images 300] [--size 256] [--model CHECKPOINT] [--threads N]

A precise 10 ms QTimer measures its own lateness (actual minus expected interval) on the
GUI thread, first while torch and the model load in the background, then during a scan of
generated images dropped on the real main window (results table with thumbnails, queue,
progress bar all live). Prints the worst stall and the 50th/99th percentiles; the target
is p99 <= 50 ms during the scan. Then the same folder is scanned by the CLI's engine
(``forensics-scan --threads N --jsonl``) in a fresh process, timed from the first file to the
last row like the GUI scan (model load excluded from both), and the GUI/CLI throughput ratio
is printed (target >= 0.9); the CLI runs once before and once after the GUI, and the ratio
is against their mean. The window runs Qt's own event loop (no polling) while it scans, and
the GUI thread's CPU time during the scan is printed. Without ``--model`` a random-weight ResNet-50 cut after
its first stage is used (fast, so the GUI receives rows at a high rate).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parent.parent

TARGET_P99_MS = 50.0
TICK_MS = 10


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))] if s else 0.0


class LatenessProbe:
    """A QTimer that records how late each of its ticks arrives."""

    def __init__(self):
        from PySide6.QtCore import Qt, QTimer

        self.samples: list[float] = []
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.samples.append(max(0.0, (now - self._last) * 1000.0 - TICK_MS))
        self._last = now

    def start(self) -> None:
        self.samples = []
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> list[float]:
        self.timer.stop()
        return self.samples


def report(name: str, samples: list[float], seconds: float) -> float:
    p99 = percentile(samples, 99)
    print(f"{name}: {seconds:.1f} s, {len(samples)} ticks; lateness p50 "
          f"{statistics.median(samples) if samples else 0:.1f} ms, p99 {p99:.1f} ms, "
          f"worst {max(samples, default=0):.1f} ms")
    return p99


def run_until(done, signal) -> None:
    """Run the Qt event loop, as the app does (no polling of our own, which would cost the
    GUI thread CPU the app never spends), until ``done()``; ``signal`` is checked on."""
    from PySide6.QtCore import QEventLoop, QTimer

    if done():
        return
    loop = QEventLoop()

    def check(*_):
        if done():
            loop.quit()

    signal.connect(check)
    guard = QTimer()  # in case the signal came before the loop ran
    guard.timeout.connect(check)
    guard.start(200)
    loop.exec()
    guard.stop()
    signal.disconnect(check)


def make_fixtures(folder: Path, n: int, size: int, checkpoint: Path | None) -> None:
    """Generate images (and a tiny checkpoint) in a subprocess, so that torch is not yet
    imported here and the background load is measured as the app experiences it."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from pathlib import Path; from helpers import make_images, save_tiny_checkpoint;"
        "make_images(Path(sys.argv[2]), int(sys.argv[3]), size=(int(sys.argv[4]),) * 2);"
        "sys.argv[5] and save_tiny_checkpoint(Path(sys.argv[5]))"
    )
    subprocess.run([sys.executable, "-c", code, str(REPO / "tests"), str(folder), str(n),
                    str(size), str(checkpoint or "")], check=True)


CLI_CHILD = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from forensics_app.cli import main
import forensics_app.core.scan as scan
calls = []
real = scan.scan_files
def timed(*a, **k):
    t0 = time.perf_counter()
    out = real(*a, **k)
    calls.append(time.perf_counter() - t0)
    return out
scan.scan_files = timed  # the CLI imports it from core.scan when it runs
rc = main(sys.argv[2:])
print(f"RESULT rc={rc} scan_s={sum(calls):.3f} calls={len(calls)}", flush=True)
"""


def cli_scan_seconds(folder: Path, model: Path, threads: int, out: Path) -> float | None:
    """Seconds the CLI's engine spends scanning ``folder`` (model load excluded)."""
    cmd = [sys.executable, "-c", CLI_CHILD, str(REPO), str(folder), "-q", "--model", str(model),
           "--threads", str(threads), "--jsonl", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    if not line:
        print("CLI run failed:", proc.stdout[-1500:], proc.stderr[-1500:])
        return None
    fields = dict(kv.split("=") for kv in line[0].split()[1:])
    return float(fields["scan_s"]) if int(fields["calls"]) else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--model", type=Path)
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: the app's)")
    args = p.parse_args()

    from PySide6.QtWidgets import QApplication

    from forensics_app.gui.app import default_torch_threads
    from forensics_app.gui.main_window import MainWindow
    from forensics_app.gui.settings import AppSettings

    app = QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model = args.model or tmp / "tiny.pt"
        folder = tmp / "images"
        make_fixtures(folder, args.images, args.size, None if args.model else model)
        threads = args.threads or default_torch_threads()
        # The CLI runs once before and once after the GUI scan: the ratio is taken against
        # their mean, so a drift of the machine's speed during the run does not favour either.
        cli_before = cli_scan_seconds(folder, model, threads, tmp / "cli0.jsonl")

        window = MainWindow(settings=AppSettings(last_folder=str(folder)), settings_path=None,
                            model_path=str(model), threads=threads)
        probe = LatenessProbe()
        window.show()
        probe.start()
        t0 = time.perf_counter()
        window.start()
        while window.models.is_loading:
            app.processEvents()
            time.sleep(0.001)
        load_samples, load_s = probe.stop(), time.perf_counter() - t0
        if window.models.info is None:
            print(f"model failed to load: {window.models.last_error}")
            return 2

        probe.start()
        t0, gui_cpu0 = time.perf_counter(), time.thread_time()
        window.scan_paths([str(folder)])
        run_until(lambda: not window.queue.busy, window.queue.idle)
        scan_samples, scan_s = probe.stop(), time.perf_counter() - t0
        gui_cpu = time.thread_time() - gui_cpu0
        n = window.results.rowCount()

        cam = []  # first Grad-CAM (imports pytorch-grad-cam, copies the model), then another
        for row in (0, 1):
            probe.start()
            t0 = time.perf_counter()
            window.select_source_row(row)
            window.show_heatmap()
            while window.heatmap_viewer.data is None or window.heatmaps.busy:
                app.processEvents()
                time.sleep(0.001)
            cam.append((probe.stop(), time.perf_counter() - t0))

        print(f"{n} images of {args.size}x{args.size} px, model {window.models.info.model_id}, "
              f"{window.models.info.device}, {os.cpu_count()} CPUs")
        report("torch + model load (background)", load_samples, load_s)
        p99 = report(f"scan ({n / scan_s:.1f} images/s)", scan_samples, scan_s)
        print(f"GUI thread during the scan: {gui_cpu:.2f} CPU s "
              f"({100 * gui_cpu / scan_s:.0f}% of one core)")
        report("first heatmap (loads grad-cam)", *cam[0])
        report("next heatmap", *cam[1])
        print(f"scan p99 stall {p99:.1f} ms (target <= {TARGET_P99_MS:.0f} ms)")
        window.close_guard.exported()  # a benchmark's results need no export question
        window.close()
        app.processEvents()
        cli_after = cli_scan_seconds(folder, model, threads, tmp / "cli1.jsonl")
        if cli_before and cli_after:
            cli_s = (cli_before + cli_after) / 2
            print(f"GUI {n / scan_s:.2f} images/s vs CLI engine {n / cli_s:.2f} images/s "
                  f"(before {n / cli_before:.2f}, after {n / cli_after:.2f}; {threads} torch "
                  f"threads both): ratio {cli_s / scan_s:.2f} (target >= 0.9)")
    return 0 if p99 <= TARGET_P99_MS else 1


if __name__ == "__main__":
    sys.exit(main())
