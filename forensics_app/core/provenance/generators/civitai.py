"""Civitai's on-site generator: ComfyUI-like JSON with ``resource-stack`` nodes.

Written to EXIF UserComment of its JPEGs: ``{"resource-stack": {"class_type":
"CheckpointLoaderSimple", "inputs": {"ckpt_name": "urn:air:…"}}, …, "extraMetadata":
"{\\"prompt\\": …}"}``. (Its A1111-style text with "Civitai resources:" is read by a1111.)
"""

from __future__ import annotations

from forensics_app.core.provenance.generators.comfyui import fill_from_nodes, graph_nodes
from forensics_app.core.provenance.generators.fields import GeneratorMatch, TextField, pick
from forensics_app.core.provenance.text import load_json_object, scalar


def parse(f: TextField, others: dict[str, str]) -> GeneratorMatch | None:
    obj = f.json
    if not obj or not any(str(k).startswith("resource-stack") for k in obj):
        return None
    m = GeneratorMatch("Civitai generator")
    extra = obj.get("extraMetadata") or obj.get("extra")
    if isinstance(extra, str):
        try:
            extra = load_json_object(extra)
        except ValueError:
            extra = None
    if isinstance(extra, dict):
        m.prompt = scalar(extra.get("prompt"), 500)
        m.seed = scalar(extra.get("seed"))
        m.steps = scalar(extra.get("steps"))
        m.cfg_scale = scalar(pick(extra, "cfgScale", "cfg_scale"))
        m.sampler = scalar(extra.get("sampler"))
    fill_from_nodes(m, graph_nodes(obj))
    return m
