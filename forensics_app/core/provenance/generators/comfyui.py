"""ComfyUI: the API "prompt" graph (nodes with ``class_type``) and the UI "workflow" graph.

Found in PNG ``prompt`` / ``workflow`` chunks, as ``workflow:{…}`` / ``prompt:{…}`` in EXIF
IFD0 strings (its WebP/JPEG savers), and as ``{"prompt": {…}}`` in EXIF UserComment (save
nodes of custom packs).
"""

from __future__ import annotations

from typing import Any

from forensics_app.core.provenance.generators.fields import GeneratorMatch, TextField
from forensics_app.core.provenance.text import scalar


def graph_nodes(graph: Any) -> list[dict[str, Any]]:
    if not isinstance(graph, dict):
        return []
    return [n for n in graph.values() if isinstance(n, dict) and "class_type" in n]


def fill_from_nodes(m: GeneratorMatch, nodes: list[dict[str, Any]]) -> None:
    for node in nodes:
        ctype = str(node.get("class_type", ""))
        inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
        if "Sampler" in ctype or ctype.startswith("KSampler"):
            for src, attr in (("seed", "seed"), ("noise_seed", "seed"), ("steps", "steps"),
                              ("sampler_name", "sampler"), ("cfg", "cfg_scale")):
                v = scalar(inputs.get(src))
                if v is not None and getattr(m, attr) is None:
                    setattr(m, attr, v)
        if "Loader" in ctype and m.model is None:
            for src in ("ckpt_name", "unet_name", "model_name"):
                v = scalar(inputs.get(src))
                if v is not None:
                    m.model = v
                    break
        if ctype.startswith("CLIPTextEncode") and m.prompt is None:
            m.prompt = scalar(inputs.get("text"), 500)


def _is_workflow(obj: dict[str, Any]) -> bool:
    nodes = obj.get("nodes")
    return (isinstance(nodes, list) and any(isinstance(n, dict) and "type" in n for n in nodes)
            and ("links" in obj or "last_node_id" in obj))


def parse(f: TextField, others: dict[str, str]) -> GeneratorMatch | None:
    obj = f.json
    if obj is None:
        return None
    nodes = graph_nodes(obj.get("prompt")) or graph_nodes(obj)
    if nodes:
        m = GeneratorMatch("ComfyUI")
        fill_from_nodes(m, nodes)
        return m
    workflow = obj.get("workflow") if isinstance(obj.get("workflow"), dict) else obj
    if _is_workflow(workflow):
        m = GeneratorMatch("ComfyUI (workflow only)", weak=True)
        for n in workflow["nodes"]:
            values = n.get("widgets_values") if isinstance(n, dict) else None
            if "Loader" in str(n.get("type", "")) and isinstance(values, list) and values:
                m.model = scalar(values[0])
                break
        return m
    return None
