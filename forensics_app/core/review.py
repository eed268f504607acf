"""The examiner's own conclusions: review status, notes, tags and a bookmark per file.

The detector gives a score; the examiner decides. A :class:`Review` is kept per evidence item
(path and SHA-256, so a file whose bytes change is a new, unreviewed item) in the case's
``reviews`` table. Every change is one entry in the case's hash-chained audit log (who, when,
old -> new), written in the same transaction as the row, and :func:`review_problems` -- run
by ``Case.verify`` (``forensics-scan --case DIR --verify``) -- replays those entries and
requires the table to be exactly what they say: an edited, added or deleted review row breaks
the case's verification like an edited result does.

Copies: rows with the same SHA-256 are the same bytes (:func:`duplicate_groups`); a review can
be applied to one copy or to all of them (:meth:`ReviewBook.set` takes several targets).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from forensics_app.core.case_chain import absolute_path, path_from_key, path_key

if TYPE_CHECKING:
    from forensics_app.core.case import Case
    from forensics_app.core.results import ScanResult, Verdict

ACTION_REVIEW_CHANGED = "review changed"
MAX_NOTE_CHARS = 20_000
MAX_TAG_CHARS = 64

REVIEWS_SCHEMA = """
    CREATE TABLE reviews (
        path TEXT NOT NULL, sha256 TEXT NOT NULL, status TEXT NOT NULL,
        note TEXT NOT NULL, tags_json TEXT NOT NULL, bookmarked INTEGER NOT NULL,
        examiner TEXT NOT NULL, updated_utc TEXT NOT NULL, audit_seq INTEGER NOT NULL,
        PRIMARY KEY (path, sha256));
    CREATE INDEX reviews_by_sha ON reviews (sha256)
"""

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class ReviewStatus(StrEnum):
    UNREVIEWED = "unreviewed"
    CONFIRMED_GENERATED = "confirmed-generated"
    CONFIRMED_REAL = "confirmed-real"
    NEEDS_SECOND_OPINION = "needs-second-opinion"

    @property
    def label(self) -> str:
        return {"unreviewed": "Unreviewed", "confirmed-generated": "Confirmed generated",
                "confirmed-real": "Confirmed real",
                "needs-second-opinion": "Needs second opinion"}[self.value]


class ReviewError(ValueError):
    """A review that cannot be recorded as asked (unknown file, bad value); nothing changed."""


Key = tuple[str, str]  # (path, sha256); sha256 is "" for a file that could not be read


@dataclass(frozen=True)
class Review:
    path: str
    sha256: str
    status: ReviewStatus = ReviewStatus.UNREVIEWED
    note: str = ""
    tags: tuple[str, ...] = ()
    bookmarked: bool = False
    examiner: str = ""
    updated_utc: str = ""
    audit_seq: int = 0

    @property
    def key(self) -> Key:
        return (self.path, self.sha256)

    @property
    def reviewed(self) -> bool:
        return self.status is not ReviewStatus.UNREVIEWED

    @property
    def marked(self) -> bool:
        """Anything the examiner recorded: a status, a note, a tag or a bookmark."""
        return self.reviewed or bool(self.note or self.tags or self.bookmarked)

    def state(self) -> dict[str, Any]:
        """What the audit log records as "old" and "new"."""
        return {"status": self.status.value, "note": self.note, "tags": list(self.tags),
                "bookmarked": self.bookmarked}

    def to_dict(self) -> dict[str, Any]:
        """The ``review`` object of a JSON Lines row."""
        return {**self.state(), "examiner": self.examiner or None,
                "updated_utc": self.updated_utc or None}


def unreviewed(path: str, sha256: str | None) -> Review:
    return Review(path, sha256 or "")


def review_key(r: ScanResult) -> Key:
    return (r.path, r.sha256 or "")


def clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags as the examiner typed them, trimmed, without duplicates (case-insensitive), sorted."""
    out: dict[str, str] = {}
    for tag in tags:
        t = " ".join(str(tag).split())
        if not t:
            continue
        if len(t) > MAX_TAG_CHARS:
            raise ReviewError(f"a tag is at most {MAX_TAG_CHARS} characters: {t[:20]!r}…")
        out.setdefault(t.casefold(), t)
    return tuple(sorted(out.values(), key=str.casefold))


def parse_status(text: str) -> ReviewStatus:
    try:
        return ReviewStatus(text.strip().lower().replace(" ", "-").replace("_", "-"))
    except ValueError:
        raise ReviewError(f"unknown review status {text!r} (use one of "
                          f"{', '.join(s.value for s in ReviewStatus)})") from None


