"""Screenshot of the provenance details panel for the README (docs/screenshots/).

    xvfb-run -a -s "-screen 0 1600x900x24" .venv/bin/python scripts/provenance_screenshot.py

Scans, in place, a temporary folder of images made by ``tests/provenance_samples.py``
(Automatic1111 PNG, camera JPEG, XMP-labelled JPEG, C2PA-signed JPEG) plus the real ChatGPT
files of ../shared/data/provenance when present (read where they lie, never copied), selects
the ChatGPT file (or the C2PA fixture) and grabs the panel.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))
CHATGPT = REPO.parent / "shared" / "data" / "provenance" / "c2pa_chatgpt"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="checkpoint (default: the bundled one)")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = p.parse_args()

    import provenance_samples as samples
    from PySide6.QtCore import Qt
    from screenshots import settle, wait_for

    from forensics_app.gui.app import build_parser, create_window, make_application
    from forensics_app.paths import bundled_model_path

    app = make_application()
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "case-0412"
        folder.mkdir()
        for name, data in (("sd_parameters.png", samples.png_a1111()),
                           ("camera_upload.jpg", samples.jpeg_camera()),
                           ("labelled_ai.jpg", samples.jpeg_xmp()),
                           ("content_credentials.jpg", samples.c2pa_signed("jpeg")[0])):
            (folder / name).write_bytes(data)
        paths = [str(folder)] + ([str(f) for f in sorted(CHATGPT.glob("*.png"))][:1]
                                 if CHATGPT.is_dir() else [])
        model = args.model or bundled_model_path()
        window = create_window(build_parser().parse_args(
            ["--model", str(model), "--settings", str(Path(d) / "settings.json"), "--no-save"]))
        window.resize(1600, 860)
        window.move(0, 0)
        window.show()
        wait_for(app, lambda: window.models.info is not None or window.models.last_error,
                 300, "the model")
        window.scan_paths(paths)
        wait_for(app, lambda: not window.queue.busy, 600, "the scan")
        settle(app, 1.0)
        records = window.results.records()
        want = next((i for i, r in enumerate(records) if r.provenance and r.provenance.c2pa.readable
                     and "ChatGPT" in (r.provenance.c2pa.claim_generator or "")), None)
        if want is None:
            want = next(i for i, r in enumerate(records) if r.file_name == "content_credentials.jpg")
        window.resizeDocks([window.provenance_dock], [560], Qt.Orientation.Horizontal)
        window.select_source_row(want)
        settle(app, 1.0)
        args.out.mkdir(parents=True, exist_ok=True)
        window.provenance_dock.grab().save(str(args.out / "provenance_panel.png"))
        print(f"wrote provenance_panel.png to {args.out} "
              f"(row {records[want].file_name}: {records[want].provenance.summary})")
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
