"""Application entry point: ``forensics-app`` / ``python -m forensics_app``.

Only Qt and the light parts of the package are imported here; torch loads in a worker
thread once the window is on screen (see ``benchmarks/gui_startup.py``).
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import sys
from pathlib import Path

from forensics_app import APP_NAME, __version__

LOG_FILE = "forensics-app.log"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="forensics-app",
                                description="Desktop detector of AI-generated images.")
    p.add_argument("paths", nargs="*", type=Path, help="files or folders to queue at start")
    p.add_argument("--model", type=Path, help="checkpoint to use this session "
                                              "(default: the last one chosen, else the bundled model)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="override the saved device")
    p.add_argument("--settings", type=Path,
                   help="settings file (default: settings.json in the user config folder)")
    p.add_argument("--no-save", action="store_true", help="do not write settings on exit")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # handled before the window starts (forensics_app.__main__); listed so --help shows it
    p.add_argument("--self-test", action="store_true",
                   help="score the bundled samples without a window, compare them with the "
                        "scores recorded at export, print PASS/FAIL and exit "
                        "(`forensics-app --self-test --help` for its options)")
    return p


def configure_logging(log_dir: Path | None = None) -> Path | None:
    """Log to a rotating file in the platformdirs log folder (and warnings to stderr)."""
    from forensics_app.paths import user_log_dir

    root = logging.getLogger()
    root.setLevel(logging.INFO)
    stderr = logging.StreamHandler()
    stderr.setLevel(logging.WARNING)
    root.addHandler(stderr)
    try:
        path = (log_dir or user_log_dir()) / LOG_FILE
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3,
                                                       encoding="utf-8")
    except OSError as exc:
        logging.getLogger(__name__).warning("no log file: %s", exc)
        return None
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    root.addHandler(handler)
    return path


def default_torch_threads() -> int:
    """Intra-op threads for the detector, chosen from the usable cores
    (:func:`forensics_app.core.speed.choose_threads`): every core up to 7, all but one from 8.

    One torch thread (the old choice on 2 cores: "all but one") halved the GUI's throughput
    against the CLI's; the event loop stays within its 50 ms stall target with every core
    busy (benchmarks/gui_responsiveness.py).
    """
    from forensics_app.core.speed import choose_threads

    return choose_threads(gui=True).torch_threads


def create_window(args: argparse.Namespace):
    """The main window as ``run_app`` builds it (also used by benchmarks and screenshots)."""
    from forensics_app.gui.main_window import MainWindow
    from forensics_app.gui.settings import AppSettings, default_settings_path

    settings_path = args.settings or default_settings_path()
    window = MainWindow(
        settings=AppSettings.load(settings_path),
        settings_path=None if args.no_save else settings_path,
        model_path=str(args.model) if args.model else None,
        device=args.device,
        threads=default_torch_threads(),
    )
    if args.paths:
        window.scan_paths([str(p) for p in args.paths])
    return window


def make_application():
    """The QApplication as the app configures it (names used by Qt, consistent style)."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName("Forensics App")
    app.setApplicationVersion(__version__)
    app.setStyle("Fusion")
    return app


def run_app(argv: list[str] | None = None) -> int:
    from forensics_app.core.heap import limit_heap_retention

    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    limit_heap_retention()  # freed image memory goes back to the OS (core/heap.py)
    app = make_application()
    log_path = configure_logging()
    logging.getLogger(__name__).info("starting %s %s (log %s)", APP_NAME, __version__, log_path)
    window = create_window(args)
    window.show()
    _close_on_sigint(app)
    return app.exec()


def _close_on_sigint(app) -> None:
    """Ctrl+C in the terminal closes the window properly (settings saved, workers stopped)."""
    import signal

    from PySide6.QtCore import QTimer

    signal.signal(signal.SIGINT, lambda *_: app.closeAllWindows())
    timer = QTimer(app)  # lets the interpreter run its signal handlers while Qt waits
    timer.timeout.connect(lambda: None)
    timer.start(250)
