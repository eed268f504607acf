"""Size and start-up of the built app, measured from outside the process.

    .venv/bin/python benchmarks/frozen_startup.py --exe dist/ForensicsApp/ForensicsApp \
        --bundle dist/ForensicsApp [--runs 3]
    .venv/bin/python benchmarks/frozen_startup.py --source     # python -m forensics_app

Start-up uses the method of ``benchmarks/gui_startup.py``, but the child is the executable
itself, so the bootloader and every import from the bundle are counted: each run launches
``EXE --self-test --gui-only --json`` (the real main window, offscreen unless
QT_QPA_PLATFORM is set, settings and logs in a temporary folder); the child reports the
wall-clock moment its window was first exposed, minus the moment just before the launch.
Also reported: when the window had the model loaded (torch loads in a worker after the window
is up) and whether torch was imported before the window showed. The first launch is shown
apart: it is the coldest start measurable without dropping the OS file cache, which would
disturb everything else running on the machine. ``--selftest-runs`` times the full
``--self-test`` (scan of the samples, no window) the same way.

Size: bytes of the bundle folder, split into CUDA libraries (the nvidia-* wheels' libraries
and torch's own CUDA libraries), the rest of torch, Qt, and everything else.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from fnmatch import fnmatch
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# File names of CUDA libraries, wherever they sit in the bundle (Linux and Windows names).
CUDA_PATTERNS = ("*cuda*", "*cudnn*", "*cublas*", "*cufft*", "*curand*", "*cusolver*",
                 "*cusparse*", "*nccl*", "*nvrtc*", "*nvjitlink*", "*nvshmem*", "*cufile*",
                 "*cupti*", "*nvperf*", "*nvtoolsext*", "*nvtx*", "*caffe2_nvrtc*")


def category(rel: Path) -> str:
    parts = [p.lower() for p in rel.parts]
    name = parts[-1]
    if "nvidia" in parts or any(fnmatch(name, p) for p in CUDA_PATTERNS):
        return "CUDA libraries"
    if "torch" in parts or "torchvision" in parts:
        return "torch/torchvision (CPU)"
    if any(p.startswith(("pyside6", "shiboken6")) for p in parts):
        return "Qt (PySide6)"
    if any(p in ("cv2", "scipy", "sklearn", "scipy.libs", "scikit_learn.libs", "matplotlib",
                 "opencv_python_headless.libs") for p in parts):
        return "Grad-CAM deps (OpenCV, SciPy, scikit-learn, matplotlib)"
    return "other"


def bundle_sizes(bundle: Path) -> dict:
    totals: dict[str, int] = {}
    files = []
    for path in bundle.rglob("*"):
        if path.is_file() and not path.is_symlink():
            size = path.stat().st_size
            rel = path.relative_to(bundle)
            totals[category(rel)] = totals.get(category(rel), 0) + size
            files.append((size, str(rel)))
    files.sort(reverse=True)
    return {"total": sum(totals.values()), "n_files": len(files), "by_category": totals,
            "largest": files[:8]}


def print_sizes(bundle: Path) -> None:
    s = bundle_sizes(bundle)
    gb = 1e9
    print(f"bundle {bundle}: {s['total'] / gb:.2f} GB in {s['n_files']} files")
    for cat, size in sorted(s["by_category"].items(), key=lambda kv: -kv[1]):
        print(f"  {cat:<58} {size / gb:6.2f} GB  {100 * size / s['total']:5.1f} %")
    print("  largest files: " + ", ".join(f"{Path(n).name} {b / 1e6:.0f} MB"
                                          for b, n in s["largest"]))


def launch(cmd: list[str], home: Path, timeout: float) -> tuple[float, dict]:
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        env[var] = str(home / var.lower())
    t0 = time.time()
    out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    wall = time.time() - t0
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"{cmd[0]} failed (rc {out.returncode}):\n{out.stderr[-3000:]}")
    report = json.loads(lines[-1])
    if not report["ok"]:
        raise RuntimeError(f"self-test failed: {report['line']}\n{out.stderr[-3000:]}")
    report["_t0"], report["_wall"] = t0, wall
    return wall, report


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--exe", type=Path, help="the built app executable")
    what.add_argument("--source", action="store_true", help="time python -m forensics_app")
    p.add_argument("--bundle", type=Path, help="bundle folder to measure (default: exe's folder)")
    p.add_argument("--runs", type=int, default=3, help="start-up runs after the first one")
    p.add_argument("--selftest-runs", type=int, default=1, help="timed --self-test runs")
    p.add_argument("--timeout", type=float, default=900.0)
    args = p.parse_args()

    if args.exe:
        exe = args.exe.resolve()
        cmd = [str(exe)]
        print_sizes((args.bundle or exe.parent).resolve())
    else:
        cmd = [sys.executable, "-m", "forensics_app"]
    platform = os.environ.get("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory() as d:
        home = Path(d)
        runs = []
        for _ in range(1 + args.runs):
            _, r = launch(cmd + ["--self-test", "--gui-only", "--json"], home, args.timeout)
            w = r["window"]
            runs.append({"exposed": w["exposed_at"] - r["_t0"],
                         "ready": w["exposed_at"] - r["_t0"] - w["exposed_s"]
                         + w["model_ready_s"],
                         "torch": w["torch_before_window"]})
        selftests = [launch(cmd + ["--self-test", "--json"], home, args.timeout)
                     for _ in range(args.selftest_runs)]

    first, rest = runs[0], runs[1:] or runs[:1]
    exposed = sorted(r["exposed"] for r in rest)
    ready = sorted(r["ready"] for r in rest)
    print(f"start-up of {' '.join(cmd)} ({platform}, {os.cpu_count()} CPUs):")
    print(f"  first launch: window visible after {first['exposed']:.2f} s, "
          f"model ready after {first['ready']:.2f} s")
    print(f"  next {len(rest)} launches: window visible after median {statistics.median(exposed):.2f} s "
          f"(min {exposed[0]:.2f}, max {exposed[-1]:.2f}); model ready after median "
          f"{statistics.median(ready):.2f} s")
    print(f"  torch imported before the window was visible: "
          f"{'YES' if any(r['torch'] for r in runs) else 'no'}")
    for wall, r in selftests:
        print(f"self-test (--self-test, scan of {len(r['samples'])} samples, no window): "
              f"{wall:.2f} s process start to exit; {r['line']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
