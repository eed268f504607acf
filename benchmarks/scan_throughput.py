"""Scan throughput and memory: the engine against the model's limit and a naive loop.

On the same generated images (JPEG, quality 90, like the dev_test sets) it measures

  (a) bare forward: the detector on pre-made, pre-batched tensors -- the limit;
  (b) the engine end to end from files: ``scan_files`` (read + hash + decode + preprocess on
      intake threads, batched forward, result records);
  (c) a naive per-image loop: open, transform, forward with batch size 1, as a web app that
      handles one request per image does;

and prints images/s with the ratios (b)/(a) (target >= 0.9) and (b)/(c) (target >= 2). Then it
scans a small and a large set of tiny files, each in a fresh subprocess, and compares their
peak RSS (target: the large one within 10 % of the small one).

Figures, not a test. Example (a few minutes on 2 CPU cores):

    .venv/bin/python benchmarks/scan_throughput.py
    .venv/bin/python benchmarks/scan_throughput.py --model resources/models/detector.pt --n 300
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from forensics_app.core.architectures import build_model  # noqa: E402
from forensics_app.core.detector import (  # noqa: E402
    CHECKPOINT_FORMAT,
    CHECKPOINT_FORMAT_VERSION,
    Detector,
)
from forensics_app.core.loading import load_evidence  # noqa: E402
from forensics_app.core.preprocess import (  # noqa: E402
    IMAGENET_MEAN,
    IMAGENET_STD,
    PreprocessConfig,
    prepare_image,
)
from forensics_app.core.scan import ScanOptions, scan_files  # noqa: E402

FULL_RESNET50 = {"name": "resnet50", "num_outputs": 1, "input_transform": "none", "stages": 4}


def write_images(folder: Path, n: int, size: int, seed: int = 0,
                 exif: Image.Exif | None = None) -> list[Path]:
    """Photo-like test images: smooth colour fields plus sensor-like noise, saved as JPEG
    (with ``exif``, camera-style EXIF, so the provenance reader has work to do)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        base = rng.integers(0, 256, (size // 16 + 1, size // 16 + 1, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(base).resize((size, size), Image.BICUBIC), np.int16)
        img = np.clip(img + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)
        path = folder / f"img_{i:05d}.jpg"
        Image.fromarray(img).save(path, quality=90, **({"exif": exif} if exif else {}))
        paths.append(path)
    return paths


def random_checkpoint(path: Path, arch: dict) -> Path:
    """A full-size detector with random weights in this project's format (fp32)."""
    torch.manual_seed(0)
    model = build_model(arch)
    torch.save({"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_FORMAT_VERSION,
                "state_dict": model.state_dict(),
                "meta": {"architecture": arch, "version": "benchmark (random weights)"}}, path)
    return path


def bare_forward(detector: Detector, files: list[Path], batch_size: int):
    """(a) the detector alone on tensors prepared beforehand, in full batches."""
    cfg = PreprocessConfig()
    tensors = [prepare_image(load_evidence(f)[1], cfg).tensors[0] for f in files]
    batches = [torch.stack(tensors[i : i + batch_size]) for i in range(0, len(tensors), batch_size)]
    detector.predict_proba(batches[0])  # warm-up (oneDNN primitive creation)

    def run():
        return np.concatenate([detector.predict_proba(b) for b in batches])

    return run


def engine(detector: Detector, files: list[Path], options: ScanOptions):
    """(b) ``scan_files`` from the files on disk."""

    def run():
        return np.array([r.prob_fake for r in scan_files(files, detector, options)])

    return run


def naive_loop(detector: Detector, files: list[Path]):
    """(c) one image at a time, the way a one-request-per-image web service scores it."""
    from torchvision import transforms

    model = copy.deepcopy(detector.model).to(memory_format=torch.contiguous_format).eval()
    transform = transforms.Compose([transforms.ToTensor(),
                                    transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def score(path: Path) -> float:
        with Image.open(path) as img:
            x = transform(img.convert("RGB")).unsqueeze(0)
        with torch.no_grad():
            return float(torch.sigmoid(model(x))[0, 0])

    score(files[0])  # warm-up

    def run():
        return np.array([score(f) for f in files])

    return run


def measure(runs: dict, rounds: int) -> dict[str, tuple[float, float, np.ndarray]]:
    """Median wall and CPU time per benchmark over ``rounds``.

    Rounds interleave the benchmarks so a burst of load from other processes hits all of them
    alike. CPU time (all threads of this process) is the steadier figure on a shared machine.
    """
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    outputs: dict[str, np.ndarray] = {}
    for i in range(rounds):
        for name, run in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            outputs[name] = run()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            print(f"  round {i + 1}/{rounds} ({name}): {wall[name][-1]:.1f} s wall, "
                  f"{cpu[name][-1]:.1f} s CPU", file=sys.stderr, flush=True)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k]), outputs[k]) for k in runs}


