"""The HTTP face of :class:`~forensics_app.server.service.ServeService` (FastAPI).

Uploads are parsed in memory (a multipart parser that never spools to a temporary file), so
an ``/analyze`` upload is never written to disk; a batch's uploads are written only into its
case. Every ``/api`` route needs the bearer token when one is configured; the page at ``/``
loads nothing from outside this server (its Content-Security-Policy says so) and no CORS
header is ever sent, so other sites' pages cannot read the answers.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartException, MultiPartParser

from forensics_app import __version__
from forensics_app.core.export import jsonl_row
from forensics_app.core.results import ScanResult, Verdict
from forensics_app.core.safetext import escape_for_terminal
from forensics_app.core.witnesses import parse_witness_names
from forensics_app.server.access import cross_site_refusal, host_allowed, token_matches
from forensics_app.server.case_report import PublicView
from forensics_app.server.service import (
    REPORT_FORMATS,
    BadUpload,
    NoSpace,
    NotResumable,
    QueueFull,
    ServeService,
    is_disk_full,
)
from forensics_app.server.upload_names import upload_name

log = logging.getLogger(__name__)

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                    "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
PAGE_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
THUMBNAIL_PX = 256
_MEDIA = {"html": "text/html", "pdf": "application/pdf", "csv": "text/csv",
          "jsonl": "application/x-ndjson"}
_MULTIPART = {"multipart/form-data": {"schema": {
    "type": "object", "required": ["image"],
    "properties": {"image": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}
_UPLOAD_BODY = {"requestBody": {"required": True, "content": _MULTIPART}}
_SCAN_BODY = {"requestBody": {"required": True, "content": _MULTIPART | {"application/json": {
    "schema": {"type": "object", "required": ["folder"], "properties": {
        "folder": {"type": "string", "description": "relative to the server's --scan-root"},
        "recursive": {"type": "boolean", "default": False}}}}}}}


API_DESCRIPTION = (
    "Scores images for being AI-generated with the detector this server loaded (its id, "
    "architecture and threshold: GET /api/v1/model), on this machine. Units: /api/v1/analyze "
    "answers in percent (prob_fake, prob_real, confidence, threshold: 0-100, the seed's "
    "contract); scan rows (/api/v1/scans/{id}/results) carry prob_fake as a fraction (0-1, as "
    "the JSON Lines report) and prob_fake_percent in percent. State-changing requests from "
    "another site's page are refused (403); with a token, every /api route and this schema "
    "need 'Authorization: Bearer <token>'.")
# Error answers every /api operation may give (each a JSON {"detail": ...}).
ERROR_RESPONSES = {
    "400": "bad request: malformed body, wrong field, refused Host header",
    "401": "missing or wrong token (servers started with one)",
    "403": "a state-changing request from another site's page (Origin / Sec-Fetch-Site)",
    "404": "no such scan, image or report format",
    "409": "the scan is not in a state that allows this (still running, not resumable)",
    "413": "request body over the server's limit (any transfer encoding); nothing stored",
    "415": "not multipart/form-data or JSON",
    "422": "a field of the right shape with a wrong value, or an image that cannot be scored",
    "429": "the queue is full; retry after the Retry-After header's seconds",
    "504": "not answered in time; retry later",
    "507": "no space left on the server's data disk; nothing of this request was kept",
}


def folder_request(body: bytes) -> tuple[str, bool]:
    """``{"folder": str, "recursive": bool}`` from a JSON body: 400 for a body that is not such
    an object, 422 for a field of the wrong type or value (never a 500)."""
    import json

    try:
        record = json.loads(body)
    except (ValueError, RecursionError):  # also a body nested too deep to parse
        raise HTTPException(400, 'send {"folder": "relative/path", "recursive": false} as '
                                 "JSON") from None
    if not isinstance(record, dict) or "folder" not in record:
        raise HTTPException(400, 'send {"folder": "relative/path", "recursive": false} as '
                                 "JSON")
    folder, recursive = record["folder"], record.get("recursive", False)
    if not isinstance(folder, str) or not folder or "\x00" in folder:
        raise HTTPException(422, "'folder' must be a non-empty string (a path relative to the "
                                 "scan root, without NUL)")
    if not isinstance(recursive, bool):
        raise HTTPException(422, "'recursive' must be true or false (JSON booleans)")
    return folder, recursive


class _InMemoryParser(MultiPartParser):
    """Starlette's multipart parser, keeping every part in memory: the request size limit
    bounds it, and an upload never touches a temporary file."""

    spool_max_size = 1 << 62

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        upload = getattr(self._current_part, "file", None)
        if upload is not None and upload.filename is not None:
            upload.filename = upload_name(self._current_part.content_disposition,
                                          upload.filename)


class RequestTooLarge(Exception):
    pass


class BodyLimit:
    """413 for a request body over ``limit`` bytes: at once from Content-Length, else when the
    streamed body passes it (nothing is parsed or stored beyond it)."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._too_large(send)
        seen = 0
        started = False

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise RequestTooLarge()
            return message

        async def watching_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except RequestTooLarge:
            if not started:
                await self._too_large(send)
        except BaseExceptionGroup as group:
            # A chunked body (no Content-Length) is read inside the middlewares' task
            # groups, which wrap the refusal in an exception group: the same 413.
            if group.subgroup(RequestTooLarge) is None:
                raise
            if not started:
                await self._too_large(send)

    async def _too_large(self, send) -> None:
        response = JSONResponse(
            {"detail": f"request body over the {self.limit:,}-byte limit; nothing was stored"},
            status_code=413, headers={"Connection": "close"})
        await response({"type": "http"}, None, send)


