"""Automatic1111 / Forge / SD.Next / Fooocus-A1111-scheme ``parameters`` text.

The prompt, an optional "Negative prompt:" line, then one line of ``key: value, …`` pairs
that starts with ``Steps:`` and holds ``Sampler`` and ``Seed``: the structure the tool
writes, and the only one matched (a caption that merely says "Seed: 42" is not A1111).
"""

from __future__ import annotations

from forensics_app.core.provenance.generator_names import match_generator
from forensics_app.core.provenance.generators.fields import GeneratorMatch, TextField

MAX_PARAMETER_LINE = 16384  # the "Steps: …" line; longer ones are not parsed
REQUIRED = ("Steps", "Sampler", "Seed")
_KEYS = {"Steps": "steps", "Sampler": "sampler", "CFG scale": "cfg_scale", "Seed": "seed",
         "Size": "size", "Model": "model"}


def split_pairs(line: str) -> dict[str, str]:
    """``k: v, k: "v, with comma", …`` in one linear pass (no regex backtracking)."""
    pairs: dict[str, str] = {}
    item, quoted = [], False
    for ch in line + ",":
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            key, sep, value = "".join(item).partition(":")
            if sep and key.strip() and len(key) < 64:
                pairs[key.strip()] = value.strip().strip('"')
            item = []
            continue
        item.append(ch)
    return pairs


def parse(f: TextField, others: dict[str, str]) -> GeneratorMatch | None:
    lines = f.text.strip().splitlines()
    if not lines or f.text.lstrip().startswith("{"):
        return None
    last = lines[-1].strip()
    if len(last) > MAX_PARAMETER_LINE or not last.startswith("Steps:"):
        return None
    pairs = split_pairs(last)
    if not all(k in pairs for k in REQUIRED):
        return None
    version = pairs.get("Version", "")
    tool = match_generator(version)
    name = (f"{tool} (A1111-style parameters, {version[:40]})" if tool
            else "Stable Diffusion (A1111-style parameters" + (f", {version[:40]})" if version
                                                               else ")"))
    if "Civitai resources" in pairs or "Civitai metadata" in pairs:
        name = "Civitai generator (A1111-style parameters)"
    m = GeneratorMatch(name, **{attr: pairs[k][:200] for k, attr in _KEYS.items() if k in pairs})
    if m.model is None and "Model hash" in pairs:
        m.model = f"hash {pairs['Model hash']}"[:200]
    prompt_lines = []
    for line in lines[:-1]:
        if line.startswith("Negative prompt:"):
            break
        prompt_lines.append(line)
    m.prompt = "\n".join(prompt_lines)[:500] or None
    return m
