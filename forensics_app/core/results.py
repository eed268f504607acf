"""Result records and verdicts."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forensics_app.core.provenance import Provenance


class Verdict(StrEnum):
    AI_GENERATED = "AI-generated"
    REAL = "Real"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"

    @property
    def label(self) -> str:
        """Short machine label as web APIs return it."""
        return {"AI-generated": "fake", "Real": "real", "Inconclusive": "inconclusive"}.get(
            self.value, "error"
        )


def verdict_for(prob_fake: float | None, threshold: float, band: float,
                domain_caveat: str | None = None) -> Verdict:
    """AI-generated at or above ``threshold + band``, Real below ``threshold - band``.

    Scores inside the band around the threshold are Inconclusive; ``band = 0`` disables it.
    An image the detector found outside its validated domains (``domain_caveat``) is
    Inconclusive whatever its score: the score is shown, the verdict does not rest on it.
    """
    if prob_fake is None or not math.isfinite(prob_fake):
        return Verdict.ERROR
    if domain_caveat:
        return Verdict.INCONCLUSIVE
    if prob_fake >= threshold + band:
        return Verdict.AI_GENERATED
    if prob_fake < threshold - band:
        return Verdict.REAL
    return Verdict.INCONCLUSIVE


CAVEAT_LEAD = "Inconclusive whatever the score"


@dataclass
class ScanResult:
    """One scanned file. ``prob_fake`` is None when the file could not be scored."""

    path: str
    sha256: str | None = None
    bytes: int | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    mode: str | None = None
    prob_fake: float | None = None
    verdict: Verdict = Verdict.ERROR
    threshold: float = 0.5
    inconclusive_band: float = 0.0
    model_id: str = ""
    device: str = ""
    preprocessing: str = ""
    elapsed_ms: float = 0.0
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    tile_probs: list[float] = field(default_factory=list)
    tile_boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    index: int = 0  # stable position in the scan's input order
    # What the file's own metadata says (C2PA, XMP, EXIF, generator text); never changes the
    # score or verdict. None when provenance was not read.
    provenance: Provenance | None = None
    # Each detector branch's own P(generated) (``core.branches``: "trace", "semantic"), each
    # calibrated to its own threshold; ``prob_fake`` is their fusion. Empty for a one-branch
    # detector, whose ``prob_fake`` is the trace branch's.
    branch_probs: dict[str, float] = field(default_factory=dict)
    # Why the verdict is Inconclusive whatever the score: the detector found the image outside
    # the domains it was validated on (``core.clip_blocks``). None when it is inside them.
    domain_caveat: str | None = None
    # Second witnesses asked for (core.witnesses): name -> record (figures, detected, rule,
    # finding, map file). Empty when none were asked for.
    witnesses: dict[str, dict] = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        return Path(self.path).name

    @property
    def caveat_note(self) -> str:
        """The domain caveat as a note ("" when none, or when the row has no score)."""
        return (f"{CAVEAT_LEAD}: {self.domain_caveat}"
                if self.domain_caveat and self.ok else "")

    @property
    def ok(self) -> bool:
        return (self.error is None and self.prob_fake is not None
                and math.isfinite(self.prob_fake))

    def with_threshold(self, threshold: float, band: float) -> ScanResult:
        """A copy re-judged at another threshold/band (the score itself is unchanged)."""
        return dataclasses.replace(
            self, threshold=threshold, inconclusive_band=band,
            verdict=(verdict_for(self.prob_fake, threshold, band, self.domain_caveat)
                     if self.ok else Verdict.ERROR),
        )
