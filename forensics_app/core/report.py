"""The case report, built from the case's stored records (never from table cells).

:func:`build_report` gathers everything a reader needs into a :class:`ReportData`: the case
summary, counts per verdict, every file (thumbnail, name, SHA-256, verdict, P(generated),
provenance when the record has one), a page per flagged image with its Grad-CAM overlay, the
model card's intended use and limits, the method and what the threshold means, the audit log
and the result of verifying both hash chains. :func:`render_html` turns it into one
self-contained HTML file (images as data URIs, no network, no script). The PDF renderer lives
outside the engine (``forensics_app.reports``) because it uses the GUI toolkit's text layout.

Thumbnails and overlays are made from the evidence files as they are now; a file that is
gone or whose SHA-256 no longer matches the stored one is shown without an image, and says so.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forensics_app import __version__
from forensics_app.core.case import (
    AuditEntry,
    Case,
    ModelRecord,
    ScanRecord,
    VerifyReport,
    is_superseded,
)
from forensics_app.core.provenance import Provenance, iter_detail_groups
from forensics_app.core.results import ScanResult, Verdict
from forensics_app.core.review import Key, Review, ReviewBook, ReviewStatus, disagrees, review_key
from forensics_app.core.safetext import html_text, isolate

log = logging.getLogger(__name__)

THUMB_PX = 72
FLAGGED_PX = 560
DEFAULT_MAX_FLAGGED = None  # every flagged image gets its page (the GUI builds it in a worker)
SCOPES = {
    "all": "every file of the case",
    "flagged": "files the detector flagged (AI-generated) or the examiner confirmed generated",
    "reviewed": "files the examiner reviewed, tagged, noted or bookmarked",
}
REVIEW_COLOURS = {
    ReviewStatus.UNREVIEWED: "#777777", ReviewStatus.CONFIRMED_GENERATED: "#a3261b",
    ReviewStatus.CONFIRMED_REAL: "#1e6b2b", ReviewStatus.NEEDS_SECOND_OPINION: "#7a5600",
}


class ReportCancelled(Exception):
    """The report was cancelled while it was being built; nothing was written."""
VERDICT_COLOURS = {
    Verdict.AI_GENERATED: "#a3261b", Verdict.REAL: "#1e6b2b",
    Verdict.INCONCLUSIVE: "#7a5600", Verdict.ERROR: "#555555",
}

_TRANSFORMS = {
    "none": "the RGB image itself",
    "npr": "the image's neighbouring-pixel residual (NPR: each pixel minus the top-left pixel "
           "of its 2×2 cell, amplified ×{gain:g}), which keeps up-sampling traces and drops "
           "most content",
}


def model_description(m: ModelRecord) -> str:
    """What the checkpoint is, in words, from its own metadata (plain text, not HTML)."""
    meta = m.meta if isinstance(m.meta, dict) else {}
    arch = meta.get("architecture") if isinstance(meta.get("architecture"), dict) else None
    parts: list[str] = []
    version = meta.get("version")
    head = f"Model {m.model_id}" + (f" (version {version})" if version else "")
    if arch is None:
        kind = f" (kind “{m.kind}”)" if m.kind else ""
        parts.append(f"{head}: a checkpoint{kind} whose metadata does not record its "
                     "architecture.")
    else:
        name = str(arch.get("name", "network"))
        pretty = re.sub(r"^resnet(\d+)$", r"ResNet-\1", name).replace(
            "efficientnet_lite0", "EfficientNet-Lite0 (ImageNet-initialised, fine-tuned)")
        stages = arch.get("stages")
        desc = f"{head}: a {pretty}"
        if isinstance(stages, int) and stages < 4:
            desc += f" cut after its first {stages} of 4 residual stages"
        width = arch.get("width")
        if isinstance(width, int) and width != 64:
            desc += f" at base width {width}"
        outputs = arch.get("num_outputs", 1)
        if outputs == 1:
            desc += ", with one output whose sigmoid is P(generated)."
        else:
            desc += (f", with {outputs} outputs; the softmax of output "
                     f"{meta.get('fake_index', 1)} is P(generated).")
        parts.append(desc)
        transform = str(arch.get("input_transform", "none"))
        text = _TRANSFORMS.get(transform, f"the “{transform}” transform of the image")
        try:
            text = text.format(gain=float(arch.get("npr_gain", 4.0)))
        except (TypeError, ValueError):
            text = text.format(gain=4.0)
        parts.append(f"The network sees {text}.")
    branches = meta.get("branches")
    if isinstance(branches, dict) and branches:
        from forensics_app.core.branch_explain import meta_roles

        trace_parts, parts = parts, []
        for role in meta_roles(meta):  # heaviest first (H3)
            if role.name == "trace":
                parts.append(f"Its {role.label}: " + " ".join(trace_parts))
                continue
            rec = branches.get(role.name) if isinstance(branches.get(role.name), dict) else {}
            what = rec.get("description") or role.sees or rec.get("kind") or "a detector"
            parts.append(f"Its {role.label}: {what}.")
        fusion = meta.get("fusion") if isinstance(meta.get("fusion"), dict) else {}
        weights = fusion.get("weights") if isinstance(fusion.get("weights"), dict) else {}
        if weights:
            terms = ", ".join(f"{k} {v}" for k, v in weights.items())
            parts.append(f"P(generated) is the {fusion.get('kind', 'fused')} combination of "
                         f"the branches' logits (weights: {terms}; bias {fusion.get('bias')}); "
                         "each row also keeps every branch's own score.")
    cal = meta.get("calibration")
    if isinstance(cal, dict) and cal.get("type"):
        parts.append(f"Its scores are calibrated ({cal['type']}) before the threshold is "
                     "applied.")
    if "threshold" in meta:
        try:
            parts.append(f"Its authors' threshold is {float(meta['threshold']):.2f}.")
        except (TypeError, ValueError):
            pass
    return " ".join(parts)


def threshold_text(threshold: float, band: float) -> str:
    return (
        f"A file is called <b>AI-generated</b> when P(generated) ≥ {threshold + band:.2f} "
        f"(threshold {threshold:.2f} + band {band:.2f}), <b>Real</b> when it is below "
        f"{threshold - band:.2f}, and <b>Inconclusive</b> in between. The threshold was chosen "
        "by the model's authors for few false alarms on real photos; it is an operating point, "
        "not a probability that the image is fake. A “Real” verdict means no trace of the "
        "generators this model knows was found — not proof of authenticity.")


@dataclass
class FlaggedPage:
    result: ScanResult
    image: bytes | None = None  # JPEG of the image as scored (scaled down)
    overlay: bytes | None = None  # JPEG of the Grad-CAM overlay
    note: str = ""
    # every branch's map, heaviest branch first (core.report_branches.BranchMap)
    maps: list[Any] = field(default_factory=list)


@dataclass
class ReportData:
    case_name: str
    case_id: str
    case_folder: str
    created_utc: str
    generated_utc: str
    threshold: float | None
    band: float | None
    rows: list[ScanResult]
    thumbnails: dict[int, bytes]
    thumb_notes: dict[int, str]
    flagged: list[FlaggedPage]
    n_flagged: int
    models: list[ModelRecord]
    scans: list[ScanRecord]
    audit: list[AuditEntry]
    verify: VerifyReport | None  # None: not from a case, nothing to verify
    model_card: dict[str, str] = field(default_factory=dict)  # section title -> markdown
    app_version: str = __version__
    seqs: list[int] = field(default_factory=list)  # each row's place in the results chain
    reviews: dict[Key, Review] = field(default_factory=dict)
    scope: str = "all"  # a key of SCOPES
    scope_note: str = ""  # what was left out, in words
    n_case_rows: int = 0  # rows the case holds (rows may be a selection of them)
    from_case: bool = True  # False: the window's results without a case (no chain, D27)

    def review(self, r: ScanResult) -> Review | None:
        return self.reviews.get(review_key(r))

    @property
    def disagreements(self) -> list[tuple[ScanResult, Review]]:
        """Rows where the examiner confirmed the opposite of the detector's verdict."""
        out = []
        for r in self.rows:
            rev = self.review(r)
            if rev is not None and disagrees(r.verdict, rev) and not is_superseded(r):
                out.append((r, rev))
        return out

    @property
    def current_rows(self) -> list[ScanResult]:
        """Rows counted as files: a row whose file later changed is kept but not counted."""
        return [r for r in self.rows if not is_superseded(r)]

    @property
    def counts(self) -> Counter[str]:
        return Counter(r.verdict.value for r in self.current_rows)

    def tampered(self, i: int) -> bool:
        return (self.verify is not None and i < len(self.seqs)
                and self.seqs[i] in self.verify.tampered_results)

    @property
    def has_provenance(self) -> bool:
        return any(provenance_summary(r) for r in self.rows)


