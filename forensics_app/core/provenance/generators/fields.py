"""What a generator parser sees (one text field) and what it returns (a match)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from forensics_app.core.provenance.records import GeneratorFindings
from forensics_app.core.provenance.text import load_json_object

# "workflow:{…}", "prompt:{…}", "Prompt: {…}" (ComfyUI's EXIF savers): a label, then JSON
_LABELLED_JSON = re.compile(r"^\s*([A-Za-z_ ]{1,24}):\s*(?=[{])")
# keys whose unreadable JSON is worth a note (elsewhere "{" may just start a sentence)
_GENERATOR_KEYS = {"parameters", "prompt", "workflow", "comment", "usercomment", "make",
                   "ifd0 usercomment", "exif:usercomment",
                   "model", "imagedescription", "invokeai_metadata", "sd-metadata"}


@dataclass
class TextField:
    source: str  # "PNG tEXt", "EXIF", "XMP", "IPTC-IIM", "JPEG COM", ...
    key: str  # chunk keyword, tag or property name
    text: str
    json_error: str | None = None

    @property
    def label(self) -> str:
        """How the field is named to the analyst: "PNG parameters", "EXIF UserComment"."""
        family = self.source.split()[0]
        return f"{family} {'comment' if self.key == 'comment' and family == 'JPEG' else self.key}"

    @property
    def worth_noting(self) -> bool:
        return self.key.lower() in _GENERATOR_KEYS

    @cached_property
    def label_prefix(self) -> str | None:
        """"workflow" for "workflow:{…}" (lower case), None for bare text."""
        m = _LABELLED_JSON.match(self.text[:64])
        return m.group(1).strip().lower() if m else None

    @cached_property
    def json(self) -> dict[str, Any] | None:
        """The JSON object the field holds (after a "label:" prefix), or None."""
        text = self.text
        m = _LABELLED_JSON.match(text[:64])
        if m:
            text = text[m.end():]
        try:
            return load_json_object(text)
        except ValueError as exc:
            self.json_error = str(exc)
            return None


@dataclass
class GeneratorMatch:
    generator: str
    model: str | None = None
    seed: str | None = None
    steps: str | None = None
    sampler: str | None = None
    cfg_scale: str | None = None
    size: str | None = None
    prompt: str | None = None
    weak: bool = False  # names the tool but holds no generation parameters
    extra: dict[str, str] = field(default_factory=dict)

    def fill(self, g: GeneratorFindings) -> None:
        g.generator = self.generator[:120]
        for name in ("model", "seed", "steps", "sampler", "cfg_scale", "size"):
            value = getattr(self, name)
            if value is not None:
                setattr(g, name, str(value)[:200])
        if self.prompt:
            g.prompt = self.prompt[:500]


def pick(obj: dict[str, Any], *keys: str) -> Any:
    """The first of ``keys`` present in ``obj`` (exact, then case-insensitive)."""
    for k in keys:
        if k in obj and obj[k] not in (None, ""):
            return obj[k]
    lower = {str(k).lower(): v for k, v in obj.items()}
    for k in keys:
        v = lower.get(k.lower())
        if v not in (None, ""):
            return v
    return None