def create_app(service: ServeService, token: str | None = None,
               allowed_hosts: list[str] | None = None) -> FastAPI:
    """The application; ``allowed_hosts`` (Host header) guards a loopback server against DNS
    rebinding, ``token`` (when set) is required on every ``/api`` route."""
    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN. The schema is local.
    app = FastAPI(title="forensics-serve", version=__version__, docs_url=None, redoc_url=None,
                  description=API_DESCRIPTION)
    limits = service.limits

    @app.middleware("http")
    async def guard(request: Request, call_next):
        path = request.url.path
        refusal = None
        if allowed_hosts and not host_allowed(request.headers.get("host"), allowed_hosts):
            # DNS rebinding: a name that resolves here is refused (JSON, as every answer)
            refusal = 400, "Host header not allowed: use http://127.0.0.1 or localhost", {}
        elif (reason := cross_site_refusal(request.method, request.headers)) is not None:
            refusal = 403, reason, {}  # D7: another site's page cannot change anything here
        elif token is not None and (path.startswith("/api/") or path == "/openapi.json") \
                and not token_matches(token, request.headers.get("authorization")):
            refusal = (401, "missing or wrong token: send 'Authorization: Bearer <token>'",
                       {"WWW-Authenticate": "Bearer"})
        if refusal is not None:
            code, detail, headers = refusal
            response: Response = JSONResponse({"detail": detail}, status_code=code,
                                              headers=headers)
        else:
            response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        if path == "/" or path.startswith("/static/"):
            response.headers["Content-Security-Policy"] = CSP
        return response

    app.add_middleware(BodyLimit, limit=limits.max_request_bytes)

    async def read_images(request: Request) -> list[tuple[str, bytes]]:
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            raise HTTPException(415, "send the images as multipart/form-data, field 'image'")
        parser = _InMemoryParser(request.headers, request.stream(),
                                 max_files=limits.max_files, max_fields=32)
        try:
            form = await parser.parse()
        except MultiPartException as exc:
            raise HTTPException(400, f"malformed multipart body: {exc.message}") from None
        try:
            out = []
            for value in form.getlist("image"):
                if isinstance(value, str):
                    raise HTTPException(400, "the field 'image' must be a file, not text")
                out.append((value.filename or "", await value.read()))
            return out
        finally:
            await form.close()

    def queue_full(exc: QueueFull) -> HTTPException:
        return HTTPException(429, f"{exc}; retry later",
                             headers={"Retry-After": str(limits.retry_after_s)})

    async def queued(submit: Any, *args: Any) -> Any:
        """Run a queueing call off the event loop; its refusals become HTTP answers."""
        try:
            return await run_in_threadpool(submit, *args)
        except BadUpload as exc:
            raise HTTPException(400, str(exc)) from None
        except NotResumable as exc:
            raise HTTPException(409, str(exc)) from None
        except QueueFull as exc:
            raise queue_full(exc) from None
        except NoSpace as exc:
            raise HTTPException(507, str(exc)) from None

    def accepted(job: Any) -> JSONResponse:
        return JSONResponse(job.record(), status_code=202,
                            headers={"Location": f"/api/v1/scans/{job.id}"})

    # ------------------------------------------------------------------ health and model
    @app.get("/healthz", tags=["service"])
    async def healthz() -> JSONResponse:
        """200 while the worker runs (the model is loaded before the server listens); 503
        when it does not. No counters here: this route needs no token."""
        ok = service.ready
        return JSONResponse({"status": "ok" if ok else "not ready"},
                            status_code=200 if ok else 503)

    @app.get("/api/v1/model", tags=["service"])
    async def model() -> dict[str, Any]:
        """The loaded checkpoint and the scan settings every request uses."""
        return service.model_info() | {"app_version": __version__,
                                       "queued": len(service.queue),
                                       "analysed": service.n_analysed}

    # ------------------------------------------------------------------ one image
    @app.post("/api/v1/analyze", tags=["analyze"], openapi_extra=_UPLOAD_BODY)
    async def analyze(request: Request, thumbnail: bool = True,
                      witness: str = "") -> dict[str, Any]:
        """Score one image (multipart field ``image``), in memory: nothing is stored.
        ``witness=ela,noise,jpeg,thumbnail,clone`` (or ``all``) adds the second witnesses'
        figures and findings (no maps)."""
        try:
            witness_names = parse_witness_names(witness)
        except ValueError as exc:
            raise HTTPException(400, f"witness: {exc}") from None
        images = await read_images(request)
        if len(images) != 1:
            raise HTTPException(400, f"send exactly one file in the field 'image' (got "
                                     f"{len(images)}); use /api/v1/scans for several")
        name, data = images[0]
        if not data:
            raise HTTPException(400, "the uploaded file is empty (0 bytes)")
        try:
            job = service.submit_analysis(data)
        except QueueFull as exc:
            raise queue_full(exc) from None
        try:
            r: ScanResult = await asyncio.wait_for(asyncio.wrap_future(job.future),
                                                   limits.analysis_timeout_s)
        except TimeoutError:
            job.future.cancel()
            raise HTTPException(504, f"not analysed within {limits.analysis_timeout_s:g} s; "
                                     "the server is busy, retry later") from None
        if not r.ok:
            raise HTTPException(422, {"error": r.error or "not scored", "sha256": r.sha256,
                                      "filename": escape_for_terminal(name)})
        answer = analysis_answer(r, name)
        if thumbnail:
            answer["thumbnail"] = await run_in_threadpool(thumbnail_data_url, data, name)
        if witness_names:
            answer["witnesses"] = await run_in_threadpool(
                witness_answer, data, witness_names, service.settings.decode_limits())
        return answer

    # ------------------------------------------------------------------ batches
    @app.post("/api/v1/scans", status_code=202, tags=["scans"], openapi_extra=_SCAN_BODY)
    async def create_scan(request: Request) -> JSONResponse:
        """Store the images (fields ``image``) in a new case and queue its scan; or, as JSON
        ``{"folder": ..., "recursive": ...}``, scan a folder under the operator's
        ``--scan-root`` in place."""
        if request.headers.get("content-type", "").startswith("application/json"):
            folder, recursive = folder_request(await request.body())
            return accepted(await queued(service.submit_folder_scan, folder, recursive))
        images = await read_images(request)
        empty = [escape_for_terminal(n) or "(unnamed)" for n, d in images if not d]
        if empty:
            raise HTTPException(400, f"empty upload(s): {', '.join(empty[:5])}; nothing was "
                                     "stored")
        return accepted(await queued(service.submit_scan, images))

    def find(job_id: str):
        job = service.job(job_id)
        if job is None:
            raise HTTPException(404, "no such scan")
        return job

    def finished(job_id: str):
        job = find(job_id)
        if not job.status.done:
            raise HTTPException(409, f"the scan is {job.status}; wait until it has finished",
                                headers={"Retry-After": str(limits.retry_after_s)})
        return job

    @app.get("/api/v1/scans", tags=["scans"])
    async def list_scans() -> list[dict[str, Any]]:
        """Every scan this server knows, newest first -- also those of earlier runs on the
        same data folder (their verdict counts appear once their rows have been read)."""
        jobs = sorted(list(service.jobs.values()), key=lambda j: j.created, reverse=True)
        return [j.record() for j in jobs]

    @app.get("/api/v1/scans/{job_id}", tags=["scans"])
    async def scan_status(job_id: str) -> dict[str, Any]:
        """Progress: status, files done of total, verdict counts."""
        return find(job_id).record()

    @app.delete("/api/v1/scans/{job_id}", tags=["scans"])
    async def cancel_scan(job_id: str) -> dict[str, Any]:
        """Ask a queued or running scan to stop (finished rows stay in its case)."""
        job = find(job_id)
        job.cancel.set()
        return job.record()

    @app.post("/api/v1/scans/{job_id}/resume", status_code=202, tags=["scans"])
    async def resume_scan(job_id: str) -> JSONResponse:
        """Resume an interrupted, cancelled or failed scan into its case: the files the case
        already holds are not scored again (as ``forensics-scan --case`` resumes)."""
        job = find(job_id)
        await queued(service.resume, job)
        return accepted(job)

    @app.get("/api/v1/scans/{job_id}/results", tags=["scans"])
    async def scan_results(job_id: str) -> list[dict[str, Any]]:
        """The rows so far, as the JSON Lines report writes them, plus the client's name."""
        job = find(job_id)
        view = PublicView(job, service.model_path)
        return [result_record(view.row(r), job.client_name(r)) for r in list(job.results)]

    @app.get("/api/v1/scans/{job_id}/results.jsonl", tags=["scans"])
    async def scan_results_stream(job_id: str) -> Response:
        """The rows as the scan streams them into its case folder (JSON Lines, complete per
        batch), readable while it runs."""
        job = find(job_id)
        path = job.folder / "results.jsonl"
        data = await run_in_threadpool(path.read_bytes) if path.is_file() else b""
        view = PublicView(job, service.model_path)
        return Response(await run_in_threadpool(view.jsonl, data),
                        media_type="application/x-ndjson")

    @app.get("/api/v1/scans/{job_id}/report.{fmt}", tags=["scans"])
    async def scan_report(job_id: str, fmt: str) -> FileResponse:
        """The case report (html, pdf, csv or jsonl) of a finished scan."""
        if fmt not in REPORT_FORMATS:
            raise HTTPException(404, f"report formats: {', '.join(REPORT_FORMATS)}")
        job = finished(job_id)
        try:
            path = await asyncio.wait_for(run_in_threadpool(service.report, job, fmt),
                                          limits.report_timeout_s)
        except TimeoutError:
            raise HTTPException(504, "the report took too long; try again") from None
        except (OSError, ValueError) as exc:
            if is_disk_full(exc):
                raise HTTPException(507, str(service._no_space("the report was not written"))
                                    ) from None
            raise HTTPException(500, "the report could not be written: "
                                     + PublicView(job, service.model_path).text(str(exc))
                                ) from None
        return FileResponse(path, media_type=_MEDIA[fmt],
                            filename=f"scan-{job.id[:8]}-report.{fmt}")

    @app.get("/api/v1/scans/{job_id}/results/{index}/gradcam.png", tags=["scans"])
    async def gradcam(job_id: str, index: int) -> Response:
        """Grad-CAM overlay of one scored image of the scan (computed on request)."""
        job = find(job_id)
        try:
            png = await asyncio.wait_for(run_in_threadpool(service.gradcam_png, job, index),
                                         limits.report_timeout_s)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None
        except TimeoutError:
            raise HTTPException(504, "Grad-CAM took too long; try again") from None
        return Response(png, media_type="image/png")

    # ------------------------------------------------------------------ the page
    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_page_file("index.html"))

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in PAGE_FILES:  # a fixed list: no path is ever built from the request
            raise HTTPException(404, "not found")
        return Response(_page_file(name), media_type=PAGE_FILES[name])

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        from forensics_app.paths import icons_dir

        icon = icons_dir() / "app.png"
        if not icon.is_file():
            raise HTTPException(404, "no icon")
        return Response(icon.read_bytes(), media_type="image/png")

    def schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            base = FastAPI.openapi(app)
            for path, ops in base.get("paths", {}).items():
                if not path.startswith("/api/"):
                    continue
                for op in ops.values():
                    answers = op.setdefault("responses", {})
                    for code, text in ERROR_RESPONSES.items():
                        answers.setdefault(code, {"description": text})
            app.openapi_schema = base
        return app.openapi_schema

    app.openapi = schema  # type: ignore[method-assign]
    app.state.service = service
    return app


