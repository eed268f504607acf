"""Triage (``--mode sample``) against the full protocol on large labelled images (figures, not a
test).

    .venv/bin/python benchmarks/triage_agreement.py [--model CKPT] [--per-class 10] \
        [--grid 16x12] [--precision auto] [--test-root ../shared/data/dev_test]

dev_test's images are at most 1 MP, where triage scores every tile and *is* the full protocol.
To see what sampling does on camera-sized images, this builds large labelled mosaics from
dev_test: each 4096x3072 (12 MP) mosaic is a grid of 256^2 dev_test images of one class
(generated mosaics draw from every generator set, real ones from every set's reals; seeded;
an image repeats within a mosaic only where its class has fewer distinct images than cells --
dev_test has 161 distinct reals for 192 cells), saved losslessly as PNG so nothing but the
arrangement is added.
Each mosaic is scanned in both modes; the script prints the AP of each mode over the mosaics,
how often the verdicts agree, the score difference, and the time per mosaic.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from forensics_app.core.detector import Detector  # noqa: E402
from forensics_app.core.preprocess import PreprocessConfig  # noqa: E402
from forensics_app.core.scan import ScanOptions, scan_files  # noqa: E402
from forensics_app.core.speed import SpeedLevers  # noqa: E402
from forensics_app.paths import bundled_model_path  # noqa: E402

SIDE = 256


def class_files(root: Path, label: str) -> list[Path]:
    """Every image of one class over the sets, each file name once (several sets share reals)."""
    files: dict[str, Path] = {}
    for d in sorted(root.glob(f"*/{label}")):
        for p in sorted(d.iterdir()):
            if p.suffix.lower() in (".jpg", ".jpeg", ".png"):
                files.setdefault(p.name, p)
    return list(files.values())


def mosaic(files: list[Path], cols: int, rows: int, rng: np.random.Generator) -> Image.Image:
    canvas = Image.new("RGB", (cols * SIDE, rows * SIDE))
    picked = rng.choice(len(files), size=cols * rows, replace=len(files) < cols * rows)
    for k, i in enumerate(picked):
        with Image.open(files[i]) as im:
            tile = im.convert("RGB")
        if tile.size != (SIDE, SIDE):  # centre crop / pad: dev_test is 256^2 already
            tile = tile.crop(((tile.width - SIDE) // 2, (tile.height - SIDE) // 2,
                              (tile.width + SIDE) // 2, (tile.height + SIDE) // 2))
        canvas.paste(tile, ((k % cols) * SIDE, (k // cols) * SIDE))
    return canvas


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(labels, scores))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--test-root", type=Path, default=REPO.parent / "shared/data/dev_test")
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--grid", default="16x12", help="mosaic grid of 256^2 images, COLSxROWS")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--sample-tiles", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not args.test_root.is_dir():
        print(f"{args.test_root}: no dev_test here (needs ../shared/data)")
        return 2
    cols, rows = (int(v) for v in args.grid.split("x"))
    det = Detector.from_checkpoint(args.model or bundled_model_path(), "cpu",
                                   levers=SpeedLevers(precision=args.precision))
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        paths, labels = [], []
        for label, name in ((0, "0_real"), (1, "1_fake")):
            pool = class_files(args.test_root, name)
            for i in range(args.per_class):
                p = Path(tmp) / f"{name}_{i:02d}.png"
                mosaic(pool, cols, rows, rng).save(p, compress_level=1)
                paths.append(p)
                labels.append(label)
        out = {}
        for mode in ("full", "sample"):
            options = ScanOptions(preprocess=PreprocessConfig(mode=mode,
                                                              sample_tiles=args.sample_tiles))
            t0 = time.perf_counter()
            results = scan_files(paths, det, options)
            out[mode] = (results, (time.perf_counter() - t0) / len(paths))
    y = np.array(labels)
    full, sample = (np.array([r.prob_fake for r in out[m][0]]) for m in ("full", "sample"))
    agree = np.mean([a.verdict == b.verdict for a, b in zip(out["full"][0], out["sample"][0],
                                                          strict=True)])
    thr = det.checkpoint.threshold
    w, h = cols * SIDE, rows * SIDE
    print(f"model {det.model_id}, precision {det.levers.precision}; {len(paths)} mosaics of "
          f"{w}x{h} ({w * h / 1e6:.1f} MP, {cols * rows} dev_test images each), "
          f"{args.per_class} per class")
    print("\n| mode | tiles per mosaic | AP over mosaics | fakes called generated | "
          "reals called generated | s per mosaic |")
    print("|:--|--:|--:|--:|--:|--:|")
    for mode, s in (("full", full), ("sample", sample)):
        r0 = out[mode][0][0]
        print(f"| {r0.preprocessing} | {len(r0.tile_boxes)} | {100 * average_precision(y, s):.1f} | "
              f"{100 * np.mean(s[y == 1] >= thr):.0f}% | {100 * np.mean(s[y == 0] >= thr):.0f}% | "
              f"{out[mode][1]:.2f} |")
    d = np.abs(full - sample)
    print(f"\nverdicts agree on {100 * agree:.0f}% of mosaics; |P(sample) - P(full)| mean "
          f"{d.mean():.3f}, max {d.max():.3f}; triage is {out['full'][1] / out['sample'][1]:.1f}x "
          "faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
