"""``forensics-serve``: the local HTTP API and web page (uvicorn).

Exit codes: 0 stopped normally, 2 usage error (a non-loopback host without a token, an
unusable token file, no model, a checkpoint that cannot be loaded).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
from pathlib import Path

from forensics_app import __version__
from forensics_app.core.safetext import escape_for_terminal
from forensics_app.engine_cli import add_engine_arguments, engine_settings

EXIT_OK, EXIT_USAGE = 0, 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="forensics-serve",
        description="Serve the detector on this machine: a JSON API and a drag-and-drop page.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; any "
                        "other address needs a token)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token-file", type=Path, metavar="FILE",
                   help="file holding the bearer token clients must send (default: the one "
                        "--make-token writes in the user config folder, used when it exists)")
    p.add_argument("--make-token", action="store_true",
                   help="write a new random token (mode 0600) to --token-file or the default "
                        "place, print where, and exit")
    p.add_argument("--model", type=Path, help="checkpoint (default: the bundled model)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--mode", choices=("full", "center-crop", "tiles", "sample"), default="full")
    p.add_argument("--tile-size", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="decode threads")
    p.add_argument("--data-dir", type=Path,
                   help="where batch scans are kept as cases (default: the user data folder)")
    p.add_argument("--scan-root", type=Path, metavar="DIR",
                   help="allow POST /api/v1/scans with {\"folder\": ...}: folders under DIR "
                        "are scanned in place (off by default)")
    p.add_argument("--max-request-mb", type=int, default=256,
                   help="largest request body (413 above; default 256)")
    p.add_argument("--queue-size", type=int, default=16,
                   help="requests that may wait for the model (429 above; default 16)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds an /analyze request waits for its answer (504 after)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_engine_arguments(p)
    return p


def _fail(message: str) -> int:
    print(escape_for_terminal(f"forensics-serve: {message}"), file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    from forensics_app.server.access import (
        AccessError,
        default_token_path,
        is_loopback,
        make_token,
        resolve_token,
    )

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.make_token:
        path = make_token(args.token_file or default_token_path())
        print(f"token written to {path} (mode 0600); clients send it as "
              "'Authorization: Bearer <token>'")
        return EXIT_OK
    for name in ("batch_size", "max_request_mb", "queue_size", "port"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.port > 65535:
        parser.error(f"--port must be between 1 and 65535, not {args.port}")
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        parser.error(f"--timeout must be a finite number of seconds > 0, not {args.timeout}")
    engine = engine_settings(parser, args)
    try:  # before the model loads: a server that would be exposed never starts
        token = resolve_token(args.host, args.token_file)
    except AccessError as exc:
        return _fail(str(exc))

    import uvicorn

    from forensics_app.core.detector import CheckpointError, Detector
    from forensics_app.core.heap import limit_heap_retention
    from forensics_app.core.session import ScanSettings
    from forensics_app.paths import bundled_model_path, user_data_dir
    from forensics_app.server.api import create_app
    from forensics_app.server.service import ServeLimits, ServeService

    limit_heap_retention()
    settings = ScanSettings(mode=args.mode, tile_size=args.tile_size,
                            batch_size=args.batch_size, workers=args.workers, **engine.scan)
    if args.scan_root is not None and not args.scan_root.is_dir():
        return _fail(f"--scan-root {args.scan_root} is not a folder")
    model_path = args.model or bundled_model_path()
    if not model_path.is_file():
        return _fail(f"no model at {model_path}; pass --model CHECKPOINT")
    data_dir = args.data_dir or user_data_dir() / "serve"
    try:  # before the model loads: batch scans would otherwise fail one by one
        (data_dir / "scans").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _fail(f"cannot use --data-dir {data_dir}: {exc.strerror or exc}")
    if not os.access(data_dir / "scans", os.W_OK | os.X_OK):
        return _fail(f"cannot use --data-dir {data_dir}: {data_dir / 'scans'} is not writable")
    try:
        detector = Detector.from_checkpoint(model_path, device=args.device,
                                            threads=engine.threads, levers=engine.levers)
    except (CheckpointError, RuntimeError, ValueError) as exc:
        return _fail(str(exc))
    limits = ServeLimits(max_request_bytes=args.max_request_mb * 1024 * 1024,
                         queue_size=args.queue_size, analysis_timeout_s=args.timeout)
    service = ServeService(detector, settings, data_dir, limits, model_path=model_path,
                           scan_root=args.scan_root)
    loopback = is_loopback(args.host)
    allowed = ["127.0.0.1", "localhost", "[::1]", "::1"] if loopback else None
    app = create_app(service, token=token, allowed_hosts=allowed)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    service.start()
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"forensics-serve: model {detector.model_id} on {detector.device_description}; "
          f"open http://{shown}:{args.port}/ ({'token required' if token else 'no token'})",
          file=sys.stderr)
    # SIGTERM (systemd, Docker, kill) stops as Ctrl-C does. uvicorn shuts HTTP down on either,
    # then raises the signal again under the handler it found: for SIGTERM that was the
    # default one, which killed the process before service.stop() could checkpoint the
    # running scan, mark its job and close its case. This handler makes it a KeyboardInterrupt.
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                    timeout_keep_alive=5, timeout_graceful_shutdown=10)
    except KeyboardInterrupt:
        pass  # a stop asked for (Ctrl-C, SIGTERM): the graceful stop below, exit 0
    finally:
        print("forensics-serve: stopping (running scan checkpointed, its job marked)",
              file=sys.stderr)
        service.stop()
        signal.signal(signal.SIGTERM, previous)
    return EXIT_OK


def _terminate(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
