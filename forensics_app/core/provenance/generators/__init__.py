"""Generator metadata: one parser per format, tried on every text field that can hold it.

A field is any embedded text — PNG text chunks, JPEG/GIF comments, EXIF IFD0 strings and
UserComment, XMP descriptions, IPTC-IIM captions — because writers put the same JSON in
different places (ComfyUI's workflow in an EXIF Make, SwarmUI's in UserComment, Fooocus's in
a PNG ``parameters`` chunk). Fields are tried in the order found, each with every parser in
:data:`PARSERS` (most specific first); the first match names the generator.
"""

from __future__ import annotations

from collections.abc import Callable

from forensics_app.core.provenance.generators import (
    a1111,
    civitai,
    comfyui,
    fooocus,
    invokeai,
    json_parameters,
    midjourney,
    novelai,
    swarmui,
)
from forensics_app.core.provenance.generators.fields import GeneratorMatch, TextField
from forensics_app.core.provenance.records import GeneratorFindings, TextEntry

Parser = Callable[[TextField, dict[str, str]], GeneratorMatch | None]

# most specific first: Civitai's and SwarmUI's JSON hold ComfyUI-like graphs, Fooocus's and
# NovelAI's are generation JSON with known keys; json_parameters is the generic last resort
PARSERS: tuple[tuple[str, Parser], ...] = (
    ("SwarmUI", swarmui.parse),
    ("Civitai", civitai.parse),
    ("ComfyUI", comfyui.parse),
    ("InvokeAI", invokeai.parse),
    ("NovelAI", novelai.parse),
    ("Fooocus", fooocus.parse),
    ("A1111", a1111.parse),
    ("Midjourney", midjourney.parse),
    ("JSON parameters", json_parameters.parse),
)

__all__ = ["PARSERS", "GeneratorMatch", "TextField", "read_generator_text"]


def read_generator_text(fields: list[TextField], entries: list[TextEntry],
                        notes: list[str]) -> GeneratorFindings:
    g = GeneratorFindings(entries=entries)
    others = {f.key: f.text for f in fields}
    match: GeneratorMatch | None = None
    weak: tuple[GeneratorMatch, TextField] | None = None
    for f in fields:
        for _name, parse in PARSERS:
            found = parse(f, others)
            if found is None:
                continue
            if found.weak:  # e.g. a ComfyUI workflow without its prompt graph
                weak = weak or (found, f)
                continue
            match = found
            g.source = f.label
            break
        if match is not None:
            break
        if f.json_error and f.worth_noting:
            notes.append(f"{f.label} looks like generator metadata but is unreadable: "
                         f"{f.json_error}")
    if match is None and weak is not None:
        match, g.source = weak[0], weak[1].label
    if match is not None:
        match.fill(g)
    return g
