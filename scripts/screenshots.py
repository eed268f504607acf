"""Screenshots of the real window for the README (docs/screenshots/*.png).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py \
        [--model CHECKPOINT] [--images FOLDER] [--out docs/screenshots]
    xvfb-run -a -s "-screen 0 1024x700x24" .venv/bin/python scripts/screenshots.py \
        --size 1024x700 --main-only      # main_window_1024x700.png: the window on a small screen

Opens the main window as ``forensics-app`` does, scans a folder of sample images, selects a
row, opens the heatmap viewer and the Model dialog, and grabs each window. The scan goes into
a case (created through the New-case path) and three rows get an examiner's review, so the
Examiner column and the Review panel are shown; the empty window (start page) is grabbed first. Without ``--model`` it uses the bundled
checkpoint, or a random-weight stand-in when none is bundled yet (its scores mean nothing).
Without ``--images`` it gathers a few real and generated images per generator from
../shared/data/dev_test into a temporary folder (nothing is copied into the repository),
or generates synthetic images when that data set is absent. One deliberately corrupted file
shows how unreadable evidence is reported.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEV_TEST = REPO.parent / "shared" / "data" / "dev_test"
WINDOW_SIZE = (1600, 1000)
VIEWER_SIZE = (1180, 640)


def gather_samples(dest: Path, per_class: int = 3) -> Path:
    """A small mixed folder: real and generated images from several generators."""
    dest.mkdir(parents=True, exist_ok=True)
    if DEV_TEST.is_dir():
        for gen in sorted(p for p in DEV_TEST.iterdir() if p.is_dir()):
            for label, tag in (("1_fake", "generated"), ("0_real", "real")):
                files = sorted((gen / label).glob("*"))[:per_class]
                for i, f in enumerate(files):
                    shutil.copyfile(f, dest / f"{gen.name}_{tag}_{i:02d}{f.suffix.lower()}")
    else:
        code = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path;"
                "from helpers import make_images; make_images(Path(sys.argv[2]), 24, size=(256, 256))")
        subprocess.run([sys.executable, "-c", code, str(REPO / "tests"), str(dest)], check=True)
    (dest / "damaged_upload.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00 truncated")
    return dest


def stand_in_checkpoint(path: Path) -> Path:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path;"
            "from helpers import save_tiny_checkpoint; save_tiny_checkpoint(Path(sys.argv[2]))")
    subprocess.run([sys.executable, "-c", code, str(REPO / "tests"), str(path)], check=True)
    return path


def wait_for(app, condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.01)


def settle(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="checkpoint (default: the bundled one)")
    p.add_argument("--images", type=Path, help="folder of images to scan")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    p.add_argument("--row", type=int, help="row to select (default: the highest score)")
    p.add_argument("--size", default="1600x1000", help="window size WxH (clamped to the screen)")
    p.add_argument("--main-only", action="store_true",
                   help="only the main window, saved as main_window_<size>.png")
    args = p.parse_args()
    size = tuple(int(x) for x in args.size.lower().split("x"))

    from forensics_app.gui.app import build_parser, create_window, make_application
    from forensics_app.paths import bundled_model_path

    app = make_application()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model = args.model
        if model is None:
            model = bundled_model_path()
            if not model.is_file():
                print("no bundled model yet: using a random-weight stand-in (scores are noise)")
                model = stand_in_checkpoint(tmp / "stand-in.pt")
        images = args.images or gather_samples(tmp / "case-0412")
        window = create_window(build_parser().parse_args(
            ["--model", str(model), "--settings", str(tmp / "settings.json"), "--no-save"]))
        window.resize(*size)
        window.move(0, 0)
        window.show()
        window.fit_to_screen()
        wait_for(app, lambda: window.models.info is not None or window.models.last_error,
                 300, "the model")
        if window.models.info is None:
            print(f"model failed: {window.models.last_error}")
            return 2
        args.out.mkdir(parents=True, exist_ok=True)
        settle(app, 0.8)
        if not args.main_only:
            window.grab().save(str(args.out / "start_page.png"))
        from forensics_app.core.review import ReviewStatus
        from forensics_app.gui.case_dialog import CaseDetails, create_case

        create_case(window, CaseDetails("2026-0412", "E. Ames", "uploads seized 2 Dec",
                                        tmp / "cases" / "2026-0412"))
        window.browser.set_folder(str(images))
        window.scan_paths([str(images)])
        wait_for(app, lambda: not window.queue.busy, 600, "the scan")
        settle(app, 1.5)  # thumbnails

        records = window.results.records()
        row = args.row
        if row is None:
            scored = [(r.prob_fake, i) for i, r in enumerate(records) if r.ok]
            row = max(scored)[1]
        ok_rows = sorted((r.prob_fake, i) for i, r in enumerate(records) if r.ok)
        window.reviews.act_all_copies.setChecked(False)
        for i, status, note, tag in (
                (ok_rows[0][1], ReviewStatus.CONFIRMED_GENERATED,
                 "diffusion artefacts in the hands; detector missed it", "hands"),
                (ok_rows[len(ok_rows) // 2][1], ReviewStatus.NEEDS_SECOND_OPINION,
                 "ask the imaging lab", "")):
            window.select_source_row(i)
            window.reviews.change([records[i]], status=status, note=note,
                                  add_tags=[tag] if tag else [])
        window.select_source_row(row)
        window.reviews.change([records[row]], status=ReviewStatus.CONFIRMED_GENERATED,
                              bookmarked=True, add_tags=["batch-7"])
        window.review_dock.raise_()
        settle(app, 0.8)
        if args.main_only:
            name = f"main_window_{size[0]}x{size[1]}.png"
            window.grab().save(str(args.out / name))
            print(f"wrote {name} ({window.width()}x{window.height()}) to {args.out}")
            window.close()
            return 0
        window.show_heatmap()
        viewer = window.heatmap_viewer
        viewer.resize(*VIEWER_SIZE)
        viewer.move(110, 120)
        wait_for(app, lambda: viewer.data is not None, 300, "the heatmap")
        viewer.linker.fit()
        settle(app, 1.0)

        viewer.hide()  # the main window alone, then the viewer alone
        settle(app, 0.5)
        window.grab().save(str(args.out / "main_window.png"))
        viewer.show()
        viewer.linker.fit()
        settle(app, 0.8)
        viewer.grab().save(str(args.out / "heatmap.png"))
        viewer.hide()
        dialog = window.show_model_dialog()
        dialog.move(160, 60)
        settle(app, 0.8)
        dialog.grab().save(str(args.out / "model_dialog.png"))
        print(f"wrote main_window.png, heatmap.png and model_dialog.png to {args.out} "
              f"({len(records)} rows, model {window.models.info.model_id})")
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
