"""``forensics-app --self-test``: prove that an installed copy computes what was exported.

The check loads the bundled checkpoint, scores the bundled sample images on the CPU through
the engine the app itself uses (``core.detector`` + ``core.scan``) and compares the scores
with ``resources/samples/expected_scores.json``, written when the model was exported
(``scripts/make_selftest_samples.py``). A different model file (SHA-256), a changed sample,
or a score that moved beyond the tolerance fails. This catches a bundle that lost a
library, a model or sample that was swapped or damaged, and a torch build that computes
differently -- the things that break an installed copy but not the source tree.

With ``--gui`` it also opens the real main window (offscreen unless ``QT_QPA_PLATFORM`` says
otherwise), waits until the window has loaded the model in its worker thread, and closes it.
``--gui-only`` does only that and reports when the window became visible (what
``benchmarks/frozen_startup.py`` times).

One line is printed (``--json``: one JSON object) and the exit status is 0 (pass) or 1 (fail).
Neither Qt nor torch is imported at module level: the scan check never loads Qt, and the
window check loads torch only the way the app does, after the window is on screen.
"""

from __future__ import annotations

import argparse
import ctypes.util
import json
import os
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SELFTEST_FORMAT = "forensics-selftest"
SELFTEST_FORMAT_VERSION = 1
EXPECTED_FILE = "expected_scores.json"
DEFAULT_TOLERANCE = 1e-3
# A trained detector gives many images a score like 2e-5 or 0.99998, where an absolute
# tolerance alone would let the score move by a factor of 50 unnoticed. So the smaller tail,
# min(p, 1 - p), must also agree within 5 % (plus 1e-6: float32 resolution near 1).
DEFAULT_REL_TOLERANCE = 0.05
TAIL_FLOOR = 1e-6
# Every sample is scored alone, in full-image mode: a score never depends on which other
# images share its batch, so the stored values are exactly reproducible.
SAMPLE_BATCH_SIZE = 1
WINDOW_TIMEOUT_S = 300.0
# Where scans run int8 by default (precision "auto"), the self-test also scores the samples in
# int8: each must stay within this of its fp32 score (shipped model on this CPU: 0.058 at most on
# these synthetic samples, ~0.02 on dev_test photos), or int8 is not working on this CPU.
INT8_TOLERANCE = 0.1
# Shared libraries Qt's xcb platform plugin needs that a fresh Debian/Ubuntu desktop may lack
# (PySide6 bundles Qt, not these), by ctypes.util.find_library name -> Debian/Ubuntu package.
# Qt's own error names none of them; the README's Quick start lists the same packages.
XCB_LIBRARIES = {
    "xcb-icccm": "libxcb-icccm4",
    "xcb-keysyms": "libxcb-keysyms1",
    "xcb-cursor": "libxcb-cursor0",
    "xkbcommon-x11": "libxkbcommon-x11-0",
    "EGL": "libegl1",
    "GL": "libgl1",
}


@dataclass
class SampleCheck:
    file: str
    expected: float | None
    actual: float | None = None
    problem: str | None = None  # None: the score matches

    @property
    def diff(self) -> float | None:
        if self.expected is None or self.actual is None:
            return None
        return abs(self.actual - self.expected)


@dataclass
class SelfTestReport:
    """What one self-test run found; ``line()`` is the one-line report."""

    ok: bool = True
    problems: list[str] = field(default_factory=list)
    model: str = ""
    model_id: str = ""
    device: str = ""
    torch: str = ""
    samples: list[SampleCheck] = field(default_factory=list)
    tolerance: float = DEFAULT_TOLERANCE
    rel_tolerance: float = DEFAULT_REL_TOLERANCE
    window: dict[str, Any] | None = None
    int8_max_diff: float | None = None  # set where scans default to int8
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def fail(self, problem: str) -> None:
        self.ok = False
        self.problems.append(problem)

    def line(self) -> str:
        parts = []
        if self.samples:
            n_ok = sum(s.problem is None for s in self.samples)
            diffs = [s.diff for s in self.samples if s.diff is not None]
            worst = f", max |diff| {max(diffs):.1e}" if diffs else ""
            parts.append(f"{n_ok}/{len(self.samples)} sample scores match"
                         f"{worst} (tolerance {self.tolerance:.0e}, "
                         f"tails {100 * self.rel_tolerance:.0f} %)")
        if self.int8_max_diff is not None:
            parts.append(f"int8 within {self.int8_max_diff:.1e} of fp32 "
                         f"(tolerance {INT8_TOLERANCE:g})")
        if self.model_id:
            parts.append(f"model {self.model_id}")
        if self.device:
            parts.append(f"{self.device}, torch {self.torch}")
        if self.window is not None and self.window.get("ok"):
            w = self.window
            parts.append(f"window ok on {w['platform']} (visible {w['exposed_s']:.1f} s, "
                         f"model ready {w['model_ready_s']:.1f} s)")
        parts.append(f"{self.seconds:.1f} s")
        parts += [f"warning: {w}" for w in self.warnings]
        head = "self-test PASS" if self.ok else "self-test FAIL: " + "; ".join(self.problems)
        return f"{head} -- " + ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["line"] = self.line()
        return data


