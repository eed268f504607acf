"""Warnings raised while one file is read go to that file's row, not anonymously to stderr.

Pillow and numpy report odd input with :mod:`warnings` (truncated data, odd EXIF, values
that overflow a cast). Printed to stderr they name no file, and the default "once per code
location" rule hides them for every later file. Here a thread-local sink collects them per
file; :func:`warnings.catch_warnings` is not used because it swaps process-wide state and the
scan decodes in several threads at once. libtiff's C-level messages (which it would print to
stderr) reach the same sink through :mod:`forensics_app.core.libtiff_messages`.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from forensics_app.core import libtiff_messages

_local = threading.local()
_lock = threading.Lock()
_previous_showwarning = warnings.showwarning
_ALWAYS = ((Warning, r"(PIL|numpy)(\.|$)"), (RuntimeWarning, r"forensics_app\.core(\.|$)"))


def _showwarning(message, category, filename, lineno, file=None, line=None) -> None:
    sink = getattr(_local, "sink", None)
    if sink is None:
        _previous_showwarning(message, category, filename, lineno, file, line)
        return
    text = f"{category.__name__}: {message}"
    if text not in sink:
        sink.append(text)


def _deliver(message: str) -> bool:
    """Hand a decoder library's message to this thread's file, if one is being read."""
    sink = getattr(_local, "sink", None)
    if sink is None:
        return False
    if message not in sink:
        sink.append(message)
    return True


def _install() -> None:
    """Route warnings through :func:`_showwarning`; re-done on each use because test runners
    and ``catch_warnings`` blocks put their own hooks and filters back."""
    global _previous_showwarning
    libtiff_messages.install(_deliver)
    with _lock:
        if warnings.showwarning is not _showwarning:
            _previous_showwarning = warnings.showwarning
            warnings.showwarning = _showwarning
        # Every occurrence, not once per code location: each file is its own case. Appended,
        # so a filter set before (an "error" for bomb warnings, a user's -W) still comes first.
        for category, pattern in _ALWAYS:
            if not any(f[0] == "always" and f[2] is category and f[3] is not None
                       and f[3].pattern == pattern for f in warnings.filters):
                warnings.filterwarnings("always", category=category, module=pattern, append=True)


@contextmanager
def file_warnings() -> Iterator[list[str]]:
    """Collect, as ``"Category: message"`` lines, the warnings this thread raises inside."""
    _install()
    outer = getattr(_local, "sink", None)
    sink: list[str] = []
    _local.sink = sink
    try:
        yield sink
    finally:
        _local.sink = outer


@contextmanager
def logged_file_warnings(path: object, logger: logging.Logger,
                         level: int = logging.DEBUG) -> Iterator[list[str]]:
    """For a second decode of a file whose row already reports it (a preview, a heatmap, a
    report's picture): its warnings are logged under its (escaped) name at ``level``,
    never printed to stderr without one."""
    from forensics_app.core.safetext import escape_text

    with file_warnings() as caught:
        try:
            yield caught
        finally:
            for message in caught:
                logger.log(level, "%s: decoder warning: %s", escape_text(str(path)), message)
