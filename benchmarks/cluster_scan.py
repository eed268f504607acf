"""A scan on a local Ray runtime vs the local scan, and a simulated million-file folder
(figures, not a test).

    .venv/bin/python benchmarks/cluster_scan.py simulate [--files 1000000] [--workers 2]
    .venv/bin/python benchmarks/cluster_scan.py throughput [--images 48] [--model CKPT]

``simulate``: the head of a Ray scan dispatches a file list of ``--files`` paths (nothing on
disk) to ``--workers`` actors whose scoring is mocked (a fixed row per file, no detector), with
no case and ``keep_results=False``; it prints the head's RSS before the list, with the list,
and sampled as the scan goes (it should stay flat: the head holds the list and a fixed
window of ``workers x inflight`` files), the most files ever out at once, and rows/s (the
head's dispatch ceiling on this machine).

``throughput``: ``forensics-scan`` on one folder of generated 256x256 images, each in a fresh
process: local, ``--ray --ray-workers 1`` and ``--ray --ray-workers 2`` (local runtime);
files/s from the CLI's own summary (scan only, after the runtime and workers started),
wall seconds of the whole command, and the head process's peak RSS (VmHWM; Ray's own processes
and the workers are not in it). Default model: a tiny random-weight checkpoint (the figure
is the engine's overhead, not the network's speed); pass ``--model`` for the bundled one.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from forensics_app.core.ray_scan import RayOptions, RayScanSession, ScanWorker  # noqa: E402
from forensics_app.core.results import ScanResult, Verdict  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


class MockWorker(ScanWorker):
    """Scores nothing: a fixed row per file (the head's side is what is measured)."""

    def __init__(self, name, *args, **kwargs):  # no detector, no checkpoint
        import socket

        self.name, self.host, self.pid, self.refusal = name, socket.gethostname(), os.getpid(), ""

    def score(self, items):
        return [ScanResult(path=k, sha256="0" * 64, bytes=1, prob_fake=0.25,
                           verdict=Verdict.REAL, model_id="mock@000000000000")
                for k, _, _ in items], []


def simulate(args: argparse.Namespace) -> None:
    from forensics_app.core.discovery import Discovery
    from forensics_app.core.session import ScanSettings

    head = SimpleNamespace(
        checkpoint=SimpleNamespace(sha256="0" * 64, path="mock.pt", fake_index=1,
                                   threshold=0.5, inconclusive_band=0.0),
        model_id="mock@000000000000", levers=None, device=SimpleNamespace(type="cpu"),
        device_description="mock")
    before = rss_mib()
    files = [Path(f"/evidence/d{i // 1000:04d}/img_{i:07d}.jpg") for i in range(args.files)]
    with_list = rss_mib()
    opts = RayOptions(workers=args.workers, inflight_per_worker=args.inflight,
                      batch_files=args.batch, object_store_mb=128)
    samples: list[tuple[int, float]] = []
    step = max(1, args.files // 10)
    n_rows = 0

    def count(_row) -> None:
        nonlocal n_rows
        n_rows += 1

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            samples.append((done, rss_mib()))

    session = RayScanSession(head, ScanSettings(batch_size=256), [], ray_options=opts,
                             detector_kwargs={}, keep_results=False, worker_class=MockWorker,
                             on_result=count)
    session.found = Discovery(files=files)
    t0 = time.perf_counter()
    outcome = session.run(progress=progress)
    took = time.perf_counter() - t0
    print(f"files: {args.files:,}  workers: {args.workers}  inflight/worker: {args.inflight}  "
          f"batch: {args.batch}")
    print(f"status: {outcome.status}  rows: {n_rows:,}  in {took:.1f} s "
          f"({n_rows / took:,.0f} rows/s, Ray start included)")
    print(f"head RSS: {before:.0f} MiB before the list, {with_list:.0f} MiB with it")
    for done, rss in samples:
        print(f"  after {done:>9,} rows: {rss:6.0f} MiB")
    print(f"most files out at once: {session.stats.max_inflight_files} "
          f"(bound {args.workers * args.inflight}); batches: {session.stats.batches:,}; "
          f"retry queue peak: {session.stats.max_queued_retries}")


CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
from forensics_app.cli import main
rc = main(sys.argv[2:])
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
print(f'RESULT rc={rc} vmhwm_kib={hwm}', flush=True)
"""


def throughput(args: argparse.Namespace) -> None:
    from PIL import Image

    sys.path.insert(0, str(REPO / "tests"))
    from helpers import make_image, save_tiny_checkpoint

    root = Path(tempfile.mkdtemp(prefix="cluster-scan-"))
    folder = root / "images"
    folder.mkdir()
    for i in range(args.images):
        make_image((256, 256), i).save(folder / f"img_{i:04d}.jpg", quality=90)
    model = args.model or save_tiny_checkpoint(root / "tiny.pt")
    Image.init()
    runs = [("local", []), ("ray 1 worker", ["--ray", "--ray-workers", "1"]),
            ("ray 2 workers", ["--ray", "--ray-workers", "2"])]
    base = [str(folder), "--model", str(model), "-q", "--workers", "1",
            "--threads", str(args.threads), "--batch-size", "8"]
    figures = {}
    for name, extra in runs:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, str(REPO), *base, *extra],
                              capture_output=True, text=True, cwd=root)
        wall = time.perf_counter() - t0
        text = proc.stdout + proc.stderr
        m = re.search(r"scanned (\d+) files in ([\d.]+) s", text)
        r = re.search(r"RESULT rc=(\d+) vmhwm_kib=(\d+)", text)
        if not (m and r):
            print(f"{name}: failed\n{text[-2000:]}")
            continue
        n, secs = int(m.group(1)), float(m.group(2))
        figures[name] = secs / n
        print(f"{name:>14}: {n} files in {secs:.1f} s ({n / secs:.2f} files/s), "
              f"command {wall:.1f} s wall, head peak RSS {int(r.group(2)) / 1024:.0f} MiB, "
              f"rc {r.group(1)}")
    if "local" in figures:
        for name, per in figures.items():
            if name != "local":
                print(f"{name}: {1000 * (per - figures['local']):+.1f} ms per file vs local")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="part", required=True)
    s = sub.add_parser("simulate")
    s.add_argument("--files", type=int, default=1_000_000)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--inflight", type=int, default=64)
    s.add_argument("--batch", type=int, default=32)
    t = sub.add_parser("throughput")
    t.add_argument("--images", type=int, default=48)
    t.add_argument("--model", type=Path)
    t.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    simulate(args) if args.part == "simulate" else throughput(args)


if __name__ == "__main__":
    main()
