"""Fooocus and RuinedFooocus: generation JSON in the PNG ``parameters`` chunk.

Fooocus writes ``{"Prompt": …, "Base Model": …, "Seed": …, "Version": "Fooocus v2.x"}``
(older) or snake_case keys with ``"metadata_scheme": "fooocus"`` and a ``fooocus_scheme``
chunk; RuinedFooocus writes ``"software": "RuinedFooocus"`` with ``base_model_name``.
"""

from __future__ import annotations

from forensics_app.core.provenance.generator_names import match_generator
from forensics_app.core.provenance.generators.fields import GeneratorMatch, TextField, pick
from forensics_app.core.provenance.text import scalar


def parse(f: TextField, others: dict[str, str]) -> GeneratorMatch | None:
    obj = f.json
    if obj is None:
        return None
    software = scalar(pick(obj, "software", "Version", "version"), 60) or ""
    scheme = scalar(obj.get("metadata_scheme")) or others.get("fooocus_scheme", "")
    if match_generator(software) != "Fooocus" and "fooocus" not in scheme.lower():
        return None
    name = "RuinedFooocus" if "ruined" in software.lower() else "Fooocus"
    m = GeneratorMatch(f"{name} ({software})" if software and software != name else name)
    m.prompt = scalar(pick(obj, "Prompt", "prompt", "full_prompt"), 500)
    m.model = scalar(pick(obj, "Base Model", "base_model", "base_model_name"))
    m.seed = scalar(pick(obj, "Seed", "seed"))
    m.steps = scalar(pick(obj, "Steps", "steps"))
    m.cfg_scale = scalar(pick(obj, "Guidance Scale", "guidance_scale", "cfg"))
    m.sampler = scalar(pick(obj, "Sampler", "sampler", "sampler_name"))
    size = scalar(pick(obj, "Resolution", "resolution"))
    w, h = scalar(pick(obj, "width")), scalar(pick(obj, "height"))
    m.size = size or (f"{w}x{h}" if w and h else None)
    return m
