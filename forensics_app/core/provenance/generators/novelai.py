"""NovelAI: PNG ``Software: NovelAI``, ``Source`` (model), ``Description`` (prompt) and a
``Comment`` JSON of generation settings (``uc`` is its negative prompt)."""

from __future__ import annotations

from forensics_app.core.provenance.generators.fields import GeneratorMatch, TextField
from forensics_app.core.provenance.text import scalar

_NOVELAI_KEYS = {"uc", "n_samples", "v4_prompt", "noise_schedule", "uncond_scale",
                 "cfg_rescale", "request_type"}


def parse(f: TextField, others: dict[str, str]) -> GeneratorMatch | None:
    if f.key != "Comment" and f.key != "comment":
        return None
    obj = f.json
    if obj is None:
        return None
    by_software = "novelai" in others.get("Software", "").lower()
    if not by_software and not (_NOVELAI_KEYS & set(obj) and "steps" in obj):
        return None
    m = GeneratorMatch("NovelAI")
    m.prompt = scalar(obj.get("prompt"), 500) or scalar(others.get("Description"), 500)
    m.seed, m.steps = scalar(obj.get("seed")), scalar(obj.get("steps"))
    m.cfg_scale, m.sampler = scalar(obj.get("scale")), scalar(obj.get("sampler"))
    w, h = scalar(obj.get("width")), scalar(obj.get("height"))
    m.size = f"{w}x{h}" if w and h else None
    m.model = scalar(others.get("Source"))
    return m
