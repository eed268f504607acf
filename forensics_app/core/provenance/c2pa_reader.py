"""C2PA Content Credentials, read by the CAI's own library (``c2pa-python``), offline.

Remote manifests and OCSP are never fetched: a manifest stored elsewhere is reported as
existing and not fetched. Validation statuses are kept exactly as the library gives them —
the active manifest's, those it finds for ingredients now (``ingredientDeltas``) and those
recorded in each ingredient when it was added — and every manifest with a failure is named
in ``failed_manifests``; the wording of what they mean lives on
:class:`~.records.C2paFindings`. :func:`fill_from_store` takes the library's JSON, so the
mapping can be checked on any structure the library returns.
"""

from __future__ import annotations

import io
import json
import re
import threading
from typing import Any

from forensics_app.core.provenance.records import UNTRUSTED_ONLY, C2paFindings, ProvenanceOptions
from forensics_app.core.provenance.text import reason

_context_lock = threading.Lock()
_contexts: dict[str | None, Any] = {}

MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "TIFF": "image/tiff",
        "GIF": "image/gif", "HEIC": "image/heic", "HEIF": "image/heif", "AVIF": "image/avif",
        "JXL": "image/jxl"}
_URL = re.compile(r"https?://[^\s\"')]+")
# "self#jumbf=/c2pa/urn:c2pa:…/c2pa.assertions/…": the manifest a status points into
_MANIFEST_IN_URL = re.compile(r"jumbf=/?c2pa/([^/]+)")
MAX_STATUSES = 500  # statuses kept per store (a hostile store may list millions)


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
    try:
        fill_from_store(found, store if isinstance(store, dict) else {})
    except Exception as exc:  # noqa: BLE001 -- a store shaped unlike the library's own
        found.error = f"manifest store read, but not understood: {reason(exc)}"
        notes.append(f"C2PA {found.error}")
        if not found.failed_manifests:  # nothing said about it can be taken at its word
            found.failed_manifests[str(found.active_manifest)] = ["store not understood"]
    return found


def _status(s: dict[str, Any], kind: str) -> dict[str, str]:
    return {"kind": kind, "code": str(s.get("code", ""))[:120],
            "explanation": str(s.get("explanation", ""))[:500], "url": str(s.get("url", ""))[:300]}


def _agent(agent: Any) -> str | None:
    if isinstance(agent, dict):
        agent = " ".join(str(x) for x in (agent.get("name"), agent.get("version")) if x)
    return str(agent)[:200] if agent else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any, limit: int = 300) -> str | None:
    return str(value)[:limit] if value is not None and not isinstance(value, dict | list) else None


def _manifest_of(url: str) -> str | None:
    m = _MANIFEST_IN_URL.search(url or "")
    return m.group(1) if m else None


def _status_lists(codes: Any) -> list[tuple[str, dict[str, Any]]]:
    """(kind, status) of a {success, informational, failure} map, or of a flat list (failures)."""
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(codes, dict):
        for kind in ("success", "informational", "failure"):
            out += [(kind, s) for s in _list(codes.get(kind)) if isinstance(s, dict)]
    elif isinstance(codes, list):
        out += [("failure", s) for s in codes if isinstance(s, dict)]
    return out[:MAX_STATUSES]


def _ingredient_statuses(found: C2paFindings, manifests: dict[str, Any],
                         results: dict[str, Any]) -> None:
    """Every ingredient status the library reports, and the manifests that failed."""
    by_assertion: dict[tuple[str, str], dict[str, Any]] = {}
    for label, m in manifests.items():
        for ing in _list(_dict(m).get("ingredients")):
            if not isinstance(ing, dict):
                continue
            title = str(ing.get("title") or "untitled")[:200]
            by_assertion[(label, str(ing.get("label") or ""))] = ing
            # recorded when the ingredient was added: validation_results (v3), else the
            # v1/v2 flat validation_status list (failures only)
            recorded = _dict(ing.get("validation_results")).get("activeManifest")
            codes = _status_lists(recorded) if recorded else _status_lists(
                ing.get("validation_status"))
            for kind, st in codes:
                if kind == "success":
                    continue
                row = _status(st, kind)
                row.update(ingredient=title, origin="recorded at signing")
                found.ingredient_status.append(row)
                if kind == "failure" and row["code"] not in UNTRUSTED_ONLY:
                    target = _text(ing.get("active_manifest")) or _manifest_of(row["url"])
                    if target:
                        found.failed_manifests.setdefault(str(target), []).append(row["code"])
    for delta in _list(results.get("ingredientDeltas")):
        if not isinstance(delta, dict):
            continue
        uri = str(delta.get("ingredientAssertionURI") or "")
        parent, _, assertion = uri.partition("/c2pa.assertions/")
        ing = by_assertion.get((_manifest_of(parent + "/") or "", assertion)) or {}
        title = str(ing.get("title") or assertion or uri or "untitled")[:200]
        for kind, st in _status_lists(delta.get("validationDeltas")):
            if kind == "success":
                continue
            row = _status(st, kind)
            row.update(ingredient=title, origin="validated now")
            found.ingredient_status.append(row)
            if kind == "failure" and row["code"] not in UNTRUSTED_ONLY:
                target = _manifest_of(row["url"]) or _text(ing.get("active_manifest"))
                if target:
                    found.failed_manifests.setdefault(str(target), []).append(row["code"])
    found.ingredient_status = found.ingredient_status[:MAX_STATUSES]


