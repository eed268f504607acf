"""A witness map kept in a case as an exhibit: a file in the case folder, hashed, audited.

The map is written into ``<case>/exhibits/`` (never beside the evidence) under a name made
of the evidence's and the map's SHA-256 (never the evidence's own name), and one audit entry
records the exhibit's hash with the evidence it describes, the witness, its finding and its
rule, so the case's hash chain covers it. The report shows each exhibit with its finding and
says when its file is missing or no longer matches the audited hash.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forensics_app.core.witnesses.base import WitnessResult

ACTION = "witness exhibit added"
FOLDER = "exhibits"


@dataclass(frozen=True)
class Exhibit:
    file: str  # name inside <case>/exhibits/
    sha256: str  # of the PNG
    evidence_path: str
    evidence_sha256: str
    witness: str
    detected: bool | None
    finding: str
    rule: str
    seq: int = 0  # the audit entry
    time_utc: str = ""

    @classmethod
    def from_audit(cls, entry: Any) -> Exhibit:
        p = entry.params
        return cls(str(p.get("file", "")), str(p.get("sha256", "")),
                   str(p.get("evidence_path", "")), str(p.get("evidence_sha256", "")),
                   str(p.get("witness", "")), p.get("detected"), str(p.get("finding", "")),
                   str(p.get("rule", "")), entry.seq, entry.time_utc)

    def read(self, case_folder: Path | str) -> tuple[bytes | None, str | None]:
        """The PNG's bytes and None, or None and why it cannot be shown."""
        path = Path(case_folder) / FOLDER / Path(self.file).name
        try:
            data = path.read_bytes()
        except OSError as exc:
            return None, f"exhibit file {self.file} cannot be read: {exc.strerror or exc}"
        if hashlib.sha256(data).hexdigest() != self.sha256:
            return None, (f"exhibit file {self.file} no longer matches the SHA-256 recorded "
                          "in the audit log")
        return data, None


def add_exhibit(case: Any, evidence_path: str, evidence_sha256: str,
                result: WitnessResult) -> Exhibit:
    """Store ``result``'s map in the case and audit it; ValueError when it has no map."""
    from forensics_app.core.outputs import atomic_write

    if not result.map_png:
        raise ValueError(f"the {result.name} witness has no map to add")
    digest = hashlib.sha256(result.map_png).hexdigest()
    name = f"{evidence_sha256[:16]}_{result.name}_{digest[:12]}.png"
    folder = Path(case.folder) / FOLDER
    folder.mkdir(exist_ok=True)
    atomic_write(folder / name, result.map_png)
    params = {"file": name, "sha256": digest, "evidence_path": evidence_path,
              "evidence_sha256": evidence_sha256, "witness": result.name,
              "detected": result.detected, "finding": result.finding, "rule": result.rule}
    entry = case.audit(ACTION, params)
    return Exhibit.from_audit(entry)


def case_exhibits(audit: list[Any]) -> list[Exhibit]:
    """Every exhibit the audit log records, oldest first."""
    return [Exhibit.from_audit(e) for e in audit if e.action == ACTION]


def as_jpeg(png: bytes, max_px: int = 560) -> bytes:
    """The map as the JPEG the report embeds (reports carry JPEGs only)."""
    from PIL import Image

    with Image.open(io.BytesIO(png), formats=["PNG"]) as im:
        im = im.convert("RGB")
        im.thumbnail((max_px, max_px))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90)
    return buf.getvalue()
