"""Cost of camera photos per mode, and what each speed lever does (figures, not a test).

    .venv/bin/python benchmarks/camera_photo_speed.py --model resources/models/detector.pt \
        [--sizes 12,24] [--modes full,sample] [--precisions fp32,int8] [--levers] [--int8] \
        [--threads N]

1. Generates camera-like JPEGs (4000x3000 = 12 MP, 6000x4000 = 24 MP; smooth content, sensor
   noise, quality 92) in a temporary folder, scans each with ``scan_files`` in every mode and
   reports seconds per photo, and the bare forward pass over the very same tiles (pre-cut
   tensors, same batches): the engine/forward ratio is what contention affects least.
2. ``--levers``: each speed lever off/on on a 2048x1024 crop (8 tiles of 512), same model:
   channels-last, BatchNorm folding, inference mode, tile size, batch size, bf16 (when the
   CPU has it), torch.compile (when a compiler works), decode overlap.
3. ``--int8``: the app's int8 lever (torch.ao static int8 of the convolution trunk) against fp32,
   with the ranges the checkpoint carries; speed, and the score change on a 2048x1024 crop.

Model-agnostic: ``--model`` any checkpoint the app loads; without it, the bundled one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from forensics_app.core.detector import Detector  # noqa: E402
from forensics_app.core.loading import load_evidence  # noqa: E402
from forensics_app.core.preprocess import PreprocessConfig, prepare_image  # noqa: E402
from forensics_app.core.scan import ScanOptions, scan_files  # noqa: E402
from forensics_app.core.speed import SpeedLevers, cpu_has_native_bf16  # noqa: E402
from forensics_app.paths import bundled_model_path  # noqa: E402

SIZES = {12: (4000, 3000), 24: (6000, 4000), 50: (8660, 5774), 100: (11547, 8660)}


def camera_like(width: int, height: int, seed: int) -> Image.Image:
    """Smooth scene (upsampled low-res colour field) + per-pixel sensor noise, no repeats."""
    rng = np.random.default_rng(seed)
    low = rng.integers(30, 226, (height // 64 + 2, width // 64 + 2, 3), dtype=np.uint8)
    img = Image.fromarray(low).resize((width, height), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.int16)
    arr = arr + rng.normal(0, 6, (height, width, 1)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def make_photo(folder: Path, mp: int, seed: int = 0) -> Path:
    path = folder / f"camera_{mp}mp_{seed}.jpg"
    if not path.exists():
        camera_like(*SIZES[mp], seed).save(path, "JPEG", quality=92)
    return path


def bare_forward_s(det: Detector, path: Path, options: ScanOptions) -> float:
    """The forward pass alone over the scan's tiles (cut beforehand), batched as the scan."""
    _, img, _ = load_evidence(path, limits=options.decode_limits)
    prep = prepare_image(img, options.preprocess)
    tiles = prep.tensors
    shape = tiles[0].shape
    per_batch = max(1, min(options.batch_size, options.max_batch_pixels // (shape[-1] * shape[-2])))
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(tiles), per_batch):
        det.predict_proba(torch.stack(tiles[i : i + per_batch]))
    return time.perf_counter() - t0, time.process_time() - c0


def time_scan(det: Detector, files: list[Path], options: ScanOptions, repeat: int):
    times, cpu, results = [], [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        results = scan_files(files, det, options)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(times), results, min(cpu)


def per_mode(dets: list[Detector], folder: Path, sizes: list[int], modes: list[str],
             repeat: int, tile: int) -> None:
    print("\n| photo | precision | mode | tiles scored | engine s/photo (CPU s) | "
          "bare forward s (CPU s) | engine/forward (CPU) | P(generated) |")
    print("|:--|:--|:--|--:|--:|--:|--:|--:|")
    for mp, det in ((mp, det) for mp in sizes for det in dets):
        path = make_photo(folder, mp)
        full_p = None
        for mode in modes:
            options = ScanOptions(preprocess=PreprocessConfig(mode=mode, tile_size=tile))
            engine_s, (r,), engine_cpu = time_scan(det, [path], options, repeat)
            fwd, fwd_cpu = min(bare_forward_s(det, path, options) for _ in range(repeat))
            n = max(1, len(r.tile_boxes))
            full_p = r.prob_fake if mode == "full" else full_p
            delta = "" if mode == "full" or full_p is None else f" (full {full_p:.3f})"
            print(f"| {mp} MP {r.width}x{r.height} | {det.levers.precision} | {r.preprocessing} | "
                  f"{n} | {engine_s:.2f} "
                  f"({engine_cpu:.1f}) | {fwd:.2f} ({fwd_cpu:.1f}) | {engine_s / fwd:.2f} "
                  f"({engine_cpu / fwd_cpu:.2f}) | {r.prob_fake:.3f}{delta} |", flush=True)


def lever_table(ckpt_path: Path, folder: Path, threads: int, repeat: int,
                crop_size: tuple[int, int] = (2048, 1024)) -> None:
    """Each lever off/on on a crop (default 2048x1024: 8 tiles of 512, 2 of 1024, ...)."""
    crop = folder / f"crop_{crop_size[0]}x{crop_size[1]}.png"
    if not crop.exists():
        camera_like(*crop_size, 7).save(crop)
    base_opts = ScanOptions(preprocess=PreprocessConfig(mode="tiles", tile_size=512))

    def run(levers: SpeedLevers, options: ScanOptions, files=None) -> tuple[float, float]:
        det = Detector.from_checkpoint(ckpt_path, "cpu", threads=threads, levers=levers)
        time_scan(det, [crop], options, 1)  # warm-up (and compile, when on)
        _, res, cpu = time_scan(det, files or [crop], options, repeat)
        return cpu / len(files or [crop]), res[0].prob_fake

    ref_s, ref_p = run(SpeedLevers(), base_opts)
    print(f"\nLevers on a {crop_size[0]}x{crop_size[1]} crop, {threads} torch threads, best of {repeat}, process "
          f"CPU seconds (reference: defaults {ref_s:.2f} CPU s, P={ref_p:.4f}):\n")
    print("| lever | setting | CPU s per crop | vs defaults | P(generated) change |")
    print("|:--|:--|--:|--:|--:|")

    def row(name: str, setting: str, levers: SpeedLevers, options: ScanOptions) -> None:
        try:
            s, p = run(levers, options)
        except Exception as exc:  # noqa: BLE001 -- a lever that cannot run is a finding
            print(f"| {name} | {setting} | n/a | | {type(exc).__name__}: {str(exc)[:80]} |")
            return
        print(f"| {name} | {setting} | {s:.2f} | {s / ref_s:.2f}x | {p - ref_p:+.1e} |",
              flush=True)

    row("channels_last", "off", SpeedLevers(channels_last=False), base_opts)
    row("fold_batchnorm", "off", SpeedLevers(fold_batchnorm=False), base_opts)
    row("inference_mode", "off (no_grad)", SpeedLevers(inference_mode=False), base_opts)
    row("overlap_decode", "off", SpeedLevers(), ScanOptions(preprocess=base_opts.preprocess,
                                                             overlap_decode=False))
    for tile in (256, 1024, 2048):
        row("tile_size", str(tile), SpeedLevers(), ScanOptions(preprocess=PreprocessConfig(
            mode="tiles", tile_size=tile)))
    row("whole crop", "full (no tiles)", SpeedLevers(), ScanOptions(
        preprocess=PreprocessConfig(mode="full"), max_batch_pixels=1 << 30))
    for pixels in (1, 16):
        row("max_batch_pixels", f"{pixels} x 512^2", SpeedLevers(), ScanOptions(
            preprocess=base_opts.preprocess, max_batch_pixels=pixels * 512 * 512))
    if cpu_has_native_bf16():
        row("precision", "bf16", SpeedLevers(precision="bf16"), base_opts)
    else:
        print("| precision | bf16 | n/a | | this CPU has no native bf16 (AVX512-BF16/AMX): "
              "refused |")
    row("compile", "on (inductor)", SpeedLevers(compile=True), base_opts)


def int8_trial(ckpt_path: Path, folder: Path, threads: int, repeat: int) -> None:
    """The app's int8 lever (core/quantize.py) against fp32 on the same 8 tiles of 512."""
    test = torch.stack(prepare_image(camera_like(2048, 1024, 9), PreprocessConfig(
        mode="tiles")).tensors)

    def timed(det: Detector) -> tuple[float, np.ndarray]:
        out, best = None, []
        for _ in range(repeat + 1):
            t0 = time.process_time()
            out = np.concatenate([det.predict_proba(test[i : i + 4])
                                  for i in range(0, len(test), 4)])
            best.append(time.process_time() - t0)
        return min(best[1:]), out

    fp = Detector.from_checkpoint(ckpt_path, "cpu", threads=threads,
                                  levers=SpeedLevers(precision="fp32"))
    q = Detector.from_checkpoint(ckpt_path, "cpu", threads=threads,
                                 levers=SpeedLevers(precision="int8"))
    fp_s, fp_p = timed(fp)
    q_s, q_p = timed(q)
    diff = np.abs(q_p - fp_p)
    print(f"\nint8 ({q.int8_source}) on 8 tiles of 512: fp32 {fp_s:.2f} CPU s, int8 {q_s:.2f} "
          f"CPU s ({q_s / fp_s:.2f}x); per-tile |dP| mean {diff.mean():.3f}, max {diff.max():.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--sizes", default="12,24", help="photo sizes in MP: 12, 24, 50, 100")
    ap.add_argument("--modes", default="full,sample")
    ap.add_argument("--tile-size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--levers", action="store_true")
    ap.add_argument("--crop", default="2048x1024", help="crop of the lever table, WxH")
    ap.add_argument("--precisions", default="auto",
                    help="comma-separated forward precisions for the per-mode table "
                         "(auto, fp32, int8, bf16)")
    ap.add_argument("--int8", action="store_true", help="int8 against fp32 on one crop")
    ap.add_argument("--skip-modes", action="store_true")
    ap.add_argument("--no-heap-limit", action="store_true",
                    help="leave Pillow's block size as it is (the app raises it: core/heap.py)")
    ap.add_argument("--folder", type=Path, default=None, help="keep the generated photos here")
    args = ap.parse_args(argv)
    if not args.no_heap_limit:
        from forensics_app.core.heap import limit_heap_retention

        print(f"heap: {limit_heap_retention()['why']}")
    ckpt = args.model or bundled_model_path()
    threads = args.threads or torch.get_num_threads()
    det = Detector.from_checkpoint(ckpt, "cpu", threads=threads)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    print(f"model {det.model_id} ({det.checkpoint.arch}), {threads} torch threads, default "
          f"precision {det.levers.precision}{f' ({det.int8_source})' if det.int8_source else ''}, "
          f"load average {' '.join(load)}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if not args.skip_modes:
            dets = [Detector.from_checkpoint(ckpt, "cpu", threads=threads,
                                             levers=SpeedLevers(precision=p))
                    for p in args.precisions.split(",")]
            per_mode(dets, folder, [int(s) for s in args.sizes.split(",")],
                     args.modes.split(","), args.repeat, args.tile_size)
        if args.levers:
            cw, ch = (int(v) for v in args.crop.split("x"))
            lever_table(ckpt, folder, threads, args.repeat, (cw, ch))
        if args.int8:
            int8_trial(ckpt, folder, threads, args.repeat)
    print(f"load average after: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