def _cawg(found: C2paFindings, label: str, active: bool, assertion: dict[str, Any]) -> None:
    """A CAWG assertion: who it names and how it is signed (never read as the C2PA claim)."""
    data = _dict(assertion.get("data"))
    payload = _dict(data.get("signer_payload"))
    names = []
    for ident in _list(data.get("verifiedIdentities") or data.get("verified_identities")):
        if isinstance(ident, dict):
            who = ident.get("name") or ident.get("username") or ident.get("address")
            provider = ident.get("provider")
            provider = provider.get("name") if isinstance(provider, dict) else provider
            if who:
                names.append(f"{who}" + (f" ({provider})" if provider else ""))
    info = _dict(data.get("signature_info"))
    if info.get("common_name") or info.get("issuer"):
        names.append(str(info.get("common_name") or info.get("issuer")))
    found.cawg.append({
        "manifest": label, "active": active, "label": str(assertion.get("label"))[:80],
        "sig_type": str(payload.get("sig_type") or data.get("sig_type") or "")[:80] or None,
        "named": [n[:200] for n in names[:10]],
    })


def _claim_failure(found: C2paFindings, label: str, active: str | None) -> list[str] | None:
    """Why a claim in manifest ``label`` is weaker: its own manifest failed, or (for an
    ingredient's manifest) the active manifest did, the only link from it to this file."""
    own = found.manifest_failure(label)
    if own or label == active:
        return own
    via = found.manifest_failure(active)
    return [f"active manifest: {', '.join(via)}"] if via else None


def fill_from_store(found: C2paFindings, store: dict[str, Any]) -> None:
    """Fill ``found`` from the manifest-store JSON c2pa-python's Reader returns."""
    state = store.get("validation_state")
    found.validation_state = str(state)[:40] if state is not None else None
    manifests = store.get("manifests")
    manifests = manifests if isinstance(manifests, dict) else {}
    active = store.get("active_manifest")
    active = str(active)[:200] if active is not None else None
    found.active_manifest = active
    all_results = store.get("validation_results")
    all_results = all_results if isinstance(all_results, dict) else {}
    results = _dict(all_results.get("activeManifest"))
    if results:
        for kind, st in _status_lists(results):
            found.validation_status.append(_status(st, kind))
    else:  # older stores: a flat list of problems
        for _kind, st in _status_lists(store.get("validation_status")):
            found.validation_status.append(_status(st, "failure"))
    _ingredient_statuses(found, manifests if isinstance(manifests, dict) else {}, all_results)
    for st in found.validation_status:
        code = st["code"]
        if st["kind"] != "failure" or code in UNTRUSTED_ONLY or code.startswith("cawg."):
            continue
        # a status in the active list may point into another manifest of the store
        target = _manifest_of(st["url"]) or str(active)
        found.failed_manifests.setdefault(target, []).append(code)
    placed = found.failed_manifests or any(s["kind"] == "failure" for s in found.ingredient_status)
    if str(found.validation_state).lower() == "invalid" and not placed:
        found.failed_manifests[str(active)] = ["validation_state Invalid"]
    found.failed_manifests = {k[:200]: list(dict.fromkeys(v))[:20]
                              for k, v in list(found.failed_manifests.items())[:50]}
    codes = {(s["kind"], s["code"]) for s in found.validation_status}
    if ("success", "signingCredential.trusted") in codes:
        found.trust = "trusted"
    elif ("failure", "signingCredential.untrusted") in codes:
        found.trust = "untrusted"
    m = _dict(manifests.get(active))
    found.title = str(m.get("title"))[:300] if m.get("title") else None
    for g in _list(m.get("claim_generator_info")):
        if isinstance(g, dict):
            name = " ".join(str(x) for x in (g.get("name"), g.get("version")) if x)
            if name:
                found.claim_generator_info.append(name[:200])
    claim = str(m.get("claim_generator") or "")[:200]
    found.claim_generator = (found.claim_generator_info[0] if found.claim_generator_info
                             else claim or None)
    if claim and claim not in found.claim_generator_info:  # a v1 claim's own string
        found.claim_generator_info.append(claim)
    sig = _dict(m.get("signature_info"))
    found.signer, found.issuer = _text(sig.get("common_name")), _text(sig.get("issuer"))
    found.signing_time, found.signature_alg = _text(sig.get("time")), _text(sig.get("alg"))
    for ing in _list(m.get("ingredients")):
        if not isinstance(ing, dict):
            continue
        target = _text(ing.get("active_manifest"))
        found.ingredients.append({"title": _text(ing.get("title")),
                                  "relationship": _text(ing.get("relationship")),
                                  "format": _text(ing.get("format")), "manifest": target,
                                  "failed": found.manifest_failure(target)})
    order = [active] + [k for k in manifests if k != active]
    for label in order:
        for assertion in _list(_dict(manifests.get(label)).get("assertions")):
            if not isinstance(assertion, dict):
                continue
            if str(assertion.get("label", "")).startswith("cawg."):
                _cawg(found, label, label == active, assertion)
                continue
            if not str(assertion.get("label", "")).startswith("c2pa.actions"):
                continue
            for a in _list(_dict(assertion.get("data")).get("actions")):
                if not isinstance(a, dict):
                    continue
                found.actions.append({
                    "manifest": label, "active": label == active,
                    "action": _text(a.get("action")),
                    "digital_source_type": _text(a.get("digitalSourceType")),
                    "software_agent": _agent(a.get("softwareAgent")), "when": _text(a.get("when")),
                    "failed": _claim_failure(found, label, active),
                })