def _page_file(name: str) -> str:
    return resources.files("forensics_app.server").joinpath("page", name).read_text("utf-8")


def analysis_answer(r: ScanResult, client_name: str) -> dict[str, Any]:
    """Seed 000's contract (label, confidence, prob_real, prob_fake in percent, thumbnail)
    plus what this product adds: the verdict with its inconclusive band, the evidence's hash,
    the model, provenance and notes."""
    p = float(r.prob_fake)
    fake = p >= r.threshold
    row = jsonl_row(r)  # evidence-controlled strings escaped once, as in the JSONL report
    prov = row.get("provenance") or {}
    return {
        "label": "AI-Generated" if fake else "Real",
        "confidence": round(100.0 * (p if fake else 1.0 - p), 2),
        "prob_real": round(100.0 * (1.0 - p), 2),
        "prob_fake": round(100.0 * p, 2),
        "thumbnail": None,
        "verdict": r.verdict.value,
        "verdict_code": r.verdict.label,
        "threshold": round(100.0 * r.threshold, 2),
        "inconclusive_band": round(100.0 * r.inconclusive_band, 2),
        "filename": escape_for_terminal(client_name),
        "sha256": r.sha256,
        "bytes": r.bytes,
        "format": r.format,
        "width": r.width,
        "height": r.height,
        "model_id": r.model_id,
        "device": r.device,
        "preprocessing": r.preprocessing,
        "provenance": prov.get("summary"),
        "declared_generated": prov.get("declared_generated"),
        "provenance_details": prov or None,
        # Each detector branch's own P(generated), in percent, beside the fused score above.
        "branch_probs": {k: round(100.0 * v, 2) for k, v in (r.branch_probs or {}).items()},
        # why the verdict is Inconclusive whatever the score (outside the validated domains)
        "domain_caveat": r.domain_caveat if r.ok else None,
        "tile_probs": row.get("tile_probs") or [],
        "notes": row.get("notes") or [],
        "elapsed_ms": r.elapsed_ms,
    }