# ---------------------------------------------------------------------- export side
def sample_files(folder: Path) -> list[Path]:
    """The sample images in ``folder`` (what the app itself would pick up), sorted by name."""
    from forensics_app.core.scan import discover_files

    return sorted(discover_files([folder]), key=lambda p: p.name)


def score_samples(model_path: Path, files: list[Path], threads: int | None = None):
    """Score ``files`` on the CPU exactly as the self-test does: (detector, results)."""
    from forensics_app.core.detector import Detector
    from forensics_app.core.scan import ScanOptions, scan_files
    from forensics_app.core.speed import SpeedLevers

    # fp32: the reference checks the bundle (weights, preprocessing, decoders), not a lever.
    detector = Detector.from_checkpoint(model_path, device="cpu", threads=threads,
                                        levers=SpeedLevers(precision="fp32"))
    options = ScanOptions(batch_size=SAMPLE_BATCH_SIZE, workers=1)
    return detector, scan_files(files, detector, options)


def write_expected_scores(model_path: Path, samples: Path, out: Path | None = None,
                          tolerance: float = DEFAULT_TOLERANCE) -> Path:
    """Score every sample image with ``model_path`` and store the result as the reference.

    Run at export time, after the checkpoint is in place (``scripts/make_selftest_samples.py``).
    """
    import torch

    from forensics_app import __version__
    from forensics_app.core.detector import file_sha256

    files = sample_files(samples)
    if not files:
        raise ValueError(f"{samples}: no sample images")
    detector, results = score_samples(model_path, files)
    failed = [f"{Path(r.path).name}: {r.error}" for r in results if not r.ok]
    if failed:
        raise ValueError("samples that could not be scored: " + "; ".join(failed))
    data = {
        "format": SELFTEST_FORMAT,
        "format_version": SELFTEST_FORMAT_VERSION,
        "model_file": Path(model_path).name,
        "model_sha256": file_sha256(model_path),
        "model_id": detector.model_id,
        "tolerance": tolerance,
        "rel_tolerance": DEFAULT_REL_TOLERANCE,
        "device": "cpu",
        "batch_size": SAMPLE_BATCH_SIZE,
        "preprocessing": results[0].preprocessing,
        "created_with": {"app": __version__, "torch": torch.__version__,
                         "python": sys.version.split()[0]},
        "samples": [
            {"file": Path(r.path).name, "sha256": r.sha256, "prob_fake": r.prob_fake,
             "verdict": r.verdict.value, "size": [r.width, r.height], "mode": r.mode,
             "preprocessing": r.preprocessing}
            for r in results
        ],
    }
    out = out or Path(samples) / EXPECTED_FILE
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return out


# ---------------------------------------------------------------------- check side
def check_samples(model_path: Path, samples: Path, expected_path: Path,
                  report: SelfTestReport) -> None:
    """Score the samples and compare with the stored reference; problems go to ``report``."""
    report.model = str(model_path)
    if not model_path.is_file():
        report.fail(f"no model at {model_path}")
        return
    if not expected_path.is_file():
        report.fail(f"no expected scores at {expected_path}")
        return
    try:
        expected = json.loads(expected_path.read_text(encoding="utf-8"))
        if expected.get("format") != SELFTEST_FORMAT:
            raise ValueError(f"not a {SELFTEST_FORMAT} file")
        entries = expected["samples"]
        want_sha = expected["model_sha256"]
        report.tolerance = float(expected.get("tolerance", DEFAULT_TOLERANCE))
        report.rel_tolerance = float(expected.get("rel_tolerance", DEFAULT_REL_TOLERANCE))
    except (ValueError, KeyError, TypeError) as exc:
        report.fail(f"unreadable {expected_path.name}: {exc}")
        return
    if not entries:
        report.fail(f"{expected_path.name} lists no samples")
        return

    import torch

    from forensics_app.core.detector import file_sha256

    report.torch = torch.__version__
    have_sha = file_sha256(model_path)
    if have_sha != want_sha:
        report.fail(f"model SHA-256 {have_sha[:12]} is not the one the expected scores were "
                    f"made with ({str(want_sha)[:12]})")
        return
    checks = [SampleCheck(e["file"], e.get("prob_fake")) for e in entries]
    report.samples = checks
    files = [samples / c.file for c in checks]
    missing = [c for c, f in zip(checks, files, strict=True) if not f.is_file()]
    for c in missing:
        c.problem = "missing"
    present = [(c, e, f) for c, e, f in zip(checks, entries, files, strict=True)
               if c.problem is None]
    if present:
        detector, results = score_samples(model_path, [f for _, _, f in present])
        report.model_id, report.device = detector.model_id, detector.device_description
        for (check, entry, _), res in zip(present, results, strict=True):
            _compare(check, entry, res, report.tolerance, report.rel_tolerance)
        check_int8(detector, [f for _, _, f in present], results, report)
    bad = [c for c in checks if c.problem is not None]
    if bad:
        shown = "; ".join(f"{c.file} {c.problem}" for c in bad[:3])
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        report.fail(f"{len(bad)}/{len(checks)} samples differ: {shown}{more}")


