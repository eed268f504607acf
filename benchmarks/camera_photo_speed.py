"""The one speed protocol: seconds per camera photo, per stage and end to end, with the
machine it ran on (figures, not a test). Every per-photo figure in the README and the model card
comes from this script.

    .venv/bin/python benchmarks/camera_photo_speed.py --model resources/models/detector.pt \
        [--mp 12] [--photos 5] [--threads N] [--no-cli] [--modes-table] [--levers] [--int8]

Prints first what decides the figures: CPU model, the ISA flags that matter (avx2, avx512f,
avx512_vnni, avx_vnni, amx), the ISA torch dispatches to (``torch.backends.cpu.
get_cpu_capability()``, ``ATEN_CPU_CAPABILITY``) and the one oneDNN reports (``ONEDNN_VERBOSE``
in a child process; ``ONEDNN_MAX_CPU_ISA``), the onnxruntime version (its MLAS kernels follow
CPUID and cannot be limited by a variable), threads, and the load average before the run: a
figure taken with load average >= 0.5 is marked LOADED and must not be quoted.

Protocol (issue 30): ``--photos`` (>= 5) distinct camera-like JPEGs of ``--mp`` megapixels at
full resolution (mode ``full``), both branches, Grad-CAM off. Per stage, each photo timed on
its own with the functions the engine calls — decode (read + hash + decode), provenance,
preprocess, semantic (views + CLIP + head), trace (the trace network over the scan's tiles,
batched as the scan batches them), case write (one row into a case) — min / median / max over
the photos; then the engine (``scan_files``) per photo, whose median the stage sum is checked
against; then ``forensics-scan`` end to end as (4 photos − 1 photo) / 3 over two fresh
processes, so model load and start-up cancel out.

To compare ISAs on one machine, limit torch and rerun:
``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`` (onnxruntime is not limited by them).

Extras kept from the earlier benchmark: ``--modes-table`` (engine vs bare forward per mode),
``--levers`` (each speed lever off/on on a crop), ``--int8`` (int8 against fp32).
"""

from __future__ import annotations

import argparse
import os
import platform
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

from forensics_app.core.case import Case, detector_facts  # noqa: E402
from forensics_app.core.detector import Detector  # noqa: E402
from forensics_app.core.loading import load_evidence  # noqa: E402
from forensics_app.core.preprocess import PreprocessConfig, prepare_image  # noqa: E402
from forensics_app.core.provenance import read_provenance  # noqa: E402
from forensics_app.core.scan import ScanOptions, scan_files  # noqa: E402
from forensics_app.core.speed import SpeedLevers, cpu_has_native_bf16  # noqa: E402
from forensics_app.paths import bundled_model_path  # noqa: E402

SIZES = {2: (1632, 1224), 12: (4000, 3000), 24: (6000, 4000), 50: (8660, 5774),
         100: (11547, 8660)}


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


ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile",
             "amx_int8", "amx_bf16")
LOADED = 0.5  # load average at or above which a figure must not be quoted (issue 30)


def cpu_facts() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.machine()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, [f for f in ISA_FLAGS if f in flags]


def onednn_isa() -> str:
    """The ISA oneDNN dispatches to, as it reports it with ONEDNN_VERBOSE (a child process, so
    this one's oneDNN state is untouched; the environment's ONEDNN_MAX_CPU_ISA applies)."""
    code = ("import torch; torch.nn.functional.conv2d(torch.zeros(2, 64, 56, 56), "
            "torch.zeros(64, 64, 3, 3))")  # large enough that torch hands it to oneDNN
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=dict(os.environ, ONEDNN_VERBOSE="1", DNNL_VERBOSE="1"),
                             timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({type(exc).__name__})"
    isa = [ln.split("isa:", 1)[1].strip() for ln in out.splitlines() if "isa:" in ln]
    return isa[0] if isa else "not reported (oneDNN not used by this torch build?)"


