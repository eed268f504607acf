"""What a running or finished scan job says about itself: counts, skipped files, speed, ETA.

One place words the job for the status bar, the queue's Progress and Note columns and the
finished message, so they cannot disagree. :class:`EtaEstimator` is plain Python (no Qt):
it is fed ``(done, total, time)`` and estimates nothing until the scan has settled (D24:
the first ETA, taken while the model warmed up, once said 9:33 for a 28 s job). Skipped
files are always counted and named by reason (D17: "120/124" said nothing of 4 files that
were not images).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forensics_app.gui.records import ScanJob

# Skipped.kind -> (one, many): why a folder entry or file was not scanned, in words
SKIP_WORDS: dict[str, tuple[str, str]] = {
    "not-image": ("not an image", "not images"),
    "hidden": ("hidden", "hidden"),
    "folder": ("sub-folder not entered", "sub-folders not entered"),
    "link": ("link not followed", "links not followed"),
    "not-regular": ("not a regular file", "not regular files"),
    "error": ("unreadable", "unreadable"),
    "unlistable-folder": ("folder that cannot be listed", "folders that cannot be listed"),
    "too-deep": ("folder too deep", "folders too deep"),
}


def skipped_text(entries: Iterable[Any]) -> str:
    """``"4 skipped: 3 not images, 1 hidden"``; ``""`` when nothing was skipped."""
    counts = Counter(getattr(e, "kind", "other") for e in entries)
    if not counts:
        return ""
    parts = []
    for kind, n in counts.most_common():
        one, many = SKIP_WORDS.get(kind, (kind, kind))
        parts.append(f"{n} {one if n == 1 else many}")
    return f"{sum(counts.values())} skipped: {', '.join(parts)}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class EtaEstimator:
    """Rate and time left from the files finished *after* the first one.

    The first finished file carries the model's warm-up (threads, first batch, allocator),
    so timing starts when it finishes. Nothing is estimated until ``min_files`` more files
    and ``min_seconds`` have passed; the rate is the average over all files finished since
    (a batch finishing in a burst then moves it little), which also smooths it.
    """

    def __init__(self, min_files: int = 10, min_seconds: float = 3.0):
        self.min_files, self.min_seconds = min_files, min_seconds
        self._start: tuple[float, int] | None = None  # (time, done) at the first file
        self._rate: float | None = None
        self._left: int | None = None

    def update(self, done: int, total: int | None, now: float) -> None:
        if done <= 0:
            return
        if self._start is None or done < self._start[1]:
            self._start = (now, done)
            return
        t0, d0 = self._start
        n, dt = done - d0, now - t0
        self._left = None if total is None else max(0, total - done)
        if n >= self.min_files and dt >= self.min_seconds:
            self._rate = n / dt

    @property
    def rate(self) -> float | None:
        """Files per second once settled, else None."""
        return self._rate

    @property
    def eta(self) -> float | None:
        """Seconds left once settled, else None."""
        if self._rate is None or self._left is None:
            return None
        return self._left / self._rate


def running_text(job: ScanJob, with_title: bool = True) -> str:
    """``Scanning “x”: 40/124 · 12.1 images/s · ETA 0:07 · 2 skipped: 2 not images``."""
    head = f"Scanning “{job.title}”: " if with_title else ""
    if job.total is None:
        return head + "finding files…"
    text = f"{head}{job.done}/{job.total}"
    if job.rate:
        text += f" · {job.rate:.1f} images/s · ETA {format_duration(job.eta)}"
    elif job.done < job.total:
        text += " · estimating time left…"
    skipped = skipped_text(job.skipped)
    if skipped:
        text += f" · {skipped}"
    return text


def finished_text(job: ScanJob) -> str:
    """The status bar once the queue is idle: outcome, scored files, time, what was skipped."""
    text = f"{job.status.value}: “{job.title}”, {job.done} files"
    if job.total is not None and job.total != job.done:
        text += f" of {job.total}"
    if job.elapsed:
        text += f" in {format_duration(job.elapsed)}"
    notes = [skipped_text(job.skipped)]
    if job.duplicates:
        notes.append(f"{job.duplicates} already queued, skipped")
    notes = [n for n in notes if n]
    if notes:
        text += f" ({'; '.join(notes)}; listed in the log)" if job.skipped else \
            f" ({'; '.join(notes)})"
    from forensics_app.gui.records import JobStatus

    if job.message and job.status is JobStatus.FAILED:
        text += f" — {job.message}"
    return text