def disagrees(verdict: Verdict, review: Review | None) -> bool:
    """The examiner confirmed the opposite of what the detector said."""
    from forensics_app.core.results import Verdict

    if review is None:
        return False
    return ((verdict is Verdict.AI_GENERATED and review.status is ReviewStatus.CONFIRMED_REAL)
            or (verdict is Verdict.REAL
                and review.status is ReviewStatus.CONFIRMED_GENERATED))


def duplicate_groups(results: Iterable[ScanResult]) -> dict[str, list[str]]:
    """SHA-256 -> the paths holding those bytes, for hashes seen at more than one path."""
    by_sha: dict[str, dict[str, None]] = {}
    for r in results:
        if r.sha256:
            by_sha.setdefault(r.sha256, {})[r.path] = None
    return {sha: list(paths) for sha, paths in by_sha.items() if len(paths) > 1}


def _row_to_review(row: Sequence[Any]) -> Review:
    path, sha, status, note, tags_json, bookmarked, examiner, updated, seq = row
    return Review(path_from_key(path), sha, ReviewStatus(status), note, tuple(json.loads(tags_json)),
                  bool(bookmarked), examiner, updated, int(seq))


_COLUMNS = "path, sha256, status, note, tags_json, bookmarked, examiner, updated_utc, audit_seq"


@dataclass
class ReviewBook:
    """The reviews of one open case; reads and writes go through the :class:`Case`."""

    case: Case
    _cache: dict[Key, Review] | None = field(default=None, repr=False)

    def _loaded(self) -> dict[Key, Review]:
        if self._cache is None:
            # a case of an older schema read read-only has no reviews table yet: none
            rows = (self.case.query(f"SELECT {_COLUMNS} FROM reviews")
                    if has_reviews_table(self.case) else [])
            self._cache = {(path_from_key(r[0]), r[1]): _row_to_review(r) for r in rows}
        return self._cache

    def all(self) -> dict[Key, Review]:
        return dict(self._loaded())

    def get(self, path: str, sha256: str | None) -> Review:
        return self._loaded().get((path, sha256 or "")) or unreviewed(path, sha256)

    def find(self, r: ScanResult) -> Review | None:
        """The stored review of a result row, or None (cheap: a table paints with it)."""
        return self._loaded().get((r.path, r.sha256 or ""))

    def copies(self, sha256: str) -> list[Key]:
        """Every stored (path, SHA-256) with these bytes, in the order first recorded."""
        if not sha256:
            return []
        rows = self.case.query("SELECT path, sha256 FROM results WHERE sha256 = ? ORDER BY seq",
                               (sha256,))
        return list(dict.fromkeys((path_from_key(p), s) for p, s in rows))

    def resolve(self, path_or_sha256: str, all_copies: bool = False) -> list[Key]:
        """The evidence items a CLI argument names: a SHA-256 names every copy; a path the
        latest bytes stored for it (and their copies with ``all_copies``)."""
        text = path_or_sha256.strip()
        if _SHA256.fullmatch(text):
            keys = self.copies(text.lower())
            if not keys:
                raise ReviewError(f"no file with SHA-256 {text} is stored in the case")
            return keys
        rows = self.case.query("SELECT path, sha256 FROM results WHERE path = ? ORDER BY seq",
                               (path_key(text),))
        if not rows:
            rows = self.case.query("SELECT path, sha256 FROM results WHERE path = ? "
                                   "ORDER BY seq", (path_key(absolute_path(text)),))
        if not rows:
            raise ReviewError(f"{text} is not a file of this case (give its path as scanned, "
                              "or its SHA-256)")
        key = (path_from_key(rows[-1][0]), rows[-1][1])
        if all_copies and key[1]:
            return self.copies(key[1])
        return [key]

    def set(self, targets: Iterable[Key], *, status: ReviewStatus | None = None,
            note: str | None = None, tags: Iterable[str] | None = None,
            add_tags: Iterable[str] = (), remove_tags: Iterable[str] = (),
            bookmarked: bool | None = None, examiner: str | None = None) -> list[Review]:
        """Change the review of every target in one transaction, one audit entry per item
        that actually changes; returns the new reviews (unchanged items included)."""
        from forensics_app.core.case import _os_user, utc_now

        if note is not None and len(note) > MAX_NOTE_CHARS:
            raise ReviewError(f"a note is at most {MAX_NOTE_CHARS} characters")
        new_tags = clean_tags(tags) if tags is not None else None
        plus, minus = clean_tags(add_tags), {t.casefold() for t in clean_tags(remove_tags)}
        who = examiner or _os_user()
        targets = list(dict.fromkeys(targets))
        current = self.all()
        out: list[Review] = []
        with self.case.audited(f"record the review of {len(targets)} file(s)") as (conn, audit):
            now = utc_now()
            for path, sha in targets:
                old = current.get((path, sha)) or unreviewed(path, sha)
                t = new_tags if new_tags is not None else old.tags
                t = tuple(x for x in clean_tags((*t, *plus)) if x.casefold() not in minus)
                new = replace(old, status=status if status is not None else old.status,
                              note=note if note is not None else old.note, tags=t,
                              bookmarked=bookmarked if bookmarked is not None
                              else old.bookmarked)
                if new.state() == old.state():
                    out.append(old)
                    continue
                entry = audit(ACTION_REVIEW_CHANGED, {
                    "path": path, "sha256": sha, "examiner": who,
                    "old": old.state(), "new": new.state()})
                new = replace(new, examiner=who, updated_utc=now, audit_seq=entry.seq)
                conn.execute(
                    f"INSERT INTO reviews ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(path, sha256) DO UPDATE SET status = excluded.status, "
                    "note = excluded.note, tags_json = excluded.tags_json, "
                    "bookmarked = excluded.bookmarked, examiner = excluded.examiner, "
                    "updated_utc = excluded.updated_utc, audit_seq = excluded.audit_seq",
                    (path_key(path), sha, new.status.value, new.note, json.dumps(list(new.tags)),
                     int(new.bookmarked), who, now, entry.seq))
                current[(path, sha)] = new
                out.append(new)
        self._cache = current
        return out

    def history(self, path: str, sha256: str | None) -> list[dict[str, Any]]:
        """Every recorded change of one item: seq, time, user, examiner, old, new."""
        rows = self.case.query("SELECT seq, time_utc, os_user, params_json FROM audit "
                               "WHERE action = ? ORDER BY seq", (ACTION_REVIEW_CHANGED,))
        out = []
        for seq, t, user, params_json in rows:
            p = json.loads(params_json)
            if (p.get("path"), p.get("sha256")) == (path, sha256 or ""):
                out.append({"seq": seq, "time_utc": t, "os_user": user,
                            "examiner": p.get("examiner"), "old": p.get("old"),
                            "new": p.get("new")})
        return out