def machine_header(threads: int, ort_threads: int | None) -> float:
    """Print what decides the figures; returns the 1-minute load average."""
    from forensics_app.core.onnx_runtime import import_onnxruntime

    ort = import_onnxruntime()
    model, flags = cpu_facts()
    load = os.getloadavg()
    print(f"CPU: {model}; {os.cpu_count()} logical cores; ISA flags: {', '.join(flags) or 'none'}")
    print(f"torch {torch.__version__}: ATen CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()} (ATEN_CPU_CAPABILITY="
          f"{os.environ.get('ATEN_CPU_CAPABILITY', 'unset')}); oneDNN ISA {onednn_isa()} "
          f"(ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset')})")
    print(f"onnxruntime {ort.__version__}: MLAS picks its kernels from CPUID (not limited by "
          f"the variables above)")
    print(f"threads: torch {threads}, onnxruntime {ort_threads or 'n/a'} intra-op; load average "
          f"before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
          + (f" -- LOADED (>= {LOADED}): do not quote these figures" if load[0] >= LOADED
             else ""))
    return load[0]


def _spread(values: list[float]) -> str:
    return (f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}")


def stage_times(det: Detector, path: Path, options: ScanOptions, case: Case | None,
                scan_id: int | None) -> dict[str, float]:
    """Seconds per stage for one photo, each stage with the function the engine calls."""
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    evidence, img, err = load_evidence(path, limits=options.decode_limits)
    t["decode"] = time.perf_counter() - t0
    if err is not None:
        raise SystemExit(f"{path}: {err.reason}")
    data = path.read_bytes()
    t0 = time.perf_counter()
    read_provenance(data, options.provenance_options)
    t["provenance"] = time.perf_counter() - t0
    del data
    t0 = time.perf_counter()
    for branch in det.branches.values():
        inputs = [branch.input_for(img)]
        branch.assess(inputs) if hasattr(branch, "assess") else branch.logits(inputs)
    t["semantic"] = time.perf_counter() - t0
    t0 = time.perf_counter()  # the plan and the tiles' tensors (the engine cuts them lazily)
    prep = prepare_image(img, options.preprocess)
    tiles = [prep.tile(i) for i in range(prep.n_tiles)]
    t["preprocess"] = time.perf_counter() - t0
    del img
    prep.release()
    shape = tiles[0].shape
    per_batch = max(1, min(options.batch_size,
                           options.max_batch_pixels // (shape[-1] * shape[-2])))
    t0 = time.perf_counter()
    for i in range(0, len(tiles), per_batch):
        det.predict_proba(torch.stack(tiles[i:i + per_batch]))
    t["trace"] = time.perf_counter() - t0
    del tiles
    if case is not None:
        (res,) = scan_files([path], det, options)
        t0 = time.perf_counter()
        case.add_results(scan_id, [res])
        t["case write"] = time.perf_counter() - t0
    return t


def cli_four_minus_one(photos: list[Path], model: Path, threads: int,
                       mode: str) -> tuple[float, float, float]:
    """``forensics-scan`` wall seconds on 1 and on 4 photos (fresh processes) and the
    per-photo figure (t4 - t1) / 3: start-up and model load cancel out."""
    walls = []
    for n in (1, 4):
        with tempfile.TemporaryDirectory() as out:  # reports outside the evidence folder
            cmd = [sys.executable, "-m", "forensics_app.cli", *map(str, photos[:n]), "-q",
                   "--model", str(model), "--mode", mode, "--threads", str(threads),
                   "--jsonl", str(Path(out) / "r.jsonl")]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            walls.append(time.perf_counter() - t0)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"forensics-scan failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return walls[0], walls[1], (walls[1] - walls[0]) / 3


def protocol(ckpt: Path, det: Detector, folder: Path, mp: int, n_photos: int, threads: int,
             mode: str, run_cli: bool) -> None:
    photos = [make_photo(folder, mp, seed) for seed in range(max(n_photos, 4))]
    options = ScanOptions(preprocess=PreprocessConfig(mode=mode))
    w, h = SIZES[mp]
    print(f"\nProtocol: {len(photos)} camera-like {mp} MP JPEGs ({w}x{h}, quality 92), mode "
          f"{mode}, branches: trace + {', '.join(det.branches) or 'none'}; Grad-CAM off; "
          f"precision {det.levers.precision}")
    # A warm-up photo: first-call costs (allocators, JIT, page faults) stay out of the figures.
    scan_files([make_photo(folder, mp, 99)], det, options)
    per: dict[str, list[float]] = {}
    engine: list[float] = []
    with tempfile.TemporaryDirectory() as case_dir, Case.create(Path(case_dir) / "case") as case:
        scan_id = case.begin_scan(detector_facts(det), options.record(), [str(folder)], False,
                                  n_files=len(photos))
        for p in photos:
            for k, v in stage_times(det, p, options, case, scan_id).items():
                per.setdefault(k, []).append(v)
            t0 = time.perf_counter()
            scan_files([p], det, options)
            engine.append(time.perf_counter() - t0)
    print(f"\n| stage | s per photo min / median / max ({len(photos)} photos) |")
    print("|:--|--:|")
    for k, v in per.items():
        print(f"| {k} | {_spread(v)} |")
    print("| Grad-CAM | off (not part of a scan) |")
    total = sum(statistics.median(v) for k, v in per.items())
    print(f"| **sum of stage medians** | {total:.3f} |")
    print(f"| engine (scan_files, one photo, model loaded) | {_spread(engine)} |")
    print(f"engine median / stage sum: {statistics.median(engine) / total:.2f} (the engine "
          "overlaps decode, provenance and the semantic branch with the trace forward; above 1 "
          "is its overhead or contention for the cores)")
    if run_cli:
        t1, t4, each = cli_four_minus_one(photos, ckpt, threads, mode)
        print(f"forensics-scan end to end: 1 photo {t1:.2f} s, 4 photos {t4:.2f} s -> "
              f"(4 - 1) / 3 = {each:.3f} s per photo")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--mp", type=int, default=12, choices=sorted(SIZES),
                    help="photo size of the protocol, megapixels")
    ap.add_argument("--photos", type=int, default=5, help="photos of the protocol (>= 5)")
    ap.add_argument("--mode", default="full", help="scan mode of the protocol (issue 30: full)")
    ap.add_argument("--no-cli", action="store_true", help="skip the forensics-scan 4-1 figure")
    ap.add_argument("--skip-protocol", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--modes-table", action="store_true",
                    help="also: engine vs bare forward per mode and size (--sizes, --modes)")
    ap.add_argument("--sizes", default="12,24", help="photo sizes in MP: 12, 24, 50, 100")
    ap.add_argument("--modes", default="full,sample")
    ap.add_argument("--tile-size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--levers", action="store_true")
    ap.add_argument("--crop", default="2048x1024", help="crop of the lever table, WxH")
    ap.add_argument("--precisions", default="auto",
                    help="comma-separated forward precisions for the per-mode table "
                         "(auto, fp32, int8, bf16)")
    ap.add_argument("--int8", action="store_true", help="int8 against fp32 on one crop")
    ap.add_argument("--no-heap-limit", action="store_true",
                    help="leave Pillow's block size as it is (the app raises it: core/heap.py)")
    ap.add_argument("--folder", type=Path, default=None, help="keep the generated photos here")
    args = ap.parse_args(argv)
    if args.photos < 5:
        print(f"note: --photos {args.photos} is below the protocol's 5: a smoke run, not a "
              "figure to quote")
    if not args.no_heap_limit:
        from forensics_app.core.heap import limit_heap_retention

        print(f"heap: {limit_heap_retention()['why']}")
    ckpt = args.model or bundled_model_path()
    threads = args.threads or torch.get_num_threads()
    det = Detector.from_checkpoint(ckpt, "cpu", threads=threads)
    ort_threads = next((getattr(getattr(b, "encoder", None), "threads", None)
                        for b in det.branches.values()), None)
    load = machine_header(threads, ort_threads)
    print(f"model {det.model_id} ({det.checkpoint.arch}), default precision "
          f"{det.levers.precision}{f' ({det.int8_source})' if det.int8_source else ''}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if not args.skip_protocol:
            protocol(ckpt, det, folder, args.mp, args.photos, threads, args.mode,
                     not args.no_cli)
        if args.modes_table:
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
    after = os.getloadavg()[0]
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
          + (" -- LOADED: do not quote these figures" if max(load, after) >= LOADED else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
