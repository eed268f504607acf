"""Recording a running scan: rows into the case and the streamed reports, once per batch."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from forensics_app.core.interrupts import critical
from forensics_app.core.results import ScanResult

if TYPE_CHECKING:
    from forensics_app.core.case import Case


class CaseRecorder:
    """An ``on_result`` callable that stores results in the case once per batch.

    The scan loop calls it per file; rows are committed when ``batch_size`` have gathered or
    ``max_delay_s`` has passed, and by :meth:`flush` at the end. ``sinks`` (streamed CSV /
    JSONL reports) receive each batch right after the case committed it, so they hold what
    the case holds; a stop request (SIGTERM) waits until every sink has the batch.

    A sink that cannot write (disk full) is dropped and :class:`RecordingError` raised, so
    the scan stops cleanly with the reason; the case keeps every committed row.
    """

    def __init__(self, case: Case | None, scan_id: int | None, batch_size: int = 16,
                 sinks: Sequence[Callable[[list[ScanResult]], None]] = (),
                 max_delay_s: float = 2.0, clock: Callable[[], float] | None = None):
        self.case, self.scan_id = case, scan_id
        self.batch_size = max(1, batch_size)
        self.sinks = list(sinks)
        self.max_delay_s = max_delay_s
        self._clock = clock or time.monotonic
        self._buffer: list[ScanResult] = []
        self._last = self._clock()
        self.n_committed = 0  # rows handed over (stored, or streamed when there is no case)
        self.n_new = 0  # rows the case stored as new
        self.failures: list[str] = []

    def __call__(self, result: ScanResult) -> None:
        self._buffer.append(result)
        if (len(self._buffer) >= self.batch_size
                or self._clock() - self._last >= self.max_delay_s):
            self.flush()

    def flush(self) -> None:
        from forensics_app.core.case import RecordingError

        with critical():
            rows, self._buffer = self._buffer, []
            self._last = self._clock()
            if not rows:
                return
            if self.case is not None and self.scan_id is not None:
                self.n_new += self.case.add_results(self.scan_id, rows)  # raises: nothing sent
            self.n_committed += len(rows)
            failed = []
            for sink in list(self.sinks):
                try:
                    sink(rows)
                except OSError as exc:
                    self.sinks.remove(sink)
                    name = getattr(sink, "path", sink)
                    failed.append(f"cannot write {name}: {exc}")
            if failed:
                self.failures += failed
                kept = ("the case holds every row scored so far" if self.case is not None
                        else "rows written so far are kept")
                raise RecordingError("; ".join(failed) + f". The scan was stopped; {kept}.")
