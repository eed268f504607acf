"""When the file's metadata points away from the detector's verdict (issue 37, H2).

:func:`forensics_app.core.provenance.disagreement` speaks only of *declarations* (C2PA, IPTC
digital source type). Real photos accused as AI-generated usually carry no declaration but do
name their camera in EXIF (Make/Model: "Apple iPhone 7", "NIKON D200"). That is unsigned free
text anyone can write, so it counts as a **weak** disagreement, labelled so -- enough for the
"Metadata disagrees with detector" filter to show the row, never a verdict of its own.
"""

from __future__ import annotations

from typing import Any

WEAK_LABEL = "weak"


def weak_disagreement(provenance: Any, verdict: Any) -> str | None:
    """A sentence when EXIF names a camera, nothing declares AI generation and the detector
    says AI-generated; else None."""
    if provenance is None or getattr(verdict, "value", verdict) != "AI-generated":
        return None
    if provenance.declared_generated is not None:  # a declaration decides (the strong rule)
        return None
    camera = getattr(getattr(provenance, "exif", None), "camera", None)
    if not camera:
        return None
    shown = camera if len(camera) <= 60 else camera[:59] + "…"
    return (f"{WEAK_LABEL}: EXIF names a camera ({shown}) and nothing declares AI generation, "
            "detector says AI-generated (EXIF is unsigned free text: a weak indication)")


def metadata_disagreement(provenance: Any, verdict: Any) -> str | None:
    """The strong disagreement (a declaration) if any, else the weak one."""
    from forensics_app.core.provenance import disagreement

    return disagreement(provenance, verdict) or weak_disagreement(provenance, verdict)
