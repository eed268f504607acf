"""``forensics-scan`` options for the engine's speed levers, triage sampling and limits.

Every lever is an explicit flag and ends up in the report side-car (``engine`` in the
``.meta.json``), so a figure or a score can be reproduced with the same settings.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

# Levers switched with --lever NAME=on|off, and where each one lives.
DETECTOR_LEVERS = ("inference_mode", "channels_last", "fold_batchnorm", "compile")
SCAN_LEVERS = ("cross_image_batching", "overlap_decode")


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--follow-links-outside", action="store_true",
                   help="read files that symbolic links in the evidence folder point to outside "
                        "it (default: not read; an error row names the target)")
    g = p.add_argument_group("speed and limits")
    g.add_argument("--sample-tiles", type=int, default=8, metavar="N",
                   help="--mode sample (triage): score N full-resolution tiles drawn, seeded "
                        "and spread out, from the full-mode grid (default 8)")
    g.add_argument("--sample-seed", type=int, default=0, help="seed of the triage sample")
    g.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="bomb guard: largest image (width x height) decoded; default "
                        "250,000,000")
    g.add_argument("--max-compression-ratio", type=float, default=None, metavar="R",
                   help="bomb guard: refuse images whose declared decoded size is over R times "
                        "the file size (and over 64 MiB); default 2000")
    g.add_argument("--max-decode-mb", type=int, default=None, metavar="MB",
                   help="memory budget of one decode (declared pixels as decoded, plus a mode "
                        "conversion): larger images are refused before decoding; default 2048")
    g.add_argument("--max-jpeg-scans", type=int, default=None, metavar="N",
                   help="refuse JPEGs with more than N scans (progressive JPEGs use ~10; "
                        "thousands are a CPU bomb); default 100")
    g.add_argument("--max-tiff-pages", type=int, default=None, metavar="N",
                   help="refuse TIFFs with more than N pages; default 1024")
    g.add_argument("--max-seconds-per-file", type=float, default=None, metavar="S",
                   help="time budget of one file's read and decode: a read still blocked "
                        "after S seconds is abandoned (stuck network/FUSE file, never-ending "
                        "file) and the file gets an error row naming the budget; default 120")
    g.add_argument("--max-inflight-mb", type=int, default=None, metavar="MB",
                   help="intake memory window: decoded images held at once (default 512)")
    g.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: every usable core)")
    g.add_argument("--precision", choices=("auto", "fp32", "bf16", "int8"), default="auto",
                   help="forward-pass precision. auto (default): int8 on the CPU when the "
                        "checkpoint carries int8 ranges measured at export (its model card "
                        "gives int8's dev_test AP), else fp32; fp32; bf16 only where the CPU "
                        "has it natively; int8: static int8 convolutions on the CPU. The "
                        "report side-car records the precision used")
    g.add_argument("--lever", action="append", default=[], metavar="NAME=on|off",
                   help="switch a speed lever: " + ", ".join(DETECTOR_LEVERS + SCAN_LEVERS))


@dataclass
class EngineSettings:
    levers: object  # core.speed.SpeedLevers
    threads: int
    scan: dict = field(default_factory=dict)  # core.session.ScanSettings keyword arguments


def engine_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> EngineSettings:
    """Validate the flags and turn them into engine settings (errors exit 2)."""
    from forensics_app.core.bomb_guard import DecodeLimits
    from forensics_app.core.preprocess import MIN_INPUT_SIDE
    from forensics_app.core.speed import SpeedLevers, choose_threads

    if args.sample_tiles < 1:
        parser.error("--sample-tiles must be >= 1")
    if getattr(args, "tile_size", MIN_INPUT_SIDE) < MIN_INPUT_SIDE:
        parser.error(f"--tile-size must be >= {MIN_INPUT_SIDE} pixels, not {args.tile_size}")
    if not 0 <= args.sample_seed < 2**63:
        parser.error(f"--sample-seed must be between 0 and 2**63-1, not {args.sample_seed}")
    if getattr(args, "workers", 1) < 1:
        parser.error(f"--workers must be >= 1, not {args.workers}")
    detector_levers: dict = {"precision": args.precision}
    scan: dict = {"sample_tiles": args.sample_tiles, "sample_seed": args.sample_seed,
                  "follow_links_outside": args.follow_links_outside}
    for item in args.lever:
        name, _, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if value not in ("on", "off") or name not in DETECTOR_LEVERS + SCAN_LEVERS:
            parser.error(f"--lever {item!r}: expected NAME=on|off with NAME one of "
                         f"{', '.join(DETECTOR_LEVERS + SCAN_LEVERS)}")
        (detector_levers if name in DETECTOR_LEVERS else scan)[name] = value == "on"
    given = {"max_pixels": args.max_pixels, "max_compression_ratio": args.max_compression_ratio,
             "max_decode_bytes": (None if args.max_decode_mb is None
                                  else args.max_decode_mb * 1024 * 1024),
             "max_jpeg_scans": args.max_jpeg_scans, "max_tiff_pages": args.max_tiff_pages,
             "max_seconds_per_file": args.max_seconds_per_file}
    try:
        limits = DecodeLimits(**{k: v for k, v in given.items() if v is not None})
    except ValueError as exc:
        message = str(exc).replace("max_decode_bytes", "--max-decode-mb (in bytes)")
        for name in given:
            message = message.replace(name, "--" + name.replace("_", "-"))
        parser.error(message)
    scan.update(max_pixels=limits.max_pixels, max_compression_ratio=limits.max_compression_ratio,
                max_decode_bytes=limits.max_decode_bytes, max_jpeg_scans=limits.max_jpeg_scans,
                max_tiff_pages=limits.max_tiff_pages,
                max_seconds_per_file=limits.max_seconds_per_file)
    if args.max_inflight_mb is not None:
        if args.max_inflight_mb < 1:
            parser.error("--max-inflight-mb must be >= 1")
        scan["max_inflight_bytes"] = args.max_inflight_mb * 1024 * 1024
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    threads = args.threads or choose_threads().torch_threads
    return EngineSettings(levers=SpeedLevers(**detector_levers), threads=threads, scan=scan)