def result_record(r: ScanResult, client_name: str) -> dict[str, Any]:
    """One row of a batch (already made public: :class:`PublicView`): the JSON Lines record,
    the client's name, the verdict colour key."""
    row = jsonl_row(r)
    row.update(index=r.index, filename=escape_for_terminal(client_name),
               verdict_code=r.verdict.label, ok=r.ok,
               prob_fake_percent=None if r.prob_fake is None or r.verdict is Verdict.ERROR
               else round(100.0 * r.prob_fake, 2))
    return row


def witness_answer(data: bytes, names: tuple[str, ...], limits: Any) -> dict[str, Any]:
    """The witnesses' records for an upload, strings escaped as in the JSON Lines report."""
    from forensics_app.core.export import _escape_strings, _json_safe
    from forensics_app.core.loading import ImageLoadError
    from forensics_app.core.witnesses import analyse_bytes, witness_records

    try:
        records = witness_records(analyse_bytes(data, names, "upload", limits))
    except ImageLoadError as exc:
        records = {n: {"detected": None, "finding": "not analysed", "error": exc.reason}
                   for n in names}
    return _json_safe(_escape_strings(records))


def thumbnail_data_url(data: bytes, name: str = "upload") -> str | None:
    """A small JPEG preview of an upload, decoded under the engine's allow-list and bomb
    guard (a JPEG at reduced size); None when it cannot be made. Pillow's warnings (odd
    EXIF...) are logged under the upload's escaped ``name``, never printed without it."""
    from PIL import Image, ImageOps

    from forensics_app.core.bomb_guard import DecodeLimits, check_declared_image
    from forensics_app.core.loading import DECODE_FORMATS, to_rgb
    from forensics_app.core.warning_capture import logged_file_warnings

    try:
        with (logged_file_warnings(f"upload {name or '(unnamed)'}", log),
              Image.open(io.BytesIO(data), formats=DECODE_FORMATS) as im):
            check_declared_image(im.width, im.height, im.mode, len(data), DecodeLimits())
            im.draft("RGB", (THUMBNAIL_PX * 2, THUMBNAIL_PX * 2))
            im = ImageOps.exif_transpose(im) or im
            im = to_rgb(im)
            im.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=85)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
