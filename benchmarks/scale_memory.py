"""Peak memory of a scan over a mixed folder: many small images plus 100 MP JPEGs and
large PNGs (figures, not a test).

    .venv/bin/python benchmarks/scale_memory.py [--preset issue30] [--small 500] \
        [--big-jpegs 10] [--big-pngs 10] [--mode full|sample] [--model CKPT] [--flat 5000] \
        [--fixtures DIR] [--case] [--clip-graph GRAPH.onnx] [--ort-arena on|off]

Fixtures are generated once into ``--fixtures`` (default: a folder under the system temp
directory, reused between runs): 256^2 JPEG/PNG photos-like images, 11547x8660 JPEGs
(quality 90) and 8000x8000 RGB PNGs. ``--preset issue30`` is issue 30's scale folder instead:
300 small JPEGs, two 100 MP JPEGs and one 144 MP (12000x12000) PNG. Each scan runs
``forensics-scan`` in a fresh process and reads its peak RSS (VmHWM) at exit, and the peak RSS
*per stage*: a sampler thread reads VmRSS every 5 ms (and on entry to and exit from each stage)
and charges each sample to every stage running at that moment — decode (``load_evidence``),
semantic (the CLIP branch: view preparation and the ONNX Runtime forward), preprocess
(``prepare_image``), trace (the trace network's forward), case write (``--case``: rows stored
per batch). Decode runs on intake threads beside the trace forward, so a sample can count for
both; a stage's figure is the highest RSS seen while it ran, not what it alone holds
(``--sequential`` decodes between forward passes instead, so the stages stop overlapping).
``--clip-graph`` scans with another CLIP graph (e.g. the MatMulNBits 8-bit one of
``forensics_app.weight_quant``) in place of the installed one; ``--ort-arena off`` turns off
ONNX Runtime's CPU memory arena for its sessions. ``--flat N`` also scans N small files alone
and compares the peak with the ``--small`` run (the target: flat within 10 %).
The targets: issue 14, peak RSS <= 1.5 GB for 500 small + ten 100 MP JPEGs + ten 8000^2 PNGs;
issue 30, <= 1.5 GiB on its scale folder with both branches loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import os, sys, threading, time
sys.path.insert(0, sys.argv[1])
graph, arena = os.environ.get("BENCH_CLIP_GRAPH"), os.environ.get("BENCH_ORT_ARENA", "on")
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
active, peaks, lock = {}, {}, threading.Lock()


def sample():
    with open("/proc/self/statm") as fh:
        rss = int(fh.read().split()[1]) * PAGE
    with lock:
        for stage, n in active.items():
            if n:
                peaks[stage] = max(peaks.get(stage, 0), rss)


def staged(stage, fn):
    def wrapper(*a, **k):
        with lock:
            active[stage] = active.get(stage, 0) + 1
        sample()
        try:
            return fn(*a, **k)
        finally:
            sample()
            with lock:
                active[stage] -= 1
    return wrapper


def sampler():
    while True:
        sample()
        time.sleep(0.005)


import forensics_app.core.scan as scan_mod
from forensics_app.core import case_recorder
from forensics_app.core.branches import SemanticBranch
from forensics_app.core.clip_blocks import ClipBlocksBranch
from forensics_app.core.detector import Detector
from forensics_app.core.semantic import ClipEncoder
scan_mod.load_evidence = staged("decode", scan_mod.load_evidence)
scan_mod.prepare_image = staged("preprocess", scan_mod.prepare_image)
for cls, names in ((ClipEncoder, ("embed", "features")), (SemanticBranch, ("input_for",)),
                   (ClipBlocksBranch, ("input_for",))):
    for name in names:
        setattr(cls, name, staged("semantic", getattr(cls, name)))
Detector.predict_proba = staged("trace", Detector.predict_proba)
case_recorder.CaseRecorder.flush = staged("case write", case_recorder.CaseRecorder.flush)
if graph:
    import forensics_app.weights as weights
    weights.find_asset = lambda key, _f=weights.find_asset: Path(graph) if key == "clip-vitb16" else _f(key)
if arena == "off":
    from forensics_app.core.onnx_runtime import import_onnxruntime
    ort = import_onnxruntime()
    _session = ort.InferenceSession
    def no_arena(path, sess_options=None, **k):
        sess_options = sess_options or ort.SessionOptions()
        sess_options.enable_cpu_mem_arena = False
        return _session(path, sess_options=sess_options, **k)
    ort.InferenceSession = no_arena
threading.Thread(target=sampler, daemon=True).start()
from forensics_app.cli import main
t0 = time.perf_counter()
rc = main(sys.argv[2:])
took = time.perf_counter() - t0
sample()
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
stages = ",".join(f"{k.replace(' ', '_')}:{v / 2**20:.0f}" for k, v in peaks.items())
print(f'RESULT rc={rc} seconds={took:.1f} vmhwm_kib={hwm} stages={stages or "-"}', flush=True)
"""