def has_reviews_table(case: Case) -> bool:
    try:
        return bool(case.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                               "name = 'reviews'"))
    except Exception:  # noqa: BLE001 -- unreadable: the caller's query reports it
        return True


def review_problems(case: Case) -> list[str]:
    """The reviews table checked against the audit entries that recorded it (never raises).

    The last entry per item must match its row exactly (state and seq); a row with no entry
    was added outside the app, an entry with no row was deleted. The audit chain itself is
    checked by ``Case.verify``.
    """
    expected: dict[Key, tuple[int, dict[str, Any]]] = {}
    try:
        audit = case.query("SELECT seq, action, params_json FROM audit WHERE action = ? "
                           "ORDER BY seq", (ACTION_REVIEW_CHANGED,))
    except Exception as exc:  # noqa: BLE001 -- reported by the chain check as well
        return [f"the audit log cannot be read for the reviews ({exc})"]
    for seq, action, params_json in audit:
        if action != ACTION_REVIEW_CHANGED:
            continue
        try:
            p = json.loads(params_json)
            expected[(p["path"], p["sha256"])] = (seq, p["new"])
        except (ValueError, KeyError, TypeError):
            continue  # an unreadable entry is already reported by the audit chain check
    try:
        if not has_reviews_table(case) and not expected:
            return []  # an older schema read read-only, and no review was ever recorded
        rows = case.query(f"SELECT {_COLUMNS} FROM reviews")
    except Exception as exc:  # noqa: BLE001 -- a missing or damaged table is a finding
        return [f"the reviews table cannot be read ({exc})"]
    problems: list[str] = []
    seen: set[Key] = set()
    for row in rows:
        row = (path_from_key(row[0]), *row[1:])
        key = (row[0], row[1])
        seen.add(key)
        label = f"review of {key[0]} ({key[1][:12] or 'no hash'})"
        try:
            state = _row_to_review(row).state()
        except (ValueError, TypeError):
            problems.append(f"{label}: the stored row is not readable (edited)")
            continue
        if key not in expected:
            problems.append(f"{label}: no audit entry records it (added outside the app)")
            continue
        seq, new = expected[key]
        if int(row[8]) != seq or state != new:
            problems.append(f"{label}: does not match audit entry #{seq} that last changed it "
                            "(edited)")
    for key, (seq, _new) in expected.items():
        if key not in seen:
            problems.append(f"review of {key[0]} recorded by audit entry #{seq} is missing "
                            "from the reviews table (deleted)")
    return problems
