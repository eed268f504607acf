"""Evidence-controlled integers in the case database, stored losslessly whatever their size.

A file's mtime (nanoseconds since 1970), its size and anything read from its metadata are
chosen by whoever made the file: ``touch -d 2300-01-01`` gives an mtime past 2262-04-11,
which no SQLite INTEGER (signed 64-bit) can hold, and binding it raised ``OverflowError``
in the middle of a scan -- on every resume too, so the case could never be completed.

Rule: a value that fits a signed 64-bit integer is stored as that INTEGER (so every case
written before this rule reads and verifies as before); one that does not is stored as the
TEXT ``"int:<decimal digits>"``. The prefix keeps SQLite's INTEGER column affinity from
turning the text into a REAL (which would keep only 15 digits), and the decimal text is
exact. The chained row hash covers the stored form, so ``--verify`` recomputes it from what
it reads back.
"""

from __future__ import annotations

from typing import Any

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
_PREFIX = "int:"


def storable_int(value: int | None) -> int | str | None:
    """``value`` as the case stores it: the int itself, or ``"int:<digits>"`` when it does
    not fit SQLite's signed 64-bit INTEGER."""
    if value is None or isinstance(value, bool):
        return value
    value = int(value)
    return value if INT64_MIN <= value <= INT64_MAX else f"{_PREFIX}{value}"


def stored_int(value: Any) -> int | None:
    """The exact integer back from a stored value (``None`` for NULL or anything else)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.startswith(_PREFIX):
        try:
            return int(value[len(_PREFIX):])
        except ValueError:
            return None
    return None
