"""Load on ``forensics-serve`` over loopback: N concurrent clients posting images to
``/api/v1/analyze`` versus ``forensics-scan`` on the same images (figures, not a test).

    .venv/bin/python benchmarks/serve_load.py [--images 48] [--clients 4] [--rounds 1] \
        [--repeat 3] [--size 512x384] [--model CKPT] [--thumbnail]

Images are generated (photo-like JPEGs, quality 90). The CLI scans the folder in a fresh
process and reports its own images/s (model loading excluded). The server runs in a fresh
process on 127.0.0.1 and a free port; once ``/healthz`` answers 200, ``--clients`` threads
post every image ``--rounds`` times between them; throughput is answers per second over that
window (model loading excluded too). CLI and server runs take turns ``--repeat`` times and
the ratio reported is the median of the pairs (a shared machine's load changes by the minute). Every answer is checked: status 200, and the SHA-256 it
reports is its own upload's (none lost, none answered with another's row), and the server's
count of analysed images equals the requests sent (none answered twice). Memory: the
server's peak RSS (VmHWM) and the CLI's. Bounded: loopback only, at most a few hundred
requests, and the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent

CLI_CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
from forensics_app.cli import main
rc = main(sys.argv[2:])
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
print(f'RESULT rc={rc} vmhwm_kib={hwm}', file=sys.stderr, flush=True)
"""


def photo_like(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    low = rng.integers(30, 226, (height // 48 + 2, width // 48 + 2, 3), dtype=np.uint8)
    img = Image.fromarray(low).resize((width, height), Image.BICUBIC)
    noise = rng.normal(0, 6, (height, width, 1)).astype(np.int16)
    arr = np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vmhwm_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_cli(folder: Path, args: argparse.Namespace) -> tuple[float, float]:
    cmd = [sys.executable, "-c", CLI_CHILD, str(REPO), str(folder), "-q",
           "--batch-size", str(args.batch_size)]
    if args.model:
        cmd += ["--model", str(args.model)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    rate = re.search(r"\(([\d.]+) images/s\)", proc.stderr)
    hwm = re.search(r"vmhwm_kib=(\d+)", proc.stderr)
    if proc.returncode != 0 or not rate or not hwm:
        sys.exit(f"forensics-scan failed:\n{proc.stderr[-2000:]}")
    return float(rate.group(1)), int(hwm.group(1)) / 1024


def main() -> None:
    import httpx

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rounds", type=int, default=1, help="each image posted this many times")
    p.add_argument("--repeat", type=int, default=3,
                   help="CLI and server runs, taking turns (the ratio is their median)")
    p.add_argument("--size", default="512x384")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--model", type=Path)
    p.add_argument("--thumbnail", action="store_true", help="ask for the thumbnail too")
    args = p.parse_args()
    if args.images * args.rounds * args.repeat > 1000 or args.clients > 64:
        sys.exit("bounded: at most 1000 requests and 64 clients")
    w, h = (int(v) for v in args.size.split("x"))

    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        images = [photo_like(w, h, i) for i in range(args.images)]
        for i, data in enumerate(images):
            (folder / f"img_{i:04d}.jpg").write_bytes(data)
        digests = [hashlib.sha256(d).hexdigest() for d in images]

        port = free_port()
        cmd = [sys.executable, "-m", "forensics_app.server.cli", "--port", str(port),
               "--data-dir", str(Path(tmp) / "serve"), "--batch-size", str(args.batch_size),
               "--queue-size", str(max(16, 2 * args.clients))]
        if args.model:
            cmd += ["--model", str(args.model)]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        log_path = Path(tmp) / "server.log"  # a file, not a pipe nobody reads while it runs
        server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                  stderr=open(log_path, "w"))  # noqa: SIM115
        base = f"http://127.0.0.1:{port}"
        work = [(i, r) for r in range(args.rounds) for i in range(args.images)]
        lock = threading.Lock()
        latencies: list[float] = []
        problems: list[str] = []
        answered = [0] * (len(work) * args.repeat)
        url = f"{base}/api/v1/analyze?thumbnail={'true' if args.thumbnail else 'false'}"
        pairs: list[tuple[float, float]] = []  # (CLI images/s, server images/s) per repeat
        cli_mib = 0.0
        try:
            for _ in range(1200):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None:
                    sys.exit(f"the server did not start:\n{log_path.read_text()[-2000:]}")
                time.sleep(0.1)

            def client(jobs: list[int], offset: int) -> None:
                with httpx.Client(timeout=300) as c:
                    for k in jobs:
                        i = work[k][0]
                        t0 = time.perf_counter()
                        resp = c.post(url, files={"image": (f"{i}.jpg", images[i],
                                                            "image/jpeg")})
                        took = time.perf_counter() - t0
                        with lock:
                            latencies.append(took)
                            answered[offset + k] += 1
                            if resp.status_code != 200:
                                problems.append(f"request {k}: HTTP {resp.status_code}")
                            elif resp.json()["sha256"] != digests[i]:
                                problems.append(f"request {k}: another image's answer")

            # CLI and server take turns, so a change in the machine's load hits both.
            for rep in range(args.repeat):
                cli_rate, mib = run_cli(folder, args)
                cli_mib = max(cli_mib, mib)
                shares = [list(range(c, len(work), args.clients)) for c in range(args.clients)]
                threads = [threading.Thread(target=client, args=(s, rep * len(work)))
                           for s in shares]
                t0 = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                pairs.append((cli_rate, len(work) / (time.perf_counter() - t0)))
            health = httpx.get(f"{base}/api/v1/model", timeout=5).json()  # counters
            server_mib = vmhwm_mib(server.pid)
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()

    n = len(work) * args.repeat
    lat = sorted(latencies)
    p99 = lat[min(len(lat) - 1, max(0, round(0.99 * len(lat)) - 1))]
    print(f"images: {args.images} x {args.rounds} round(s), {w}x{h} JPEG q90; "
          f"clients: {args.clients}; batch size {args.batch_size}; "
          f"thumbnail: {'yes' if args.thumbnail else 'no'}; repeats: {args.repeat}")
    for k, (cli, srv) in enumerate(pairs, 1):
        print(f"  repeat {k}: forensics-scan {cli:.2f} images/s, forensics-serve {srv:.2f} "
              f"images/s ({srv / cli:.2f}x)")
    ratio = statistics.median(srv / cli for cli, srv in pairs)
    print(f"forensics-serve / forensics-scan throughput, median of {len(pairs)}: {ratio:.2f}x; "
          f"latency p50 {statistics.median(lat) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms; "
          f"peak RSS server {server_mib:.0f} MiB, CLI {cli_mib:.0f} MiB")
    lost = sum(1 for a in answered if a == 0)
    twice = sum(1 for a in answered if a > 1)
    print(f"requests {n}: answered {sum(answered)}, lost {lost}, answered twice {twice}, "
          f"wrong/failed {len(problems)}; server analysed {health['analysed']}")
    for line in problems[:10]:
        print("  " + line)
    if lost or twice or problems or health["analysed"] != n:
        sys.exit(1)


if __name__ == "__main__":
    main()
