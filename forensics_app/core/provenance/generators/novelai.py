"""NovelAI, in every place it writes its settings.

PNG: ``Software: NovelAI``, ``Source`` (model), ``Description`` (prompt), ``Title`` ("NovelAI
generated image") and a ``Comment`` JSON of generation settings (``uc`` is its negative
prompt; V4 puts the prompt in ``v4_prompt.caption.base_caption``). JPEG and WebP: the same
chunks as one JSON object in EXIF UserComment, its ``Comment`` a JSON string, and the prompt
in ImageDescription. V3/V4 images whose text chunks were stripped may still carry the same
JSON in the alpha channel's low bits (read by ``provenance.stealth`` into a ``stealth``
field).
"""

from __future__ import annotations

from typing import Any

from forensics_app.core.provenance.generators.fields import GeneratorMatch, TextField
from forensics_app.core.provenance.text import load_json_object, scalar

_NOVELAI_KEYS = {"uc", "n_samples", "v4_prompt", "noise_schedule", "uncond_scale",
                 "cfg_rescale", "request_type"}


def _v4_prompt(obj: dict[str, Any]) -> str | None:
    v4 = obj.get("v4_prompt")
    caption = v4.get("caption") if isinstance(v4, dict) else None
    return scalar(caption.get("base_caption"), 500) if isinstance(caption, dict) else None


def _is_novelai(outer: dict[str, Any]) -> bool:
    return ("novelai" in str(outer.get("Software", "")).lower()
            or "novelai" in str(outer.get("Title", "")).lower())


def parse(f: TextField, others: dict[str, str]) -> GeneratorMatch | None:
    obj = f.json
    if obj is None:
        return None
    outer: dict[str, Any] = dict(others)
    if f.key not in ("Comment", "comment"):
        # JPEG/WebP (EXIF UserComment) and the alpha-channel copy: every PNG chunk in one
        # object; the settings are its "Comment", itself JSON text
        comment = obj.get("Comment")
        if not isinstance(comment, str | dict) or not _is_novelai(obj):
            return None
        outer = obj
        try:
            inner = comment if isinstance(comment, dict) else load_json_object(comment)
        except ValueError:
            inner = None
        obj = inner if isinstance(inner, dict) else {}
    elif not _is_novelai(outer) and not (_NOVELAI_KEYS & set(obj) and "steps" in obj):
        return None
    m = GeneratorMatch("NovelAI")
    m.prompt = (scalar(obj.get("prompt"), 500) or _v4_prompt(obj)
                or scalar(outer.get("Description"), 500))
    m.seed, m.steps = scalar(obj.get("seed")), scalar(obj.get("steps"))
    m.cfg_scale, m.sampler = scalar(obj.get("scale")), scalar(obj.get("sampler"))
    w, h = scalar(obj.get("width")), scalar(obj.get("height"))
    m.size = f"{w}x{h}" if w and h else None
    m.model = scalar(outer.get("Source"))
    return m
