"""Generation parameters as plain JSON (Hugging Face Spaces, diffusers scripts, web UIs).

The last resort: a JSON object with a prompt and at least one sampling parameter (seed,
steps, guidance). The tool is named from its own ``software``/``generator``/``model`` keys
through the generators table when it names itself, else "diffusion model (JSON parameters)".
"""

from __future__ import annotations

from forensics_app.core.provenance.generator_names import match_generator
from forensics_app.core.provenance.generators.fields import GeneratorMatch, TextField, pick
from forensics_app.core.provenance.text import scalar

_SAMPLING = ("seed", "steps", "num_inference_steps", "guidance_scale", "cfg_scale", "cfg",
             "sampler", "scheduler")


def parse(f: TextField, others: dict[str, str]) -> GeneratorMatch | None:
    obj = f.json
    if obj is None:
        return None
    prompt = scalar(pick(obj, "prompt", "positive_prompt", "Prompt"), 500)
    if not prompt or pick(obj, *_SAMPLING) is None:
        return None
    model = pick(obj, "model", "model_id", "Model", "base_model", "checkpoint")
    model = scalar(model.get("name") if isinstance(model, dict) else model)
    tool = scalar(pick(obj, "software", "generator", "app", "Version", "version"), 80)
    name = match_generator(tool) or match_generator(model)
    m = GeneratorMatch(name or "diffusion model (JSON generation parameters)", prompt=prompt,
                       model=model)
    m.seed = scalar(pick(obj, "seed"))
    m.steps = scalar(pick(obj, "steps", "num_inference_steps"))
    m.cfg_scale = scalar(pick(obj, "guidance_scale", "cfg_scale", "cfg"))
    m.sampler = scalar(pick(obj, "sampler", "scheduler"))
    w, h = scalar(obj.get("width")), scalar(obj.get("height"))
    m.size = f"{w}x{h}" if w and h else None
    return m