def check_int8(fp32, files: list[Path], fp32_results, report) -> None:
    """Where ``precision="auto"`` picks int8 for this model on this CPU, int8 scores of the
    samples must stay within :data:`INT8_TOLERANCE` of the fp32 ones (the int8 network is
    built from the fp32 detector's loaded checkpoint: the file is read once)."""
    from forensics_app.core.detector import Detector, auto_precision
    from forensics_app.core.scan import ScanOptions, scan_files
    from forensics_app.core.speed import SpeedLevers

    if auto_precision(fp32.checkpoint, fp32.device) != "int8":
        return
    try:
        # precision is the trace CNN's; other branches do not change with it
        q = Detector.from_loaded(fp32.checkpoint, device="cpu",
                                 levers=SpeedLevers(precision="int8"), with_branches=False)
        results = scan_files(files, q, ScanOptions(batch_size=SAMPLE_BATCH_SIZE, workers=1))
    except Exception as exc:  # noqa: BLE001 -- any failure of the int8 path is the finding
        report.fail(f"int8 (the default on this CPU) failed: {type(exc).__name__}: {exc}")
        return
    diffs = [abs(a.branch_probs.get("trace", a.prob_fake) - b.prob_fake)
             for a, b in zip(fp32_results, results, strict=True) if a.ok and b.ok]
    report.int8_max_diff = max(diffs) if diffs else None
    if report.int8_max_diff is not None and report.int8_max_diff > INT8_TOLERANCE:
        report.fail(f"int8 scores differ from fp32 by up to {report.int8_max_diff:.3f} "
                    f"(tolerance {INT8_TOLERANCE:g}); scan with --precision fp32")


def scores_agree(actual: float, expected: float, tolerance: float = DEFAULT_TOLERANCE,
                 rel_tolerance: float = DEFAULT_REL_TOLERANCE) -> bool:
    """Within ``tolerance`` absolutely, and the tails min(p, 1-p) within ``rel_tolerance``."""
    diff = abs(actual - expected)
    tail = min(expected, 1.0 - expected)
    return diff <= tolerance and diff <= rel_tolerance * tail + TAIL_FLOOR


def _compare(check: SampleCheck, entry: dict[str, Any], res, tolerance: float,
             rel_tolerance: float) -> None:
    if res.sha256 != entry.get("sha256"):
        check.problem = "changed on disk (SHA-256 differs)"
    elif not res.ok:
        check.problem = f"could not be scored ({res.error})"
    else:
        check.actual = float(res.prob_fake)
        if check.expected is None or not scores_agree(check.actual, check.expected,
                                                      tolerance, rel_tolerance):
            check.problem = (f"scored {check.actual:.6g}, expected {check.expected:.6g} "
                             f"(|diff| {check.diff:.1e})")


