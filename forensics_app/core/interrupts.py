"""Stop requests (SIGINT, SIGTERM) held back while a batch is being recorded.

A batch is committed to the case and then handed to every streamed report; a stop that
lands between the two would leave the JSONL without a batch the database and the CSV hold.
The CLI's signal handler calls :func:`request_stop`; inside :func:`critical` the stop is
remembered and raised as ``KeyboardInterrupt`` when the section ends, anywhere else at
once. Signal handlers run in the main thread only, so a plain counter is enough.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0
_pending = False


@contextmanager
def critical() -> Iterator[None]:
    """Run the block whole: a stop requested meanwhile is raised when it ends."""
    global _depth, _pending
    _depth += 1
    try:
        yield
    except BaseException:
        _depth -= 1
        if _depth == 0:
            _pending = False  # an exception is already ending the work
        raise
    _depth -= 1
    if _depth == 0 and _pending:
        _pending = False
        raise KeyboardInterrupt


def request_stop() -> None:
    """Raise ``KeyboardInterrupt`` now, or when the current critical section ends."""
    global _pending
    if _depth:
        _pending = True
        return
    raise KeyboardInterrupt
