"""Grad-CAM of a 100 MP image: peak memory and time per tile (figures, not a test).

    .venv/bin/python benchmarks/gradcam_memory.py [--image BIG.jpg] [--max-tiles 24] [--model CKPT]

Runs the heat-map path the GUI uses (``core.gradcam.tiled_gradcam``: decode once, Grad-CAM
one full-resolution tile at a time, placed into a 16 MP display picture) on a generated
11547x8660 JPEG, or ``--image``. ``--max-tiles`` computes only the first N tiles (spread over
the grid) to keep the run short: the display arrays are allocated for the full extent up
front, so the peak does not grow with the tile count; the full time is extrapolated.
Target (issue 14): peak RSS <= 1.5 GB.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def vmhwm_mib() -> float:
    line = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0]
    return int(line.split()[1]) / 1024


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import torch
    from scale_memory import big_image

    from forensics_app.core.detector import load_checkpoint
    from forensics_app.core.gradcam import cam_model_copy, colour_map, tiled_gradcam
    from forensics_app.core.loading import load_evidence
    from forensics_app.core.preprocess import PreprocessConfig, prepare_image
    from forensics_app.paths import bundled_model_path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=Path, default=None)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--max-tiles", type=int, default=24)
    args = ap.parse_args(argv)
    from forensics_app.core.heap import limit_heap_retention

    limit_heap_retention()  # as the GUI does at start-up
    image = args.image
    if image is None:
        image = Path(tempfile.gettempdir()) / "forensics_scale_fixtures" / "big_00.jpg"
        if not image.exists():
            image.parent.mkdir(parents=True, exist_ok=True)
            big_image(11547, 8660, 0).save(image, "JPEG", quality=90)
    ckpt = load_checkpoint(args.model or bundled_model_path())
    model = cam_model_copy(ckpt.model)
    base = vmhwm_mib()
    t0 = time.perf_counter()
    _, img, err = load_evidence(image)
    if err is not None:
        raise SystemExit(err)
    prepared = prepare_image(img, PreprocessConfig())
    del img
    n_all = prepared.n_tiles
    if args.max_tiles and n_all > args.max_tiles:
        step = n_all / args.max_tiles
        prepared.boxes = [prepared.boxes[int(i * step)] for i in range(args.max_tiles)]
    t1 = time.perf_counter()
    cam = tiled_gradcam(model, prepared, ckpt.fake_index)
    prepared.release()  # then the display arrays, as the GUI's heat-map worker builds them
    rgb = colour_map(cam.heat)
    rgba = np.concatenate([rgb, np.where(cam.analysed, 255, 0).astype(np.uint8)[..., None]], 2)
    del rgb
    t2 = time.perf_counter()
    per_tile = (t2 - t1) / prepared.n_tiles
    print(f"{image.name} {prepared.scored_size[0]}x{prepared.scored_size[1]}: {prepared.n_tiles} "
          f"of {n_all} tiles in {t2 - t1:.1f} s ({per_tile:.2f} s/tile, full extent ~"
          f"{per_tile * n_all:.0f} s), decode {t1 - t0:.1f} s; display {cam.image.shape[1]}x"
          f"{cam.image.shape[0]} (scale {cam.scale:.2f}), colour map {rgba.shape}; "
          f"peak RSS {vmhwm_mib():.0f} MiB (before the image: {base:.0f} MiB); "
          f"{torch.get_num_threads()} torch threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
