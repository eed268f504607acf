"""``forensics-scan --ray``: the options of a scan spread over a Ray cluster (core.ray_scan)."""

from __future__ import annotations

import argparse


def add_ray_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Ray cluster (scale-out; read the README's security notes first)")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="score on Ray workers: no ADDRESS starts a private local runtime "
                        "(no dashboard, token auth); 'auto' or HOST:PORT or ray://HOST:PORT "
                        "joins a running cluster. The case, CSV and JSONL are written here only")
    g.add_argument("--ray-workers", type=int, default=2, metavar="N",
                   help="Ray actors, each loading the detector once (default 2); actors the "
                        "cluster has no CPU for yet start when a node joins")
    g.add_argument("--ray-cpus-per-worker", type=float, default=1.0, metavar="C",
                   help="CPUs each actor reserves (and torch threads it uses); default 1")
    g.add_argument("--ray-inflight", type=int, default=8, metavar="N",
                   help="files out at one worker at once (bounds the head's memory); default 8")
    g.add_argument("--ray-max-tries", type=int, default=3, metavar="K",
                   help="a file whose worker dies K times gets an error row; default 3")
    g.add_argument("--ray-send-bytes", action="store_true",
                   help="the head reads each file and sends its bytes (workers need no access "
                        "to the evidence; the checkpoint is sent too)")


def ray_options(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The ``RayOptions`` the flags ask for, or None without ``--ray`` (errors exit 2)."""
    if args.ray is None:
        if args.ray_send_bytes:
            parser.error("--ray-send-bytes needs --ray")
        return None
    from forensics_app.core.ray_scan import RayOptions

    try:
        return RayOptions(address=None if args.ray == "local" else args.ray,
                          workers=args.ray_workers, cpus_per_worker=args.ray_cpus_per_worker,
                          inflight_per_worker=args.ray_inflight,
                          batch_files=max(1, min(args.batch_size, args.ray_inflight // 2 or 1)),
                          max_tries=args.ray_max_tries, send_bytes=args.ray_send_bytes)
    except ValueError as exc:
        parser.error(f"--ray: {exc}")