def provenance_summary(r: ScanResult) -> str:
    """The provenance summary of a record when it has one (records from before it: '')."""
    value = getattr(r, "provenance", None)
    if not value:
        return ""
    if isinstance(value, dict):
        return str(value.get("summary") or "")
    return str(getattr(value, "summary", value) or "")


def provenance_groups(r: ScanResult) -> list[tuple[str, list[tuple[str, str]]]]:
    """The grouped provenance fields the GUI panel shows and the JSONL holds ([] if none)."""
    value = getattr(r, "provenance", None)
    return list(iter_detail_groups(value)) if isinstance(value, Provenance) else []


# ----------------------------------------------------------------------------- images
def _jpeg(img: Any, max_px: int) -> bytes:
    from PIL import Image

    if not isinstance(img, Image.Image):
        img = Image.fromarray(img)
    img = img.convert("RGB")
    img.thumbnail((max_px, max_px), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _load_current(r: ScanResult) -> tuple[Any, str]:
    """The image as it is now, or None and why not."""
    from forensics_app.core.loading import ImageLoadError, load_evidence
    from forensics_app.core.warning_capture import logged_file_warnings

    try:
        with logged_file_warnings(r.path, log):
            evidence, img, err = load_evidence(r.path)
    except ImageLoadError as exc:
        return None, f"image unavailable: {exc.reason}"
    if err is not None or img is None:
        return None, "image unavailable: it could not be decoded"
    if r.sha256 and evidence.sha256 != r.sha256:
        return None, "image not shown: the file changed since it was scanned (SHA-256 differs)"
    return img, ""


class _CamSource:
    """Grad-CAM models for the checkpoints the case used, loaded on first need."""

    def __init__(self, models: dict[str, ModelRecord]):
        self.models = models
        self._cache: dict[str, tuple[Any, int] | str] = {}

    def get(self, model_id: str) -> tuple[Any, int] | str:
        if model_id not in self._cache:
            self._cache[model_id] = self._load(model_id)
        return self._cache[model_id]

    def _load(self, model_id: str) -> tuple[Any, int] | str:
        from forensics_app.core.detector import CheckpointError, load_checkpoint
        from forensics_app.core.gradcam import cam_model_copy

        rec = self.models.get(model_id)
        if rec is None or not rec.path or not Path(rec.path).is_file():
            return "Grad-CAM unavailable: the checkpoint this scan used is not at its recorded path"
        try:
            ck = load_checkpoint(rec.path, fake_index=int(rec.meta.get("fake_index", 1))
                                 if isinstance(rec.meta, dict) else 1)
        except CheckpointError as exc:
            return f"Grad-CAM unavailable: {exc}"
        if rec.sha256 and ck.sha256 != rec.sha256:
            return "Grad-CAM unavailable: the checkpoint at the recorded path has changed"
        return cam_model_copy(ck.model), ck.fake_index


def _preprocess_for(r: ScanResult, scan: ScanRecord | dict[str, Any] | None) -> Any:
    """The inputs the scan scored (its stored settings record: triage tiles and seed too);
    ``scan`` is the case's scan record, or the settings record itself (no case)."""
    from forensics_app.core.preprocess import PreprocessConfig
    from forensics_app.core.session import ScanSettings

    record = scan.settings if isinstance(scan, ScanRecord) else (scan or {})
    try:
        return ScanSettings.from_record(record).preprocess_config()
    except (TypeError, ValueError):
        return PreprocessConfig()


def _flagged_page(r: ScanResult, scan: ScanRecord | dict[str, Any] | None, cams: _CamSource,
                  gradcam: bool, branches: Any = None) -> FlaggedPage:
    """The page of a flagged image: the image as scored and, when ``gradcam``, each
    branch's map in the order of its weight in the verdict (H3)."""
    page, img = _trace_cam_page(r, scan, cams, gradcam)
    if gradcam and img is not None and branches is not None:
        from forensics_app.core.report_branches import branch_maps

        page.maps = branch_maps(img, r.model_id, page.overlay, page.note, branches,
                                FLAGGED_PX)
        page.note = ""  # each map carries its own note
    return page


def _trace_cam_page(r: ScanResult, scan: ScanRecord | dict[str, Any] | None, cams: _CamSource,
                    gradcam: bool) -> tuple[FlaggedPage, Any]:
    import numpy as np

    img, why = _load_current(r)
    page = FlaggedPage(r)
    if img is None:
        page.note = why
        return page, img
    if not gradcam:
        page.image = _jpeg(img, FLAGGED_PX)
        page.note = "Grad-CAM not computed for this report"
        return page, img
    cam = cams.get(r.model_id)
    if isinstance(cam, str):
        page.image, page.note = _jpeg(img, FLAGGED_PX), cam
        return page, img
    model, fake_index = cam
    from forensics_app.core.gradcam import compute_gradcam, overlay
    from forensics_app.core.preprocess import denormalize, prepare_image, to_normalized_tensor

    try:
        prepared = prepare_image(img, _preprocess_for(r, scan))
        width, height = prepared.scored_size
        canvas = np.zeros((height, width), dtype=np.float32)
        tensors = prepared.tensors
        for tensor, (x, y, w, h) in zip(tensors, prepared.boxes, strict=True):
            canvas[y : y + h, x : x + w] = compute_gradcam(model, tensor, fake_index)
        if len(tensors) == 1 and prepared.boxes[0] == (0, 0, width, height):
            full = tensors[0]
        else:
            full = to_normalized_tensor(prepared.source if prepared.source is not None else img)
            if tuple(full.shape[-2:]) != (height, width):
                full = to_normalized_tensor(img)
            page.note = ("Grad-CAM computed per tile; each tile's map is scaled on its own"
                         if len(tensors) > 1 else "only the highlighted crop was analysed")
        if tuple(full.shape[-2:]) == canvas.shape:
            page.image = _jpeg((denormalize(full) * 255).round().astype(np.uint8), FLAGGED_PX)
            page.overlay = _jpeg(overlay(full, canvas, opacity=0.5), FLAGGED_PX)
        else:
            page.image = _jpeg(img, FLAGGED_PX)
            page.note = "Grad-CAM overlay unavailable for this image's preprocessing"
    except Exception as exc:  # noqa: BLE001 -- one image must not stop the report
        log.warning("Grad-CAM for %s failed: %s", r.path, exc)
        page.image, page.note = _jpeg(img, FLAGGED_PX), f"Grad-CAM failed: {exc}"
    return page, img


# ----------------------------------------------------------------------------- model card
def model_card_sections(path: Path | None) -> dict[str, str]:
    """'Intended use' and 'Decision threshold…' sections of a MODEL_CARD.md, as markdown."""
    if path is None or not Path(path).is_file():
        return {}
    text = Path(path).read_text(encoding="utf-8")
    sections: dict[str, str] = {}
    for m in re.finditer(r"^## (.+?)\n(.*?)(?=^## |\Z)", text, re.M | re.S):
        title = m.group(1).strip()
        if title.lower().startswith(("intended use", "decision threshold", "targets")):
            sections[title] = m.group(2).strip()
    return sections


def _card_for(models: list[ModelRecord]) -> Path | None:
    from forensics_app.paths import bundled_model_path, model_card_path

    for rec in models:
        candidate = Path(rec.path).with_name("MODEL_CARD.md") if rec.path else None
        if candidate is not None and candidate.is_file():
            return candidate
    try:
        from forensics_app.core.detector import file_sha256

        bundled = bundled_model_path()
        if bundled.is_file() and any(r.sha256 == file_sha256(bundled) for r in models):
            return model_card_path()
    except OSError:
        pass
    return None


# ----------------------------------------------------------------------------- building
def in_scope(r: ScanResult, rev: Review | None, scope: str) -> bool:
    if scope == "flagged":
        return (r.verdict is Verdict.AI_GENERATED
                or (rev is not None and rev.status is ReviewStatus.CONFIRMED_GENERATED))
    if scope == "reviewed":
        return rev is not None and rev.marked
    return True


def build_report(case: Case, threshold: float | None = None, band: float | None = None,
                 gradcam: bool = True, max_flagged: int | None = DEFAULT_MAX_FLAGGED,
                 model_card: Path | None = None, thumbnails: bool = True,
                 scope: str = "all", paths: Collection[str] | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 should_cancel: Callable[[], bool] | None = None) -> ReportData:
    """Everything the report shows, from the case's stored records.

    ``threshold``/``band``: re-judge every row at this operating point (as the GUI's toolbar
    does); None keeps the verdict stored with each row. ``scope`` (a key of :data:`SCOPES`)
    and ``paths`` (the window's active filter) choose the rows; the summary says what was
    left out. ``progress(done, total)`` is called per image read; ``should_cancel()`` is
    polled as often and stops the build with :class:`ReportCancelled`.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown report scope {scope!r} (use one of {', '.join(SCOPES)})")
    rows_with_scan = case.result_rows()
    scans = {s.scan_id: s for s in case.scans()}
    models = case.models()
    reviews = ReviewBook(case).all()
    wanted = None if paths is None else set(paths)
    rows: list[ScanResult] = []
    seqs: list[int] = []
    row_scan: list[ScanRecord | None] = []
    for seq, scan_id, r in rows_with_scan:
        if threshold is not None:
            r = r.with_threshold(threshold, band if band is not None else r.inconclusive_band)
        if wanted is not None and r.path not in wanted:
            continue
        if not in_scope(r, reviews.get(review_key(r)), scope):
            continue
        rows.append(r)
        seqs.append(seq)
        row_scan.append(scans.get(scan_id))
    notes = [SCOPES[scope]] if scope != "all" else []
    if wanted is not None:
        notes.append("the rows the window's filter showed")
    scope_note = ""
    if notes and len(rows) != len(rows_with_scan):
        scope_note = (f"This report lists {len(rows)} of the case's {len(rows_with_scan)} "
                      f"rows: {' and '.join(notes)}.")
    thumbs, thumb_notes, flagged, n_flagged = gather_images(
        rows, row_scan, models, reviews, gradcam=gradcam, max_flagged=max_flagged,
        thumbnails=thumbnails, progress=progress, should_cancel=should_cancel)
    card = model_card if model_card is not None else _card_for(list(models.values()))
    return ReportData(
        case_name=case.name, case_id=case.case_id, case_folder=str(case.folder.absolute()),
        created_utc=case.info("created_utc") or "",
        generated_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        threshold=threshold, band=band, rows=rows, thumbnails=thumbs, thumb_notes=thumb_notes,
        flagged=flagged, n_flagged=n_flagged, models=list(models.values()),
        scans=list(scans.values()), audit=case.audit_entries(), verify=case.verify(),
        model_card=model_card_sections(card), seqs=seqs, reviews=reviews, scope=scope,
        scope_note=scope_note, n_case_rows=len(rows_with_scan),
    )


def gather_images(rows: list[ScanResult], row_scan: list[Any], models: dict[str, ModelRecord],
                  reviews: dict[Key, Review], *, gradcam: bool = True,
                  max_flagged: int | None = DEFAULT_MAX_FLAGGED, thumbnails: bool = True,
                  progress: Callable[[int, int], None] | None = None,
                  should_cancel: Callable[[], bool] | None = None,
                  ) -> tuple[dict[int, bytes], dict[int, str], list[FlaggedPage], int]:
    """Thumbnails and flagged pages (Grad-CAM) of ``rows``, read from the evidence as it is
    now: ``(thumbnails, thumbnail notes, flagged pages, number of flagged rows)``.
    ``row_scan[i]``: the scan record (or settings record) row ``i`` was scored with."""
    flagged_rows = [i for i, r in enumerate(rows) if not is_superseded(r) and (
        r.verdict is Verdict.AI_GENERATED or in_scope(r, reviews.get(review_key(r)), "flagged"))]
    chosen = flagged_rows if max_flagged is None else flagged_rows[:max_flagged]
    total = (sum(1 for r in rows if r.sha256) if thumbnails else 0) + len(chosen)
    done = 0

    def step() -> None:
        nonlocal done
        if should_cancel is not None and should_cancel():
            raise ReportCancelled("report cancelled")
        if progress is not None:
            progress(done, total)
        done += 1

    thumbs: dict[int, bytes] = {}
    thumb_notes: dict[int, str] = {}
    if thumbnails:
        for i, r in enumerate(rows):
            if not r.sha256:
                continue
            step()
            img, why = _load_current(r)
            if img is None:
                thumb_notes[i] = why
            else:
                thumbs[i] = _jpeg(img, THUMB_PX * 2)
    cams = _CamSource(models)
    from forensics_app.core.report_branches import BranchSource

    branches = BranchSource(models)
    flagged = []
    for i in chosen:
        step()
        flagged.append(_flagged_page(rows[i], row_scan[i], cams, gradcam, branches))
    step()
    return thumbs, thumb_notes, flagged, len(flagged_rows)


# ----------------------------------------------------------------------------- HTML
def _e(value: Any) -> str:
    """Any text into HTML: escaped, control and bidi characters shown as visible escapes."""
    return html_text(value)


def _name(value: Any, qt: bool) -> str:
    """A name evidence controls, isolated so its letters cannot reorder what is beside it."""
    text = _e(value)
    return isolate(text) if qt else f"<bdi>{text}</bdi>"


def markdown_to_html(md: str) -> str:
    """The little markdown a model card section uses: paragraphs, bullets, bold, code."""
    def inline(text: str) -> str:
        text = _e(text)
        text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
        text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
        return re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<i>\1</i>", text)

    out: list[str] = []
    para: list[str] = []
    items: list[str] = []

    def close() -> None:
        if para:
            out.append(f"<p>{inline(' '.join(para))}</p>")
            para.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in md.splitlines():
        s = line.strip()
        if not s:
            close()
        elif s.startswith(("- ", "* ")):
            if para:
                close()
            items.append(s[2:])
        elif s.startswith("|"):
            continue  # tables are summarised elsewhere in the report
        elif items and line.startswith("  "):
            items[-1] += " " + s
        else:
            if items:
                close()
            para.append(s)
    close()
    return "\n".join(out)


def _pct(p: float | None) -> str:
    return "–" if p is None else f"{p:.3f}"


def _short(params: dict[str, Any], limit: int = 260) -> str:
    text = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False, default=str)}"
                     for k, v in params.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


CSS = """
body { font-family: "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1f;
       margin: 28px auto; max-width: 1060px; font-size: 13px; line-height: 1.4; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 26px 0 8px;
  border-bottom: 2px solid #d7dbe0; padding-bottom: 3px; } h3 { font-size: 14px; margin: 14px 0 6px; }
.sub { color: #666; margin: 0 0 14px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid #e3e6ea; vertical-align: middle; }
th { background: #f1f3f6; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.hash { font-family: "DejaVu Sans Mono", Consolas, monospace; font-size: 10.5px; word-break: break-all; }
.verdict { font-weight: 600; }
.box { border: 1px solid #d7dbe0; border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
.ok { background: #eef8f0; border-color: #9fd3aa; } .bad { background: #fdeeee; border-color: #e6a1a1; }
.warn { background: #fff6de; border-color: #e8c766; }
table.counts { width: auto; } .counts td { border: none; padding: 2px 18px 2px 0; }
td.verdict, td.nowrap, td.sha { white-space: nowrap; }
img.thumb { width: 60px; height: 60px; object-fit: contain; background: #f4f4f4; display: block; }
.page { page-break-before: always; break-before: page; margin-top: 28px; }
.pair { display: flex; gap: 14px; flex-wrap: wrap; } .pair figure { margin: 0; flex: 1 1 45%; }
.pair img { width: 100%; max-width: 480px; border: 1px solid #ccc; } figcaption { color: #555; font-size: 12px; }
.small { font-size: 11px; color: #555; } code { font-size: 11.5px; }
.ctl { color: #a3261b; background: #fdeeee; font-family: "DejaVu Sans Mono", monospace; }
tr.tampered td { background: #fdeeee; } .tampered-mark { color: #a3261b; font-weight: 700; }
/* the file table fits its page: fixed columns, long names break anywhere (issue 37, M3) */
table.files { table-layout: fixed; }
table.files td { overflow-wrap: anywhere; word-break: break-word; }
table.files td.sha { font-size: 9.5px; overflow-wrap: normal; word-break: normal; }
table.files col.thumb { width: 68px; } table.files col.sha { width: 212px; }
table.files col.verdict { width: 96px; } table.files col.num { width: 92px; }
table.files th { overflow-wrap: anywhere; }
table.files col.exam { width: 11%; } table.files col.prov { width: 13%; }
table.files col.notes { width: 22%; }
td.notes { max-height: none; }
@page { size: A4; margin: 12mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 9pt; }
  th, td { padding: 2px 4px; }
  thead { display: table-header-group; }
  tr, figure, .box { break-inside: avoid; page-break-inside: avoid; }
  img.thumb { width: 36px; height: 36px; }
  table.files { font-size: 8pt; }
  table.files td.sha { font-size: 6pt; }
  table.files col.thumb { width: 40px; } table.files col.sha { width: 44mm; }
  table.files col.verdict { width: 20mm; } table.files col.num { width: 17mm; }
  table.files th { overflow-wrap: anywhere; }
  table.files col.exam { width: 12%; } table.files col.prov { width: 12%; }
  table.files col.notes { width: 20%; }
  .pair img { max-width: 100%; }
}
"""

# Qt's rich text: point sizes (pixels would be printer dots), no flexbox or object-fit.
QT_CSS = """
body { font-family: "DejaVu Sans"; font-size: 8.5pt; color: #1d1d1f; }
h1 { font-size: 16pt; } h2 { font-size: 12.5pt; margin-top: 14pt; } h3 { font-size: 10pt; }
th { background-color: #e9ecf0; font-weight: 600; text-align: left; }
td { border-bottom: 1px solid #e3e6ea; font-size: 7.5pt; }
.hash { font-family: "DejaVu Sans Mono"; font-size: 6pt; }
.small { font-size: 7pt; color: #555555; } .sub { color: #666666; }
.ctl { color: #a3261b; } .tampered-mark { color: #a3261b; font-weight: 700; }
.page { page-break-before: always; }
"""


def _hash_lines(sha: str | None, width: int = 32) -> str:
    """A SHA-256 on lines of ``width`` hex digits, so table columns stay narrow and every
    line break falls at the same place (left to right whatever surrounds it)."""
    sha = sha or ""
    return "<br>".join(_e(sha[i : i + width]) for i in range(0, len(sha), width))


def _review_cell(rev: Review | None, full: bool = False) -> str:
    """The examiner's conclusion as HTML (escaped): status, tags, bookmark, note."""
    if rev is None or not rev.marked:
        return "<span class='small' style='color:#777777'>unreviewed</span>"
    parts = [f"<b style='color:{REVIEW_COLOURS[rev.status]}'>{_e(rev.status.label)}</b>"]
    if rev.bookmarked:
        parts.append("★ bookmarked")
    if rev.tags:
        parts.append("tags: " + _e(", ".join(rev.tags)))
    if rev.note:
        note = rev.note if full or len(rev.note) <= 140 else rev.note[:139] + "…"
        parts.append("<i>" + "<br>".join(_e(line) for line in note.splitlines()) + "</i>")
    if full and rev.examiner:
        parts.append(f"<span class='small'>by {_e(rev.examiner)}, {_e(rev.updated_utc[:19])} "
                     "UTC</span>")
    return "<br>".join(parts)


def render_html(data: ReportData, image_src: Callable[[str, bytes], str] | None = None,
                qt: bool = False, compact: bool = False) -> str:
    """One self-contained HTML document.

    ``image_src(key, jpeg)`` returns the ``src`` of an image: a data URI by default; the PDF
    renderer passes its own (resource names) and ``qt=True`` for the subset of HTML its text
    layout understands (no flexbox, attribute-level table styling). ``compact``: the file
    table without thumbnails and with its header repeated on every page (the PDF's).
    """
    def data_uri(_key: str, jpeg: bytes) -> str:
        return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")

    src = image_src or data_uri
    counts = data.counts
    v = data.verify
    parts: list[str] = []
    add = parts.append
    table_attrs = ' border="0" cellspacing="0" cellpadding="4" width="100%"' if qt else ""
    # Qt breaks a hash line wherever its column runs out: keep hash and verdict cells whole.
    nowrap = " nowrap" if qt else ""

    add("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>")
    kind = "Case report" if data.from_case else "Scan report"
    add(f"<title>{kind} — {_e(data.case_name)}</title>")
    add("<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "img-src data:; style-src 'unsafe-inline'\">")
    add(f"<style>{QT_CSS if qt else CSS}</style></head><body>")
    if data.from_case:
        from forensics_app.core.case_details import FIELDS, case_details

        details = case_details(data.audit)  # M8: what the examiner entered, not the folder
        title = details.get("case_number") or data.case_name
        add(f"<h1>Case report: {_name(title, qt)}</h1>")
        if details:
            add("<p class='details'>" + "<br>".join(
                f"<b>{label}:</b> {_name(details[key], qt)}" for key, label in FIELDS
                if key in details) + "</p>")
        add(f"<p class='sub'>Forensics App {_e(data.app_version)} · generated "
            f"{_e(data.generated_utc)} UTC · case created {_e(data.created_utc)} · case id "
            f"<span class='hash'>{_e(data.case_id)}</span><br>Case folder: "
            f"{_name(data.case_folder, qt)}</p>")
    else:
        add(f"<h1>Scan report: {_name(data.case_name, qt)}</h1>")
        add(f"<p class='sub'>Forensics App {_e(data.app_version)} · generated "
            f"{_e(data.generated_utc)} UTC</p>")

    # -- integrity
    if qt:  # Qt draws no borders or backgrounds on divs: a one-cell table does
        ok_colour = "#fff4d6" if v is None else "#eef8f0" if v.ok else "#fdeeee"
        add(f"<table width='100%' cellpadding='6' bgcolor='{ok_colour}'><tr><td>")
    if v is None:
        add(f"<div class='box warn'><b>{NOT_FROM_A_CASE}</b> {NO_CHAIN_TEXT}</div>")
    elif v.ok:
        add(f"<div class='box ok'><b>Integrity: intact.</b> {v.n_audit} audit entries and "
            f"{v.n_results} stored results verified against their hash chains, and every "
            "case, model and scan fact below against the audit entries that pin it.<br>"
            f"<span class='small'>Audit head #{v.audit_seq} <span class='hash' dir='ltr'>"
            f"{_e(v.audit_head)}</span><br>Results head #{v.results_seq} <span class='hash' "
            f"dir='ltr'>{_e(v.results_head)}</span><br>These are the heads "
            "<code>forensics-scan --case DIR --verify</code> prints; the anchor file written "
            "with this report (<code>REPORT.anchor.json</code>) records them. Keep it apart "
            "from the case: <code>--verify --anchor FILE</code> then also proves that nothing "
            "was removed from the end of the case.</span>"
            + "".join(f"<br><span class='small'>Note: {_e(n)}</span>" for n in v.notes
                      if not n.startswith("no anchor"))
            + "</div>")
    else:
        add(f"<div class='box bad'><b>Integrity: BROKEN.</b> First broken entry: "
            f"{_e(v.first_problem)}"
            + (f" (and {len(v.problems) - 1} more problems)" if len(v.problems) > 1 else "")
            + "</div>")
    if qt:
        add("</td></tr></table>")

    # -- summary
    add("<h2>Summary</h2>")
    add(f"<table class='counts'{' border=0 cellpadding=3' if qt else ''}><tr>")
    current = data.current_rows
    add(f"<td><b>{len(current)}</b> files</td>")
    for verdict in Verdict:
        n = counts.get(verdict.value, 0)
        add(f"<td><span class='verdict' style='color:{VERDICT_COLOURS[verdict]}'>"
            f"{n} {_e(verdict.value)}</span></td>")
    add("</tr></table>")
    if len(current) < len(data.rows):
        add(f"<p class='small'>{len(data.rows) - len(current)} earlier rows of files that "
            "changed at the same path are kept in the table below (marked superseded) and not "
            "counted.</p>")
    if data.threshold is not None:
        t, b = data.threshold, data.band or 0.0
        add(f"<p>Verdicts in this report are at threshold {t:.2f} ± {b:.2f} (as set when the "
            "report was exported); the scores are those stored at scan time.</p>")
    else:
        thresholds = sorted({(r.threshold, r.inconclusive_band) for r in data.rows})
        t, b = thresholds[-1] if thresholds else (0.5, 0.0)
        desc = ", ".join(f"{x:.2f} ± {y:.2f}" for x, y in thresholds) or "–"
        add(f"<p>Verdicts are those stored with each row (threshold ± band: {_e(desc)}).</p>")
    add(f"<p>{threshold_text(t, b)}</p>")
    if data.scope_note:
        add(f"<p><b>Selection.</b> {_e(data.scope_note)}</p>")

    # -- the examiner's conclusions
    reviewed = [rev for r in data.current_rows
                if (rev := data.review(r)) is not None and rev.marked]
    add("<h3>Examiner's conclusions</h3>")
    if not data.from_case:
        add("<p>Examiner's conclusions (review status, notes, tags) are kept in cases only: "
            "every verdict below is the detector's alone.</p>")
    elif not reviewed:
        add("<p>No file of this report has been reviewed by an examiner: every verdict below "
            "is the detector's alone.</p>")
    else:
        by_status = Counter(rev.status for rev in reviewed)
        n_unrev = len(data.current_rows) - sum(n for st, n in by_status.items()
                                               if st is not ReviewStatus.UNREVIEWED)
        add("<p>" + " · ".join(
            f"<span style='color:{REVIEW_COLOURS[st]}'>{by_status[st]} {_e(st.label.lower())}"
            "</span>" for st in ReviewStatus if st is not ReviewStatus.UNREVIEWED
            and by_status.get(st)) + f" · {n_unrev} unreviewed</p>")
    disagreements = data.disagreements
    if disagreements:
        add(f"<p><b>{len(disagreements)} file(s) where the examiner's conclusion contradicts "
            "the detector's verdict:</b></p>")
        add(f"<table{table_attrs}><thead><tr><th>File</th><th>Detector</th>"
            "<th class='num'>P(generated)</th><th>Examiner</th></tr></thead>")
        for r, rev in disagreements:
            add(f"<tr><td>{_name(r.file_name, qt)}<br><span class='small'>{_name(r.path, qt)}"
                f"</span></td><td class='verdict' style='color:{VERDICT_COLOURS[r.verdict]}'>"
                f"{_e(r.verdict.value)}</td><td class='num'>{_pct(r.prob_fake)}</td>"
                f"<td>{_review_cell(rev, full=True)}</td></tr>")
        add("</table>")
    elif reviewed:
        add("<p>No examiner's conclusion contradicts the detector's verdict.</p>")

    add("<h3>Models used</h3>")
    add(f"<table{table_attrs}><tr><th>Model id</th><th>Checkpoint</th><th>SHA-256</th>"
        "<th>Kind</th></tr>")
    for m in data.models:
        add(f"<tr><td>{_name(m.model_id, qt)}</td><td>{_name(m.path, qt)}</td>"
            f"<td class='hash' dir='ltr'{nowrap}>{_hash_lines(m.sha256)}"
            f"</td><td>{_e(m.kind)}</td></tr>")
    add("</table>")
    if data.from_case:
        _scans_table(data, add, table_attrs, qt)

    # -- every file
    _files_and_pages(data, add, src, table_attrs, nowrap, qt, compact)
    if data.from_case:
        _witness_exhibits(data, add, src, qt)

    # -- method, model card
    add("<h2 class='page'>Method and limits</h2>")
    from forensics_app.core.report_branches import method_paragraphs

    for para in method_paragraphs(data.models):  # branches by weight, what each sees (H3)
        add(f"<p>{para}</p>")
    for m in data.models:
        add(f"<p>{_e(model_description(m))}</p>")
    if data.model_card:
        for title, md in data.model_card.items():
            add(f"<h3>Model card: {_e(title)}</h3>{markdown_to_html(md)}")
    else:
        add("<div class='box warn'>No model card was found for the checkpoint(s) this "
            "report's rows used: their intended use and limits are not documented here.</div>")

    # -- audit log
    if data.from_case:
        _audit_table(data, add, table_attrs)
    else:
        add(f"<p class='small'>{NOT_FROM_A_CASE} {NO_CHAIN_TEXT}</p>")
    add("</body></html>")
    return "\n".join(parts)


NOT_FROM_A_CASE = "Not from a case."
NO_CHAIN_TEXT = (
    "These are the results the window held in memory when the report was written. They "
    "have no audit log and no hash chain: nothing in this report can be verified later, "
    "and it carries no examiner's conclusions. For evidential use, scan into a case "
    "(File → New case…) and export the case report.")


def _scans_table(data: ReportData, add: Callable[[str], None], table_attrs: str,
                 qt: bool) -> None:
    add("<h3>Scans</h3>")
    add(f"<table{table_attrs}><tr><th>#</th><th>Started (UTC)</th><th>Status</th>"
        "<th class='num'>Files</th><th>Model</th><th>Settings</th><th>Sources</th></tr>")
    for s in data.scans:
        n = f"{s.n_done}/{s.n_files}" if s.n_files is not None else str(s.n_done)
        add(f"<tr><td>{s.scan_id}</td><td class='nowrap'>{_e(s.started_utc[:19])}</td>"
            f"<td>{_e(s.status)}</td>"
            f"<td class='num'>{_e(n)}</td><td>{_e(s.model_id)}</td>"
            f"<td class='small'>{_e(_short(s.settings, 120))}</td>"
            f"<td class='small'>{'; '.join(_name(x, qt) for x in s.sources)}</td></tr>")
    add("</table>")


def _files_and_pages(data: ReportData, add: Callable[[str], None],
                     src: Callable[[str, bytes], str], table_attrs: str, nowrap: str, qt: bool,
                     compact: bool) -> None:
    add("<h2>Files</h2>")
    prov = data.has_provenance
    thumb_col = "" if compact else "<th></th>"
    # <thead>: browsers and Qt's text layout repeat it at the top of every printed page.
    # Fixed column widths: the table fits the page (M3) and the SHA-256 keeps two lines (M2).
    if qt:
        w = {"file": 24 if prov else 29, "sha": 27, "verdict": 11, "num": 8, "exam": 10,
             "prov": 11}
        width = {k: f" width='{v}%'" for k, v in w.items()}
        add(f"<table{table_attrs}><thead><tr><th{width['file']}>File</th>"
            f"<th{width['sha']}>SHA-256</th><th{width['verdict']}>Verdict</th>"
            f"<th class='num'{width['num']}>P(gen.)</th>"
            + (f"<th{width['exam']}>Examiner</th>" if data.from_case else "")
            + (f"<th{width['prov']}>Provenance</th>" if prov else "")
            + "<th>Notes</th></tr></thead>")
    else:
        cols = (("" if compact else "<col class='thumb'>") + "<col class='file'><col class='sha'>"
                "<col class='verdict'><col class='num'>"
                + ("<col class='exam'>" if data.from_case else "")
                + ("<col class='prov'>" if prov else "") + "<col class='notes'>")
        add(f"<table class='files'><colgroup>{cols}</colgroup><thead><tr>{thumb_col}"
            "<th>File</th><th>SHA-256</th><th>Verdict</th><th class='num'>P(generated)</th>"
            + ("<th>Examiner</th>" if data.from_case else "")
            + ("<th>Provenance</th>" if prov else "")
            + "<th>Notes</th></tr></thead>")
    for i, r in enumerate(data.rows):
        thumb = None if compact else data.thumbnails.get(i)
        if thumb is not None:
            size = " width='44'" if qt else ""
            cell = f"<td><img class='thumb'{size} alt='' src='{src(f'thumb{i}', thumb)}'></td>"
        else:
            cell = "" if compact else "<td></td>"
        notes = "; ".join(filter(None, [r.error or "", r.caveat_note, *r.notes,
                                        data.thumb_notes.get(i, "")]))
        colour = VERDICT_COLOURS[r.verdict]
        tampered = data.tampered(i)
        mark = ("<span class='tampered-mark'>TAMPERED: this row fails its hash check; its "
                "values cannot be trusted.</span> " if tampered else "")
        row_attr = (" class='tampered' bgcolor='#fdeeee'" if qt else " class='tampered'") \
            if tampered else ""
        name = (_name(r.path, qt) if compact else f"{_name(r.file_name, qt)}<br>"
                f"<span class='small'>{_name(r.path, qt)}</span>")
        add(f"<tr{row_attr}>{cell}<td>{name}</td><td class='hash sha' dir='ltr'{nowrap}>"
            f"{_hash_lines(r.sha256)}</td>"
            f"<td class='verdict' style='color:{colour}'{nowrap}>{_e(r.verdict.value)}</td>"
            f"<td class='num'>{_pct(r.prob_fake)}</td>"
            + (f"<td class='small'>{_review_cell(data.review(r))}</td>" if data.from_case
               else "")
            + (f"<td class='small'>{_e(provenance_summary(r))}</td>" if prov else "")
            + f"<td class='small'>{mark}{_e(notes)}</td></tr>")
    add("</table>")

    # -- flagged pages
    if data.flagged:
        shown = len(data.flagged)
        more = (f" (the first {shown} of {data.n_flagged})" if data.n_flagged > shown else "")
        add(f"<h2 class='page'>Flagged images{more}</h2>")
        add("<p class='small'>Every file the detector called AI-generated"
            + (", and every file the examiner confirmed as generated." if data.from_case
               else ".") + "</p>")
    for n, page in enumerate(data.flagged):
        r = page.result
        klass = "page" if n else ""
        # The verdict, score and hash each on a line of their own, never after a name.
        add(f"<div class='{klass}'><h3>{_name(r.file_name, qt)}</h3>")
        add(f"<p dir='ltr'><b>Verdict: <span style='color:{VERDICT_COLOURS[r.verdict]}'>"
            f"{_e(r.verdict.value)}</span></b> · P(generated) {_pct(r.prob_fake)}</p>")
        add(f"<p class='small'>{_name(r.path, qt)}</p><p class='small' dir='ltr'>SHA-256 "
            f"<span class='hash'>{_e(r.sha256)}"
            f"</span><br>{_e(r.width)}×{_e(r.height)} {_e(r.format)} · model {_e(r.model_id)}"
            f" · preprocessing {_e(r.preprocessing)}"
            + (f" · tiles: {len(r.tile_probs)}" if r.tile_probs else "") + "</p>")
        _figures(page, n, add, src, qt)
        if data.from_case:
            add(f"<p><b>Examiner's conclusion:</b> "
                f"{_review_cell(data.review(r), full=True)}"
                + (" — <b>contradicts the detector</b>" if disagrees(r.verdict, data.review(r))
                   else "") + "</p>")
        if page.note:
            add(f"<p class='small'><i>{_e(page.note)}</i></p>")
        if r.caveat_note:
            add(f"<p><b>{_e(r.caveat_note)}</b></p>")
        if r.notes:
            add(f"<p class='small'>Notes: {_e('; '.join(r.notes))}</p>")
        witnesses = getattr(r, "witnesses", None) or {}  # stored by a --witness scan
        if witnesses:
            add("<table class='small'><tr><th colspan='2'>Second witnesses (none is proof)"
                "</th></tr>" + "".join(
                    f"<tr><td>{_e(name)}</td><td>"
                    f"{_e({True: 'detected', False: 'not detected'}.get(w.get('detected'), 'n/a'))}"
                    f": {_e(w.get('finding', ''))}</td></tr>" for name, w in witnesses.items())
                + "</table>")
        for title, rows in provenance_groups(r):
            add(f"<table class='small'><tr><th colspan='2'>Provenance: {_e(title)}</th></tr>"
                + "".join(f"<tr><td>{_e(k)}</td><td>{_name(v, qt)}</td></tr>"
                          for k, v in rows) + "</table>")
        add("</div>")


def _witness_exhibits(data: ReportData, add: Callable[[str], None],
                      src: Callable[[str, bytes], str], qt: bool) -> None:
    """Witness maps the examiner added to the case (audited, hash checked), each with its
    finding and rule (core.witnesses.exhibits)."""
    from forensics_app.core.witnesses.exhibits import as_jpeg, case_exhibits

    exhibits = case_exhibits(data.audit)
    if not exhibits:
        return
    add("<h2>Witness exhibits</h2><p class='small'>Maps of the second witnesses, added by "
        "the examiner (audit log); none is proof on its own.</p>")
    for i, x in enumerate(exhibits):
        png, problem = x.read(data.case_folder)
        add(f"<h3>{_e(x.witness)} — {_name(Path(x.evidence_path).name, qt)}</h3>"
            f"<p class='small'>{_name(x.evidence_path, qt)}<br>evidence SHA-256 "
            f"<span class='hash'>{_e(x.evidence_sha256)}</span><br>exhibit {_e(x.file)}, "
            f"SHA-256 <span class='hash'>{_e(x.sha256)}</span> · audit entry {x.seq} · "
            f"{_e(x.time_utc)}</p>")
        add(f"<p><b>{_e({True: 'Detected', False: 'Not detected'}.get(x.detected, 'n/a'))}"
            f":</b> {_e(x.finding)}<br><span class='small'>Rule: {_e(x.rule)}</span></p>")
        if png is not None:
            add(f"<img width='330' alt='{_e(x.witness)} map' "
                f"src='{src(f'exhibit{i}', as_jpeg(png))}'>")
        else:
            add(f"<p class='small'><i>{_e(problem)}</i></p>")


def _figures(page: FlaggedPage, n: int, add: Callable[[str], None],
             src: Callable[[str, bytes], str], qt: bool) -> None:
    """The image and its maps, two to a row: the deciding branch's map beside the image,
    each map captioned with its branch's fusion weight (H3)."""
    if page.maps:
        figs = [(f"img{n}", page.image, "Image as scored", "")]
        figs += [(f"map{n}_{i}", m.jpeg, m.caption, m.note) for i, m in enumerate(page.maps)]
    else:  # no maps computed: the trace Grad-CAM as before
        figs = [(f"img{n}", page.image, "Image as scored", ""),
                (f"cam{n}", page.overlay, "Grad-CAM overlay: regions that most raised the "
                 "“generated” score", "")]
    if qt:
        # 300 px wide at the PDF's device scale: two side by side fit an A4 body (M2)
        add("<table border='0' cellpadding='4' width='100%'>")
        for i in range(0, len(figs), 2):
            add("<tr>")
            for key, img, cap, note in figs[i:i + 2]:
                pic = (f"<img width='300' src='{src(key, img)}'><br>" if img is not None
                       else "")
                add(f"<td width='50%' valign='top'>{pic}<span class='small'><b>{_e(cap)}</b>"
                    + (f"<br><i>{_e(note)}</i>" if note else "") + "</span></td>")
            add("</tr>")
        add("</table>")
        return
    add("<div class='pair'>")
    for key, img, cap, note in figs:
        pic = f"<img alt='{_e(cap)}' src='{src(key, img)}'>" if img is not None else ""
        add(f"<figure>{pic}<figcaption>{_e(cap)}"
            + (f"<br><i class='small'>{_e(note)}</i>" if note else "")
            + "</figcaption></figure>")
    add("</div>")


def _audit_table(data: ReportData, add: Callable[[str], None], table_attrs: str) -> None:
    add("<h2>Audit log</h2>")
    add(f"<table{table_attrs}><tr><th class='num'>#</th><th>Time (UTC)</th><th>User @ host</th>"
        "<th>Action</th><th>Parameters</th><th>Entry hash</th></tr>")
    for a in data.audit:
        add(f"<tr><td class='num'>{a.seq}</td><td>{_e(a.time_utc)}</td>"
            f"<td>{_e(a.os_user)} @ {_e(a.host)}</td><td>{_e(a.action)}</td>"
            f"<td class='small'>{_e(_short(a.params))}</td>"
            f"<td class='hash'>{_e(a.entry_hash[:16])}…</td></tr>")
    add("</table>")
    add("<p class='small'>Each audit entry and each stored result carries the SHA-256 of the one "
        "before it; <code>forensics-scan --case DIR --verify</code> recomputes both chains.</p>")


def write_html(data: ReportData, path: Path | str) -> Path:
    from forensics_app.core.outputs import atomic_write

    return atomic_write(Path(path), render_html(data))