def throughput(detector: Detector, files: list[Path], options: ScanOptions,
               args: argparse.Namespace) -> None:
    """Measure and print (a), (b), (c) and their ratios."""
    print(f"\nthroughput: {args.n} JPEG {args.size}x{args.size}, median of {args.repeat} "
          "interleaved round(s)")
    runs = {"a": bare_forward(detector, files, args.batch_size),
            "b": engine(detector, files, options),
            "c": naive_loop(detector, files)}
    figures = measure(runs, args.repeat)
    rate = {k: args.n / wall for k, (wall, _, _) in figures.items()}
    cpu_rate = {k: args.n / cpu for k, (_, cpu, _) in figures.items()}
    labels = {"a": "bare forward, pre-made tensors", "b": "engine end to end (scan_files)",
              "c": "naive per-image loop, batch 1"}
    print(f"{'':36} {'images/s':>9} {'images/CPU-s':>13}")
    for k in "abc":
        print(f"({k}) {labels[k]:<32}{rate[k]:9.2f} {cpu_rate[k]:13.2f}")
    p = {k: out for k, (_, _, out) in figures.items()}
    agree = max(np.abs(p["a"] - p["b"]).max(), np.abs(p["b"] - p["c"]).max())
    print(f"    scores agree across (a)/(b)/(c) within {agree:.1e}")
    print(f"\n(b)/(a) = {rate['b'] / rate['a']:.2f} wall, {cpu_rate['b'] / cpu_rate['a']:.2f} CPU"
          "  (target >= 0.9)")
    print(f"(b)/(c) = {rate['b'] / rate['c']:.2f} wall, {cpu_rate['b'] / cpu_rate['c']:.2f} CPU"
          "  (target >= 2)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def camera_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0131] = "Canon", "Canon EOS 5D Mark IV", "Firmware 1.0.4"
    sub = exif.get_ifd(0x8769)
    sub[0x9003], sub[0xA434] = "2019:06:01 14:03:22", "EF24-70mm f/2.8L II USM"
    exif.get_ifd(0x8825)[1] = "N"
    return exif


def provenance_cost(detector: Detector, files: list[Path], options: ScanOptions,
                    args: argparse.Namespace) -> None:
    """The engine with and without reading provenance at intake (target: cost <= 10 %)."""
    import dataclasses

    from forensics_app.core.provenance import read_provenance

    off = dataclasses.replace(options, provenance=False)
    print(f"\nprovenance cost: {args.n} JPEG {args.size}x{args.size} with camera EXIF, "
          f"median of {args.repeat} interleaved round(s)")
    figures = measure({"on": engine(detector, files, options),
                       "off": engine(detector, files, off)}, args.repeat)
    rate = {k: args.n / wall for k, (wall, _, _) in figures.items()}
    cpu_rate = {k: args.n / cpu for k, (_, cpu, _) in figures.items()}
    for k in ("off", "on"):
        print(f"  provenance {k:<3}  {rate[k]:7.2f} images/s  {cpu_rate[k]:7.2f} images/CPU-s")
    blobs = [f.read_bytes() for f in files[:50]]
    t0 = time.perf_counter()
    for data in blobs:
        read_provenance(data)
    per_file = (time.perf_counter() - t0) / len(blobs) * 1000
    print(f"  read_provenance alone: {per_file:.2f} ms per file")
    print(f"  cost: {100 * (1 - rate['on'] / rate['off']):+.1f} % wall, "
          f"{100 * (1 - cpu_rate['on'] / cpu_rate['off']):+.1f} % CPU  (target <= 10 %)")


def current_rss_mib() -> float | None:
    """Resident set size now (Linux /proc); None where unavailable."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mib() -> float:
    """Peak RSS of this process image.

    Linux's VmHWM, not ru_maxrss: after fork + exec, ru_maxrss keeps the *parent's* high-water
    mark, so every child of a big parent would report the same figure.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, else KiB


def rss_child(args: argparse.Namespace) -> None:
    """Subprocess body: scan a folder; print peak RSS and the RSS growth during the scan."""
    detector = Detector.from_checkpoint(args.checkpoint, device=args.device, threads=args.threads)
    files = sorted(Path(args.rss_child).iterdir())
    peak_loaded = peak_rss_mib()
    before = current_rss_mib()
    during = [before or 0.0]

    def sample(done: int, total: int) -> None:
        if done % 10 == 0 or done == total:
            during.append(current_rss_mib() or 0.0)

    t0 = time.perf_counter()
    results = scan_files(files, detector, ScanOptions(batch_size=args.batch_size,
                                                      workers=args.workers), progress=sample)
    elapsed = time.perf_counter() - t0
    print(json.dumps({"n": len(results), "ok": sum(r.ok for r in results),
                      "peak_mib": peak_rss_mib(), "peak_loaded_mib": peak_loaded,
                      "before_mib": before,
                      "growth_mib": max(during) - before if before else None,
                      "seconds": elapsed}))


def measure_rss(checkpoint: Path, folder: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--rss-child", str(folder), "--checkpoint", str(checkpoint),
           "--device", args.device, "--batch-size", str(args.batch_size),
           "--workers", str(args.workers)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="checkpoint to benchmark (default: a full "
                   "ResNet-50 with random weights, the product's architecture)")
    p.add_argument("--stages", type=int, default=4,
                   help="ResNet-50 stages of the random model (4 = full; fewer for a quick look)")
    p.add_argument("--n", type=int, default=300, help="images for the throughput runs")
    p.add_argument("--size", type=int, default=256, help="side of the throughput images")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="engine intake threads")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: the engine's)")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    p.add_argument("--repeat", type=int, default=1,
                   help="interleaved rounds of (a), (b), (c); each figure is the median")
    p.add_argument("--rss-small", type=int, default=500)
    p.add_argument("--rss-large", type=int, default=5000)
    p.add_argument("--rss-size", type=int, default=64, help="side of the RSS-run images")
    p.add_argument("--skip-rss", action="store_true")
    p.add_argument("--skip-throughput", action="store_true", help="only the RSS comparison")
    p.add_argument("--provenance-cost", action="store_true",
                   help="instead: the engine with vs without provenance reading (images carry "
                        "camera EXIF), then exit")
    p.add_argument("--rss-child", help=argparse.SUPPRESS)
    p.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rss_child:
        rss_child(args)
        return 0

    sys.stdout.reconfigure(line_buffering=True)  # figures appear as they are measured
    with tempfile.TemporaryDirectory(prefix="scan-bench-") as tmp:
        tmp = Path(tmp)
        checkpoint = args.model or random_checkpoint(tmp / "random_resnet50.pt",
                                                     {**FULL_RESNET50, "stages": args.stages})
        detector = Detector.from_checkpoint(checkpoint, device=args.device, threads=args.threads)
        files = [] if args.skip_throughput else write_images(
            tmp / "throughput", args.n, args.size,
            exif=camera_exif() if args.provenance_cost else None)
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads; "
              f"load average {os.getloadavg()[0]:.2f} (other jobs skew the figures)")
        print(f"model: {detector.model_id} ({detector.checkpoint.arch['name']}, "
              f"{detector.checkpoint.arch['stages']} stages) on {detector.device_description}")
        print(f"batch size {args.batch_size}, {args.workers} intake threads")

        options = ScanOptions(batch_size=args.batch_size, workers=args.workers)
        if args.provenance_cost:
            provenance_cost(detector, files, options, args)
            return 0
        if not args.skip_throughput:
            throughput(detector, files, options, args)
        if not args.skip_rss:
            small = write_images(tmp / "rss_small", args.rss_small, args.rss_size, seed=1)
            large = write_images(tmp / "rss_large", args.rss_large, args.rss_size, seed=2)
            r_small = measure_rss(checkpoint, small[0].parent, args)
            r_large = measure_rss(checkpoint, large[0].parent, args)
            for r in (r_small, r_large):
                growth = "" if r["growth_mib"] is None else (
                    f"; RSS {r['before_mib']:.0f} MiB before the scan, +{r['growth_mib']:.1f} MiB "
                    "during it")
                print(f"\npeak RSS scanning {r['n']:>5} files of {args.rss_size}^2: "
                      f"{r['peak_mib']:7.1f} MiB (peak after loading the model "
                      f"{r['peak_loaded_mib']:.1f} MiB; {r['n'] / r['seconds']:.0f} images/s{growth})",
                      end="")
            ratio = r_large["peak_mib"] / r_small["peak_mib"]
            print(f"\n\npeak RSS {args.rss_large} / {args.rss_small} files = {ratio:.3f}  "
                  f"(target <= 1.10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