def photo_like(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    low = rng.integers(30, 226, (height // 48 + 2, width // 48 + 2, 3), dtype=np.uint8)
    img = Image.fromarray(low).resize((width, height), Image.BICUBIC)
    noise = rng.normal(0, 6, (height, width, 1)).astype(np.int16)
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255).astype(np.uint8))


def big_image(width: int, height: int, seed: int) -> Image.Image:
    """A large image pasted from 4x4 distinct photo-like blocks (keeps generation memory low)."""
    canvas = Image.new("RGB", (width, height))
    bw, bh = -(-width // 4), -(-height // 4)
    for j in range(4):
        for i in range(4):
            canvas.paste(photo_like(bw, bh, seed * 100 + j * 4 + i), (i * bw, j * bh))
    return canvas


# Issue 30's scale folder: 300 small JPEGs, two 100 MP JPEGs, one 144 MP PNG.
PRESETS = {"issue30": {"small": 300, "small_format": "jpg", "big_jpegs": 2, "big_pngs": 1,
                       "png_size": (12000, 12000)}}


def make_fixtures(root: Path, small: int, jpegs: int, pngs: int, small_format: str = "mixed",
                  png_size: tuple[int, int] = (8000, 8000)) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {"small": [], "jpeg100": [], "png": []}
    sub = root / ("small" if small_format == "mixed" else f"small_{small_format}")
    sub.mkdir(parents=True, exist_ok=True)
    for i in range(small):
        ext = ".jpg" if small_format == "jpg" or (small_format == "mixed" and i % 2) else ".png"
        p = sub / f"s{i:05d}{ext}"
        if not p.exists():
            photo_like(256, 256, i).save(p)
        out["small"].append(p)
    for i in range(jpegs):
        p = root / f"big_{i:02d}.jpg"
        if not p.exists():
            big_image(11547, 8660, i).save(p, "JPEG", quality=90)
        out["jpeg100"].append(p)
    pw, ph = png_size
    for i in range(pngs):
        p = root / (f"big_{i:02d}.png" if png_size == (8000, 8000) else f"big_{pw}x{ph}_{i:02d}.png")
        if not p.exists():
            big_image(pw, ph, 50 + i).save(p, "PNG", compress_level=1)
        out["png"].append(p)
    return out


def scan_peak(files: list[Path], args, label: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        # The files themselves, not a folder of links: the scan refuses links that point out
        # of the folder it was given (core.discovery), which would leave nothing decoded.
        cmd = [sys.executable, "-c", CHILD, str(REPO), *map(str, files), "-q", "--mode",
               args.mode, "--jsonl", str(Path(tmp) / "r.jsonl")]
        if args.case:
            cmd += ["--case", str(Path(tmp) / "case")]
        if args.sequential:
            cmd += ["--lever", "overlap_decode=off"]
        if args.model:
            cmd += ["--model", str(args.model)]
        env = dict(os.environ, BENCH_ORT_ARENA=args.ort_arena)
        if args.clip_graph:
            env["BENCH_CLIP_GRAPH"] = str(args.clip_graph.resolve())
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
        if not line:
            print(proc.stdout[-2000:], proc.stderr[-2000:])
            raise SystemExit(f"{label}: scan failed")
        fields = dict(kv.split("=", 1) for kv in line[0].split()[1:])
        peak_mib = int(fields["vmhwm_kib"]) / 1024
        print(f"{label}: {len(files)} files, {fields['seconds']} s, exit {fields['rc']}, "
              f"peak RSS {peak_mib:.0f} MiB ({time.perf_counter() - t0:.0f} s with start-up)",
              flush=True)
        rows = [json.loads(ln) for ln in (Path(tmp) / "r.jsonl").read_text().splitlines()]
        errors = [r for r in rows if r.get("error")]
        print(f"  {len(rows)} rows, {len(errors)} error rows"
              + (f" (first: {errors[0]['error'][:120]})" if errors else ""), flush=True)
        if fields["stages"] != "-":
            stages = dict(kv.split(":") for kv in fields["stages"].split(","))
            print("  peak RSS while each stage ran (MiB): " + ", ".join(
                f"{k.replace('_', ' ')} {v}" for k, v in stages.items()), flush=True)
        return peak_mib, float(fields["seconds"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None,
                    help="a named folder (sets --small/--big-jpegs/--big-pngs and the PNG size)")
    ap.add_argument("--small", type=int, default=500)
    ap.add_argument("--big-jpegs", type=int, default=10)
    ap.add_argument("--big-pngs", type=int, default=10)
    ap.add_argument("--flat", type=int, default=0, help="also scan this many small files alone")
    ap.add_argument("--mode", default="sample", choices=("full", "sample", "tiles"))
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--case", action="store_true", help="also store the rows in a case")
    ap.add_argument("--sequential", action="store_true",
                    help="decode between forward passes (--lever overlap_decode=off), so each "
                         "stage's peak is its own")
    ap.add_argument("--clip-graph", type=Path, default=None,
                    help="scan with this CLIP graph instead of the installed one")
    ap.add_argument("--ort-arena", choices=("on", "off"), default="on",
                    help="ONNX Runtime's CPU memory arena for the CLIP session")
    ap.add_argument("--fixtures", type=Path,
                    default=Path(tempfile.gettempdir()) / "forensics_scale_fixtures")
    args = ap.parse_args(argv)
    preset = PRESETS.get(args.preset, {})
    if preset:
        args.small, args.big_jpegs, args.big_pngs = (preset[k] for k in
                                                     ("small", "big_jpegs", "big_pngs"))
    png_size = preset.get("png_size", (8000, 8000))
    t0 = time.perf_counter()
    fx = make_fixtures(args.fixtures, max(args.small, args.flat), args.big_jpegs, args.big_pngs,
                       preset.get("small_format", "mixed"), png_size)
    print(f"fixtures in {args.fixtures} ready after {time.perf_counter() - t0:.0f} s; mode "
          f"{args.mode}{', sequential' if args.sequential else ''}; CLIP graph "
          f"{args.clip_graph or 'installed'}; ORT arena "
          f"{args.ort_arena}; load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    mixed = fx["small"][: args.small] + fx["jpeg100"] + fx["png"]
    mp = png_size[0] * png_size[1] / 1e6
    peak, _ = scan_peak(mixed, args, f"mixed ({args.small} small + {len(fx['jpeg100'])} x 100 MP "
                                     f"JPEG + {len(fx['png'])} x {mp:.0f} MP PNG)")
    print(f"target <= 1536 MiB: {'met' if peak <= 1536 else 'NOT met'}")
    if args.flat:
        a, _ = scan_peak(fx["small"][: args.small], args, f"{args.small} small")
        b, _ = scan_peak(fx["small"][: args.flat], args, f"{args.flat} small")
        print(f"flatness {args.flat}/{args.small}: {b / a:.3f} (target <= 1.10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
