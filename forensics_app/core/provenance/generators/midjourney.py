"""Midjourney: the prompt and "Job ID: <uuid>" in a description (IPTC-IIM caption, XMP
dc:description, PNG ``Description``, EXIF ImageDescription)."""

from __future__ import annotations

import re

from forensics_app.core.provenance.generators.fields import GeneratorMatch, TextField
from forensics_app.core.provenance.limits import MAX_TEXT_CHUNK_BYTES

_JOB_ID = re.compile(r"\bJob ID:\s*([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12})")
_VERSION = re.compile(r"--(?:v|version)\s+([\w.]+)")
DESCRIPTION_KEYS = {"Description", "ImageDescription", "dc:description", "Caption-Abstract",
                    "comment", "Comment", "dc:title"}


def parse(f: TextField, others: dict[str, str]) -> GeneratorMatch | None:
    if f.key not in DESCRIPTION_KEYS:
        return None
    m = _JOB_ID.search(f.text[:MAX_TEXT_CHUNK_BYTES])  # the whole field: a linear search
    if not m:
        return None
    prompt = f.text[:m.start()].strip()
    version = _VERSION.search(prompt)
    name = "Midjourney" + (f" (v{version.group(1)[:10]})" if version else "")
    return GeneratorMatch(name, prompt=prompt[:500] or None, extra={"job_id": m.group(1)})
