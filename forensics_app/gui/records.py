"""Plain records the GUI passes between threads: jobs, model facts, heatmaps.

No Qt widgets and no torch here; the scan results themselves are the core's
:class:`~forensics_app.core.results.ScanResult`, and a job's settings the core's
:class:`~forensics_app.core.session.ScanSettings`.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

# A job's settings are the core's one scan-settings record (also what the case stores).
from forensics_app.core.session import ScanSettings
from forensics_app.gui.scan_progress import EtaEstimator

__all__ = ["EnvInfo", "HeatmapData", "JobStatus", "ModelInfo", "PathRegistry", "ScanJob",
           "ScanSettings"]

_job_ids = itertools.count(1)


class JobStatus(Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    DONE = "Done"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


PREPROCESS_CHOICES: dict[str, str] = {
    "full": "Trace branch: full image, no resize (paper protocol)",
    "center-crop": "Centre crop 224 px",
    "tiles": "Tiles of 512 px",
    "sample": "Triage: sample of 8 full-res tiles (fast; flag for a full scan)",
}


@dataclass
class ScanJob:
    """One queued request (a drop, a folder, a selection), scanned as one engine call."""

    sources: list[str]
    recursive: bool
    settings: ScanSettings = field(default_factory=ScanSettings)
    id: int = field(default_factory=lambda: next(_job_ids))
    status: JobStatus = JobStatus.PENDING
    total: int | None = None  # known once the worker has discovered the files
    done: int = 0
    duplicates: int = 0
    errors: int = 0
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    skipped: list[Any] = field(default_factory=list)  # core.discovery.Skipped, in order met
    estimator: EtaEstimator = field(default_factory=EtaEstimator, repr=False)

    @property
    def title(self) -> str:
        if len(self.sources) == 1:
            p = Path(self.sources[0])
            return p.name or str(p)
        return f"{len(self.sources)} items"

    @property
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.monotonic()) - self.started_at

    def progressed(self, done: int, total: int, now: float | None = None) -> None:
        self.done, self.total = done, total
        self.estimator.update(done, total, time.monotonic() if now is None else now)

    @property
    def rate(self) -> float:
        """Images per second once the scan has settled (0 before: no guess, D24)."""
        return self.estimator.rate or 0.0

    @property
    def eta(self) -> float | None:
        return self.estimator.eta

    @functools.cached_property
    def has_folders(self) -> bool:
        """Whether "include sub-folders" can mean anything for this job (not for files)."""
        return any(Path(s).is_dir() for s in self.sources)

    def same_request(self, sources: list[str], recursive: bool) -> bool:
        return self.sources == sources and self.recursive == recursive


class PathRegistry:
    """Files queued or scanned this session, so a dropped duplicate is skipped.

    Claimed by the scan worker (its thread) and released by the GUI thread, hence the lock.
    """

    def __init__(self) -> None:
        self._paths: set[str] = set()
        self._lock = threading.Lock()

    @staticmethod
    def key(path: str | Path) -> str:
        return str(Path(path).absolute())

    def claim(self, paths: Iterable[Path]) -> tuple[list[Path], int]:
        """Keep the paths not yet seen and mark them seen; return them and the duplicate count."""
        fresh: list[Path] = []
        dupes = 0
        with self._lock:
            for p in paths:
                k = self.key(p)
                if k in self._paths:
                    dupes += 1
                else:
                    self._paths.add(k)
                    fresh.append(p)
        return fresh, dupes

    def release(self, paths: Iterable[str | Path]) -> None:
        with self._lock:
            for p in paths:
                self._paths.discard(self.key(p))

    def __contains__(self, path: object) -> bool:
        with self._lock:
            return isinstance(path, str | Path) and self.key(path) in self._paths

    def __len__(self) -> int:
        with self._lock:
            return len(self._paths)


@dataclass(frozen=True)
class EnvInfo:
    """What the worker learnt once torch was imported."""

    torch_version: str
    cuda_available: bool
    cuda_reason: str  # why CUDA is unavailable, or the device name
    cpu_threads: int


@dataclass(frozen=True)
class ModelInfo:
    """Facts about the loaded checkpoint, shown in the status bar and the Model dialog."""

    path: str
    sha256: str
    model_id: str
    kind: str
    arch: dict[str, Any]
    meta: dict[str, Any]
    threshold: float
    band: float
    fake_index: int
    device: str
    bundled: bool

    @property
    def file_name(self) -> str:
        return Path(self.path).name


@dataclass
class HeatmapData:
    """Grad-CAM of one scanned file, computed in a worker; images are RGB(A) uint8 arrays."""

    key: tuple[str, str, str]  # (sha256, model_id, preprocessing)
    path: str
    image: Any  # np.ndarray (H, W, 3): the image as scored
    heat: Any  # np.ndarray (H, W) float32 in [0, 1]
    heat_rgba: Any  # np.ndarray (H, W, 4): colour-mapped heat, transparent where not analysed
    tile_boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    tile_probs: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0  # in the worker, model preparation included
    prepare_s: float = 0.0  # of which loading the private Grad-CAM model (first map only)
    display_scale: float = 1.0  # image/heat are this fraction of the scored image's size
    # H3: every branch's role by fusion weight (core.branch_explain.BranchRole), and the
    # occlusion map (RGBA like heat_rgba) of each branch beside the trace CNN, by name
    roles: list[Any] = field(default_factory=list)
    branch_rgba: dict[str, Any] = field(default_factory=dict)
    branch_notes: dict[str, list[str]] = field(default_factory=dict)