def check_window(model_path: Path, timeout_s: float = WINDOW_TIMEOUT_S) -> dict[str, Any]:
    """Open the real main window, wait until it has loaded ``model_path``, close it.

    Settings live in a temporary folder and are not saved; the window loads the model on the
    CPU. Times are seconds since this function was called; ``exposed_at`` is wall-clock time
    (for a launcher that measures start-up from outside the process).
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    t0 = time.perf_counter()
    from PySide6.QtCore import QEvent, QEventLoop, QObject, QTimer, qInstallMessageHandler
    from PySide6.QtGui import QGuiApplication

    from forensics_app.gui.app import build_parser, create_window, make_application

    messages: list[str] = []
    qInstallMessageHandler(lambda mode, _ctx, text: messages.append(f"{mode.name}: {text}"))
    info: dict[str, Any] = {"ok": False, "platform": os.environ["QT_QPA_PLATFORM"]}

    class ExposeWatcher(QObject):
        def eventFilter(self, obj, event):  # Qt names it so
            if event.type() == QEvent.Type.Expose and obj.isExposed() and "exposed_s" not in info:
                info["exposed_at"] = time.time()
                info["exposed_s"] = time.perf_counter() - t0
                info["torch_before_window"] = "torch" in sys.modules
            return False

    app = make_application()
    info["platform"] = QGuiApplication.platformName()
    with tempfile.TemporaryDirectory(prefix="forensics-selftest-") as tmp:
        args = build_parser().parse_args(["--settings", str(Path(tmp) / "settings.json"),
                                          "--no-save", "--model", str(model_path),
                                          "--device", "cpu"])
        window = create_window(args)
        loop = QEventLoop()
        window.models.load_finished.connect(loop.quit)
        watcher = ExposeWatcher()
        window.winId()  # create the native window so the filter sees its first expose
        window.windowHandle().installEventFilter(watcher)
        window.show()
        deadline = QTimer()
        deadline.setSingleShot(True)
        deadline.timeout.connect(loop.quit)
        deadline.start(int(timeout_s * 1000))
        if window.models.info is None and window.models.last_error is None:
            loop.exec()
        deadline.stop()
        info["model_ready_s"] = time.perf_counter() - t0
        models = window.models
        if models.info is not None:
            info["model"] = models.info.model_id
            info["ok"] = "exposed_s" in info
            if not info["ok"]:
                info["error"] = "the window was never exposed"
        else:
            info["error"] = (f"the window could not load the model: {models.last_error}"
                             if models.last_error else
                             f"the window did not load the model within {timeout_s:.0f} s")
        window.close()
        window.deleteLater()
        app.processEvents()
    qInstallMessageHandler(None)
    info["qt_messages"] = messages
    return info


def missing_gui_libraries(find=None) -> list[tuple[str, str]]:
    """(library, Debian package) for each xcb-plugin library the loader cannot find (Linux)."""
    if not sys.platform.startswith("linux"):
        return []
    find = find or ctypes.util.find_library
    return [(lib, pkg) for lib, pkg in XCB_LIBRARIES.items() if find(lib) is None]


# ---------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="forensics-app --self-test",
        description="Check the installed app: bundled model, sample scores, and the window.")
    p.add_argument("--self-test", action="store_true", help=argparse.SUPPRESS)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--gui", action="store_true",
                      help="also open the main window (offscreen) and close it")
    mode.add_argument("--gui-only", action="store_true",
                      help="only open the main window and report when it became visible")
    p.add_argument("--model", type=Path, help="checkpoint (default: the bundled model)")
    p.add_argument("--samples", type=Path,
                   help="folder of sample images with expected_scores.json "
                        "(default: the bundled samples)")
    p.add_argument("--timeout", type=float, default=WINDOW_TIMEOUT_S,
                   help="seconds the window may take to load the model")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="per-sample scores, Qt messages and tracebacks on stderr")
    return p


def run_self_test(argv: list[str] | None = None) -> int:
    """Entry point of ``--self-test``; returns the exit status (0 pass, 1 fail)."""
    from forensics_app.paths import bundled_model_path, samples_dir

    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    t0 = time.perf_counter()
    report = SelfTestReport()
    model = args.model or bundled_model_path()
    samples = args.samples or samples_dir()
    try:
        if not args.gui_only:
            check_samples(model, samples, samples / EXPECTED_FILE, report)
        missing = missing_gui_libraries() if (args.gui or args.gui_only) else []
        if missing:  # the offscreen window may still open; a desktop session would not
            text = ("missing system libraries for Qt's xcb plugin: "
                    + ", ".join(f"lib{lib}.so (package {pkg})" for lib, pkg in missing)
                    + "; install with: sudo apt-get install "
                    + " ".join(pkg for _lib, pkg in missing))
            platform = os.environ.get("QT_QPA_PLATFORM", "")
            if platform and not platform.startswith("xcb"):
                # A headless check (offscreen) does not load the xcb plugin: say it, pass.
                report.warnings.append(f"{text} (needed for a desktop window, not for "
                                       f"QT_QPA_PLATFORM={platform})")
            else:
                report.fail(text)
        if (args.gui or args.gui_only) and (report.ok or args.gui_only or missing):
            if not model.is_file():
                report.fail(f"no model at {model}")
            else:
                report.window = check_window(model, args.timeout)
                if not report.window["ok"]:
                    report.fail(report.window.get("error", "window check failed"))
    except Exception as exc:  # noqa: BLE001 -- the one place a self-test failure is reported
        report.fail(f"{type(exc).__name__}: {exc}")
        if args.verbose:
            traceback.print_exc()
    report.seconds = time.perf_counter() - t0
    if args.verbose:
        for s in report.samples:
            print(f"  {s.file}: expected {s.expected} actual {s.actual} "
                  f"{s.problem or 'ok'}", file=sys.stderr)
        for m in (report.window or {}).get("qt_messages", []):
            print(f"  Qt {m}", file=sys.stderr)
    print(json.dumps(report.to_json()) if args.json else report.line(), flush=True)
    return 0 if report.ok else 1
