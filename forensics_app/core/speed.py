"""Speed levers and thread counts: every one an explicit setting, recorded in the report.

Each lever was measured, not assumed (``benchmarks/camera_photo_speed.py``); the defaults are
the ones that helped on a 2-core AVX2 CPU. A report's ``.meta.json`` side-car carries
:meth:`SpeedLevers.record` and the scan's own settings so a figure can be reproduced.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

# No torch import at module level: the GUI picks its thread counts before torch loads.

PRECISIONS = ("auto", "fp32", "bf16", "int8")


@dataclass(frozen=True)
class SpeedLevers:
    """How the detector runs its forward pass (the scan's own levers are in ScanOptions)."""

    inference_mode: bool = True  # torch.inference_mode (off: torch.no_grad)
    channels_last: bool = True  # NHWC activations (oneDNN's preferred layout)
    fold_batchnorm: bool = True  # BatchNorm folded into the convolutions
    # auto | fp32 | bf16 (autocast, only where the CPU has native bf16) | int8 (torch.ao static
    # quantisation of the convolution trunk on the CPU, core/quantize.py). ``auto`` becomes
    # int8 on a CPU when the checkpoint carries int8 ranges for this CPU's quantized engine
    # (measured at export, with the dev_test AP of int8 in its model card), else fp32; the
    # detector keeps and records the resolved value, never "auto".
    precision: str = "auto"
    compile: bool = False  # torch.compile (inductor; needs a C++ compiler on CPU)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")

    def record(self) -> dict:
        return asdict(self)


def cpu_has_native_bf16() -> bool:
    """True when oneDNN can run bf16 convolutions natively (AVX512-BF16 or AMX)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, which containers and taskset set),
    not the machine's total."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ThreadPlan:
    """Threads for one scan: torch's intra-op pool and the intake (read + decode) pool."""

    torch_threads: int
    intake_workers: int

    def record(self) -> dict:
        return asdict(self)


def choose_threads(cores: int | None = None, gui: bool = False) -> ThreadPlan:
    """Thread counts from the cores present.

    The forward pass gets every core: it is most of the work, and the intake threads
    (which mostly wait on I/O and release the GIL while decoding) interleave with it; the
    GUI thread only paints and needs no core of its own at the rate rows arrive (the
    responsiveness benchmark keeps its stall p99 within 50 ms). With 8 or more cores the
    GUI keeps one core: the forward pass no longer scales linearly there, and the event
    loop stays smooth under heavy decoding. Intake workers: 2, plus one per 4 further cores
    (capped at 6), so decoding keeps up with the forward pass on large machines.
    """
    cores = max(1, cores if cores is not None else usable_cores())
    torch_threads = cores - 1 if gui and cores >= 8 else cores
    intake = min(6, 2 + max(0, cores - 2) // 4) if cores > 1 else 1
    return ThreadPlan(torch_threads=max(1, torch_threads), intake_workers=intake)


def engine_record(detector, options) -> dict:
    """Every speed lever and limit of a scan, for the report side-car (``extra["engine"]``):
    the detector's :class:`SpeedLevers`, the scan's own settings and the thread counts."""
    import torch

    from forensics_app.core.heap import heap_record

    levers = detector.levers.record()
    if getattr(detector, "int8_source", None):
        levers["int8_ranges"] = detector.int8_source
    return {
        "levers": levers,
        "scan": options.record(),
        "threads": {"torch_threads": torch.get_num_threads(),
                    "intake_workers": options.workers, "cores": usable_cores()},
        "heap": heap_record(),
        "branches": {name: getattr(b, "runtime", type(b).__name__)
                     for name, b in getattr(detector, "branches", {}).items()},
        "fusion": detector.fusion.to_record() if getattr(detector, "branches", None) else None,
    }
