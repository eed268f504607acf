"""A :class:`ScanResult` as the plain JSON a case stores, and back.

Every field of the result is kept (fields added later, such as provenance, too), so a row
written by one version reads back whole in the next.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from forensics_app.core.results import ScanResult, Verdict

_RESULT_FIELDS = {f.name for f in dataclasses.fields(ScanResult)}


def result_to_record(r: ScanResult) -> dict[str, Any]:
    """Every field of the result (including ones added later, such as provenance)."""
    rec = dataclasses.asdict(r)
    rec["verdict"] = r.verdict.value
    return rec


def _type_hints(cls: type) -> dict[str, Any]:
    """Field types of a record dataclass, resolving names its module imports lazily."""
    ns: dict[str, Any] = {}
    try:
        from forensics_app.core import provenance

        ns = dict(vars(provenance))
    except ImportError:  # pragma: no cover - before provenance existed
        pass
    try:
        return typing.get_type_hints(cls, localns=ns)
    except (NameError, TypeError):
        return {}


def _from_plain(hint: Any, value: Any) -> Any:
    """Rebuild nested dataclasses (e.g. a result's provenance) from their JSON form."""
    if value is None:
        return None
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        hints = _type_hints(hint)
        names = {f.name for f in dataclasses.fields(hint) if f.init}
        return hint(**{k: _from_plain(hints.get(k), v) for k, v in value.items() if k in names})
    if origin in (list, tuple) and args and isinstance(value, list):
        return [_from_plain(args[0], v) for v in value]
    if len(args) == 1 and origin is not list:  # X | None
        return _from_plain(args[0], value)
    return value


def record_to_result(rec: dict[str, Any]) -> ScanResult:
    hints = _type_hints(ScanResult)
    kwargs = {k: v for k, v in rec.items() if k in _RESULT_FIELDS}
    kwargs["verdict"] = Verdict(kwargs.get("verdict", Verdict.ERROR.value))
    kwargs["tile_boxes"] = [tuple(b) for b in kwargs.get("tile_boxes") or []]
    for name, value in kwargs.items():
        hint = hints.get(name)
        if isinstance(value, dict) and hint is not None:
            try:
                kwargs[name] = _from_plain(hint, value)
            except (TypeError, ValueError):
                pass  # keep the plain form rather than lose the row
    return ScanResult(**kwargs)
