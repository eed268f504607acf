"""C2PA Content Credentials, read by the CAI's own library (``c2pa-python``), offline.

Remote manifests and OCSP are never fetched: a manifest stored elsewhere is reported as
existing and not fetched. Validation statuses are kept exactly as the library gives them;
the wording of what they mean lives on :class:`~.records.C2paFindings`.
"""

from __future__ import annotations

import io
import json
import re
import threading
from typing import Any

from forensics_app.core.provenance.records import C2paFindings, ProvenanceOptions
from forensics_app.core.provenance.text import reason

_context_lock = threading.Lock()
_contexts: dict[str | None, Any] = {}

MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "TIFF": "image/tiff",
        "GIF": "image/gif", "HEIC": "image/heic", "HEIF": "image/heif", "AVIF": "image/avif",
        "JXL": "image/jxl"}
_URL = re.compile(r"https?://[^\s\"')]+")


def _context(options: ProvenanceOptions):
    """One library context per trust configuration; offline (no remote manifests, no OCSP)."""
    import c2pa

    key = options.trust_anchors_pem
    with _context_lock:
        ctx = _contexts.get(key)
        if ctx is None:
            settings: dict[str, Any] = {
                "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False,
                           "verify_trust": True},
            }
            if key:
                settings["trust"] = {"trust_anchors": key}
            ctx = c2pa.Context.from_dict(settings)
            _contexts[key] = ctx
        return ctx


def legacy_cai(jumbf_label: str | None) -> bool:
    """A JUMBF store labelled by the Content Authenticity Initiative before C2PA 1.0."""
    return bool(jumbf_label) and jumbf_label.lower().startswith("cai")


def read_c2pa(data: bytes, fmt: str | None, options: ProvenanceOptions, notes: list[str],
              jumbf_label: str | None = None) -> C2paFindings:
    found = C2paFindings(present=True, trust_anchors=options.trust_anchors_source)
    if legacy_cai(jumbf_label):
        found.legacy_cai = True
        found.error = ("pre-C2PA Content Authenticity Initiative (CAI) JUMBF block "
                       f"(label '{jumbf_label[:20]}'): an early format the C2PA library does "
                       "not read")
        notes.append(found.error)
        return found
    try:
        import c2pa

        ctx = _context(options)
        with c2pa.Reader(MIME.get(fmt or "", None), io.BytesIO(data), context=ctx) as reader:
            store = json.loads(reader.json())
            if not reader.is_embedded():
                found.remote_manifest_url = (reader.get_remote_url() or "")[:500] or None
    except Exception as exc:  # noqa: BLE001 -- c2pa.C2paError and anything from the FFI
        message = reason(exc)
        if "remote" in message.lower():
            url = _URL.search(message)
            found.remote_manifest_url = url.group(0)[:500] if url else "(address not given)"
        found.error = message
        notes.append(f"C2PA manifest present but unreadable: {message}")
        return found
    found.readable = True
    _fill(found, store)
    return found


def _status(s: dict[str, Any], kind: str) -> dict[str, str]:
    return {"kind": kind, "code": str(s.get("code", ""))[:120],
            "explanation": str(s.get("explanation", ""))[:500], "url": str(s.get("url", ""))[:300]}


def _agent(agent: Any) -> str | None:
    if isinstance(agent, dict):
        agent = " ".join(str(x) for x in (agent.get("name"), agent.get("version")) if x)
    return str(agent)[:200] if agent else None


def _fill(found: C2paFindings, store: dict[str, Any]) -> None:
    found.validation_state = store.get("validation_state")
    manifests = store.get("manifests") or {}
    active = store.get("active_manifest")
    found.active_manifest = active
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    if results:
        for kind in ("success", "informational", "failure"):
            for s in results.get(kind) or []:
                found.validation_status.append(_status(s, kind))
    else:  # older stores: a flat list of problems
        for s in store.get("validation_status") or []:
            found.validation_status.append(_status(s, "failure"))
    codes = {(s["kind"], s["code"]) for s in found.validation_status}
    if ("success", "signingCredential.trusted") in codes:
        found.trust = "trusted"
    elif ("failure", "signingCredential.untrusted") in codes:
        found.trust = "untrusted"
    m = manifests.get(active) or {}
    found.title = str(m.get("title"))[:300] if m.get("title") else None
    for g in m.get("claim_generator_info") or []:
        if isinstance(g, dict):
            name = " ".join(str(x) for x in (g.get("name"), g.get("version")) if x)
            if name:
                found.claim_generator_info.append(name[:200])
    claim = str(m.get("claim_generator") or "")[:200]
    found.claim_generator = (found.claim_generator_info[0] if found.claim_generator_info
                             else claim or None)
    if claim and claim not in found.claim_generator_info:  # a v1 claim's own string
        found.claim_generator_info.append(claim)
    sig = m.get("signature_info") or {}
    found.signer = sig.get("common_name")
    found.issuer = sig.get("issuer")
    found.signing_time = sig.get("time")
    found.signature_alg = sig.get("alg")
    for ing in m.get("ingredients") or []:
        found.ingredients.append({"title": ing.get("title"), "relationship": ing.get("relationship"),
                                  "format": ing.get("format"),
                                  "manifest": ing.get("active_manifest")})
    order = [active] + [k for k in manifests if k != active]
    for label in order:
        for assertion in (manifests.get(label) or {}).get("assertions") or []:
            if not str(assertion.get("label", "")).startswith("c2pa.actions"):
                continue
            for a in (assertion.get("data") or {}).get("actions") or []:
                found.actions.append({
                    "manifest": label, "active": label == active, "action": a.get("action"),
                    "digital_source_type": a.get("digitalSourceType"),
                    "software_agent": _agent(a.get("softwareAgent")), "when": a.get("when"),
                })
