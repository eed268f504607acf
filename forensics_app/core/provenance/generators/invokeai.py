"""InvokeAI: ``invokeai_metadata`` JSON (3.x+), ``sd-metadata`` JSON (2.x) and ``Dream`` text.

The 2.x ``Dream`` chunk is a command line: ``"a prompt [negative]" -s 50 -S 42 -W 512 -H 512
-C 7.5 -A k_lms``.
"""

from __future__ import annotations

import shlex

from forensics_app.core.provenance.generators.fields import GeneratorMatch, TextField, pick
from forensics_app.core.provenance.text import scalar

MAX_DREAM_CHARS = 65536  # a Dream command line (shlex is linear; longer ones are not parsed)
_DREAM_OPTS = {"-s": "steps", "--steps": "steps", "-S": "seed", "--seed": "seed",
               "-C": "cfg_scale", "--cfg_scale": "cfg_scale", "-A": "sampler",
               "--sampler": "sampler", "-m": "model", "--model": "model"}


def _dream(text: str) -> GeneratorMatch | None:
    text = text.strip()[:MAX_DREAM_CHARS]
    if not text.startswith('"'):
        return None
    try:
        words = shlex.split(text)
    except ValueError:
        return None
    if not words or not any(w in ("-S", "--seed", "-s", "--steps") for w in words[1:]):
        return None
    m = GeneratorMatch("InvokeAI (2.x Dream)", prompt=words[0][:500])
    width = height = None
    for opt, value in zip(words[1:], words[2:], strict=False):
        if opt in _DREAM_OPTS:
            setattr(m, _DREAM_OPTS[opt], value[:200])
        elif opt in ("-W", "--width"):
            width = value[:10]
        elif opt in ("-H", "--height"):
            height = value[:10]
    m.size = f"{width}x{height}" if width and height else None
    return m


def parse(f: TextField, others: dict[str, str]) -> GeneratorMatch | None:
    if f.key == "Dream":
        return _dream(f.text)
    if f.key not in ("invokeai_metadata", "sd-metadata", "invokeai_graph"):
        return None
    obj = f.json
    if obj is None:
        return None
    legacy = f.key == "sd-metadata"
    m = GeneratorMatch("InvokeAI (legacy sd-metadata)" if legacy else "InvokeAI")
    image = obj.get("image") if isinstance(obj.get("image"), dict) else obj
    model = pick(obj, "model_weights", "model")
    if isinstance(model, dict):
        model = pick(model, "model_name", "name")
    m.model = scalar(model)
    prompt = pick(image, "positive_prompt", "prompt")
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], dict):
        prompt = prompt[0].get("prompt")
    m.prompt = scalar(prompt, 500)
    m.seed = scalar(image.get("seed"))
    m.steps = scalar(image.get("steps"))
    m.cfg_scale = scalar(pick(image, "cfg_scale", "scale"))
    m.sampler = scalar(pick(image, "scheduler", "sampler"))
    w, h = scalar(image.get("width")), scalar(image.get("height"))
    m.size = f"{w}x{h}" if w and h else None
    return m
