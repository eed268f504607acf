"""Second witnesses: classic forensic analyses read beside the detector.

One module per witness (ela, noise, jpeg, thumbnail, clone), each an ``analyse(Subject)``
returning a :class:`WitnessResult`; this registry names them, runs the ones asked for (a
witness that fails gives an error result, never stops the others or the scan), and saves
their maps where the caller's output guard allowed. Nothing here writes beside evidence.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from forensics_app.core.witnesses import clone, ela, jpeg, noise, thumbnail
from forensics_app.core.witnesses.base import Analyse, Subject, WitnessResult

__all__ = ["WITNESSES", "Subject", "WitnessResult", "parse_witness_names", "run_witnesses",
           "analyse_bytes", "save_maps", "witness_records", "csv_cells", "csv_columns"]

WITNESSES: dict[str, Analyse] = {
    "ela": ela.analyse,
    "noise": noise.analyse,
    "jpeg": jpeg.analyse,
    "thumbnail": thumbnail.analyse,
    "clone": clone.analyse,
}


class WitnessCancelled(Exception):
    """``should_cancel`` said stop between two witnesses."""


def parse_witness_names(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"ela,noise"`` or ``"all"`` as registry names, in registry order; unknown names
    raise ValueError naming the known ones."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names = {n.strip().lower() for n in items if n.strip()}
    if "all" in names:
        return tuple(WITNESSES)
    unknown = sorted(names - set(WITNESSES))
    if unknown:
        raise ValueError(f"unknown witness {', '.join(unknown)}: choose from "
                         f"{', '.join(WITNESSES)} or all")
    return tuple(n for n in WITNESSES if n in names)


def run_witnesses(subject: Subject, names: Iterable[str],
                  should_cancel: Callable[[], bool] | None = None) -> list[WitnessResult]:
    """Each named witness on ``subject``; a failing one gives an error result."""
    import cv2

    cv2.setNumThreads(1)  # deterministic and polite beside the scan's own threads
    out = []
    for name in names:
        if should_cancel is not None and should_cancel():
            raise WitnessCancelled(name)
        t0 = time.perf_counter()
        try:
            result = WITNESSES[name](subject)
        except MemoryError:
            result = WitnessResult(name, None, "out of memory; not analysed", "",
                                   error="out of memory")
        except Exception as exc:  # noqa: BLE001 -- one witness failing never stops the rest
            why = f"{type(exc).__name__}: {str(exc)[:200]}"
            result = WitnessResult(name, None, f"could not run ({why})", "", error=why)
        result.elapsed_ms = 1000.0 * (time.perf_counter() - t0)
        out.append(result)
    return out


def analyse_bytes(data: bytes, names: Iterable[str], name: str = "upload", limits=None,
                  should_cancel: Callable[[], bool] | None = None) -> list[WitnessResult]:
    """Decode ``data`` under the engine's bomb guard (core.loading) and run the witnesses.
    Raises ``ImageLoadError`` when the bytes cannot be decoded."""
    from forensics_app.core.loading import decode_image

    image, facts = decode_image(data, name, limits=limits)
    return run_witnesses(Subject(image, data, facts.get("format") or ""), names,
                         should_cancel)


def save_maps(results: Iterable[WitnessResult], folder: Path | str, stem: str) -> list[str]:
    """Write each result's map as ``<stem>_<witness>.png`` in ``folder`` (already checked by
    the output guard; ``stem`` is never evidence-controlled: use the file's SHA-256) and set
    ``map_file``. Returns the problems met (a map not written never fails the row)."""
    from forensics_app.core.outputs import OutputWriteError, atomic_write

    folder = Path(folder)
    problems = []
    for r in results:
        if r.map_png is None:
            continue
        target = folder / f"{stem}_{r.name}.png"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write(target, r.map_png)
            r.map_file = target.name
        except (OSError, OutputWriteError) as exc:
            problems.append(f"{r.name} map not written: {exc}")
    return problems


def witness_records(results: Iterable[WitnessResult]) -> dict[str, dict]:
    return {r.name: r.record() for r in results}


def csv_columns(names: Iterable[str]) -> list[str]:
    return [f"witness_{n}_detected" for n in names]


def csv_cells(records: dict[str, dict] | None, names: Iterable[str]) -> dict[str, str]:
    """One cell per witness: yes, no, or empty (does not apply, or could not run)."""
    out = {}
    for n in names:
        d = (records or {}).get(n, {}).get("detected")
        out[f"witness_{n}_detected"] = "" if d is None else ("yes" if d else "no")
    return out
