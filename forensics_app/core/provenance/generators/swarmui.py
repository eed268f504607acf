"""SwarmUI (StableSwarmUI): ``{"sui_image_params": {…}, "sui_models": […]}``.

Written to the PNG ``parameters`` chunk and to EXIF UserComment of its JPEG/WebP output.
"""

from __future__ import annotations

from forensics_app.core.provenance.generators.fields import GeneratorMatch, TextField, pick
from forensics_app.core.provenance.text import scalar


def parse(f: TextField, others: dict[str, str]) -> GeneratorMatch | None:
    obj = f.json
    params = obj.get("sui_image_params") if obj else None
    if not isinstance(params, dict):
        return None
    version = scalar(params.get("swarm_version"), 40)
    m = GeneratorMatch("SwarmUI" + (f" {version}" if version else ""))
    m.prompt = scalar(params.get("prompt"), 500)
    m.model = scalar(params.get("model"))
    m.seed = scalar(params.get("seed"))
    m.steps = scalar(params.get("steps"))
    m.cfg_scale = scalar(pick(params, "cfgscale", "cfg_scale"))
    m.sampler = scalar(pick(params, "sampler", "scheduler"))
    w, h = scalar(params.get("width")), scalar(params.get("height"))
    m.size = f"{w}x{h}" if w and h else None
    return m
