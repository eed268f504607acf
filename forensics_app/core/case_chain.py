"""The case's hash chains, the facts they pin, anchors, and verification.

Two chains make a case tamper-evident: each audit entry and each result row stores the
SHA-256 of the previous one and a SHA-256 over its own content and that link. Everything
else a report prints is *pinned* by a chained audit entry and checked against it:

* ``case_info`` (name, case id, creation time) by the "case created" entry;
* each ``models`` row (path, SHA-256, kind, a SHA-256 of its metadata) by the entry that
  first recorded the model;
* each ``scans`` row by its "scan started" entry (start time, model, settings, sources) and
  its scan-end entry (status, end time, rows done, and the results head and counts of both
  chains at that moment);
* each ``evidence`` row by a stored result or an "evidence moved" entry;
* facts of a case made before schema 2 by the "case upgraded" entry that pinned them.

A head stored in the same file cannot prove that nothing was cut off the end: whoever
deletes the last entries can copy the surviving hash into the head without computing any
hash. An *anchor* (a small JSON file written next to every report, kept apart from the
case) records both heads and counts; :func:`verify_database` with that anchor proves the
case still holds exactly the anchored prefix of both chains.

Verification never raises for a damaged case: every unreadable table, unparsable entry or
missing pin becomes a problem that names it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensics_app.core.case_values import stored_int
from forensics_app.core.safetext import escape_text, has_undecodable

GENESIS_HASH = "0" * 64
ANCHOR_KIND = "forensics-app case anchor"
ANCHOR_SUFFIX = ".anchor.json"

ACTION_CASE_CREATED = "case created"
ACTION_CASE_UPGRADED = "case upgraded"
ACTION_MODEL_RECORDED = "model recorded"
ACTION_CHECKPOINT_LOADED = "checkpoint loaded"
ACTION_SCAN_STARTED = "scan started"
ACTION_SCAN_FINISHED = "scan finished"
ACTION_SCAN_CANCELLED = "scan cancelled"
ACTION_SCAN_INTERRUPTED = "scan interrupted"
ACTION_SCAN_FAILED = "scan failed"
ACTION_EVIDENCE_MOVED = "evidence moved"
SCAN_END_ACTIONS = {
    "finished": ACTION_SCAN_FINISHED, "cancelled": ACTION_SCAN_CANCELLED,
    "interrupted": ACTION_SCAN_INTERRUPTED, "failed": ACTION_SCAN_FAILED,
}

_ANY_SURROGATE = re.compile("[\ud800-\udfff]")


# ----------------------------------------------------------------------------- hashing
def canonical(obj: Any) -> str:
    """Stable JSON for hashing and storing.

    A name that is not valid UTF-8 reaches Python as lone surrogates, which no UTF-8 writer
    (SQLite, ``str.encode``) accepts; they are written as JSON ``\\udcNN`` escapes, which
    ``json.loads`` turns back into the same surrogates (reversible, and no other text can
    produce them). Text without them is byte-identical to what schema 1 hashed.
    """
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)
    if _ANY_SURROGATE.search(text):
        text = _ANY_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text


def sha_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def audit_hash(seq: int, time_utc: str, os_user: str, host: str, app_version: str,
               action: str, params_json: str, prev_hash: str) -> str:
    return sha_text(canonical([seq, time_utc, os_user, host, app_version, action, params_json,
                               prev_hash]))


def result_hash(seq: int, scan_id: int, path: str, model_id: str, sha256: str,
                mtime_ns: int | None, record_json: str, recorded_utc: str,
                prev_hash: str) -> str:
    return sha_text(canonical([seq, scan_id, path, model_id, sha256, mtime_ns, record_json,
                               recorded_utc, prev_hash]))


def meta_digest(meta_json: str) -> str:
    """What an audit entry pins of a model's metadata: the SHA-256 of its canonical JSON."""
    return sha_text(canonical(json.loads(meta_json)))


# ----------------------------------------------------------------------------- paths
def path_key(path: str) -> str | bytes:
    """A path as a database key: the text, or its exact bytes when it is not valid UTF-8.

    SQLite stores the bytes as a BLOB, which never equals any TEXT, so a name holding byte
    0xFF and a name spelling ``\\xff`` stay two keys.
    """
    return os.fsencode(path) if has_undecodable(path) else path


def path_from_key(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def absolute_path(path: os.PathLike | str) -> str:
    """An evidence path made absolute, its folder resolved (``..`` and links), its own name
    kept (a link to evidence is recorded as the link, not silently as its target)."""
    p = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(p))
    return os.path.join(os.path.realpath(folder), name)


# ----------------------------------------------------------------------------- verification
@dataclass
class VerifyReport:
    ok: bool
    n_audit: int
    n_results: int
    problems: list[str] = field(default_factory=list)
    audit_head: str = GENESIS_HASH
    results_head: str = GENESIS_HASH
    audit_seq: int = 0
    results_seq: int = 0
    tampered_results: set[int] = field(default_factory=set)  # seqs failing their own hash
    notes: list[str] = field(default_factory=list)  # limits of this verification
    anchor: str | None = None  # the anchor file checked, if any

    @property
    def first_problem(self) -> str | None:
        return self.problems[0] if self.problems else None


class _Verifier:
    """One pass over the database; collects problems instead of raising."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.tampered: set[int] = set()

    def rows(self, table: str, sql: str) -> list[tuple] | None:
        try:
            return self.conn.execute(sql).fetchall()
        except sqlite3.Error as exc:
            self.problems.append(f"the {table} table cannot be read ({exc}): dropped or "
                                 "damaged")
            return None

    # -- the audit chain
    def audit(self) -> tuple[list[tuple[int, str, dict[str, Any]]], int, str]:
        rows = self.rows("audit", "SELECT seq, time_utc, os_user, host, app_version, action, "
                                  "params_json, prev_hash, entry_hash FROM audit ORDER BY seq")
        entries: list[tuple[int, str, dict[str, Any]]] = []
        prev, expected = GENESIS_HASH, 1
        for row in rows or []:
            try:
                seq, t, user, host, ver, action, params_json, prev_hash, entry_hash = row
                label = f"audit entry #{seq} ({escape_text(action)}, {escape_text(t)})"
                if seq != expected:
                    gap = f"#{expected}" if seq == expected + 1 else f"#{expected}-#{seq - 1}"
                    self.problems.append(f"audit entry {gap} is missing (deleted): the log "
                                         f"jumps from #{expected - 1} to #{seq}")
                elif prev_hash != prev:
                    self.problems.append(f"{label}: its link to the previous entry does not "
                                         "match")
                if audit_hash(seq, t, user, host, ver, action, params_json,
                              prev_hash) != entry_hash:
                    self.problems.append(f"{label}: content does not match its hash (edited)")
                try:
                    params = json.loads(params_json)
                    if not isinstance(params, dict):
                        raise ValueError("not an object")
                except (TypeError, ValueError) as exc:
                    self.problems.append(f"{label}: its parameters are not valid JSON ({exc})")
                    params = {}
                entries.append((int(seq), str(action), params))
                prev, expected = entry_hash, int(seq) + 1
            except (TypeError, ValueError) as exc:
                self.problems.append(f"audit entry after #{expected - 1} is malformed ({exc})")
        if rows is not None and not rows:
            self.problems.append("the audit log is empty: every case starts with a "
                                 "'case created' entry (the log was deleted)")
        elif entries and entries[0][1] != ACTION_CASE_CREATED:
            self.problems.append("audit entry #1 is not 'case created' (the log's start was "
                                 "replaced)")
        return entries, expected - 1, prev

    # -- the results chain
    def results(self) -> tuple[list[tuple], int, str]:
        rows = self.rows("results", "SELECT seq, scan_id, path, model_id, sha256, mtime_ns, "
                                    "record_json, recorded_utc, prev_hash, row_hash FROM results "
                                    "ORDER BY seq")
        out: list[tuple] = []
        prev, expected = GENESIS_HASH, 1
        for row in rows or []:
            try:
                seq, scan_id, key, mid, sha, mtime, rec, t, prev_hash, row_hash = row
                path = path_from_key(key)
                label = f"result #{seq} ({escape_text(Path(path).name)}, {escape_text(mid)})"
                if seq != expected:
                    self.problems.append(f"result #{expected} is missing (deleted): results "
                                         f"jump from #{expected - 1} to #{seq}")
                elif prev_hash != prev:
                    self.problems.append(f"{label}: its link to the previous result does not "
                                         "match")
                if result_hash(seq, scan_id, path, mid, sha, mtime, rec, t,
                               prev_hash) != row_hash:
                    self.problems.append(f"{label}: content does not match its hash (edited)")
                    self.tampered.add(int(seq))
                    stored: Any = {}
                else:
                    try:
                        stored = json.loads(rec)
                    except (TypeError, ValueError):
                        stored = None
                    if not isinstance(stored, dict) or stored.get("path") != path or (
                            stored.get("sha256") or "") != sha:
                        self.problems.append(f"{label}: record and key columns disagree")
                        self.tampered.add(int(seq))
                        stored = {}
                out.append((int(seq), scan_id, path, mid, sha, stored))
                prev, expected = row_hash, int(seq) + 1
            except (TypeError, ValueError, AttributeError) as exc:
                self.problems.append(f"result after #{expected - 1} is malformed ({exc})")
        return out, expected - 1, prev

    def head(self, key: str, seq: int, digest: str, what: str) -> str:
        row = self.rows("case_info", f"SELECT value FROM case_info WHERE key = '{key}'")
        stored = (row[0][0] if row else None) or f"0:{GENESIS_HASH}"
        if stored != f"{seq}:{digest}":
            n = str(stored).split(":", 1)[0]
            self.problems.append(f"{what} end at #{seq} but the case records the last one as "
                                 f"#{escape_text(n)} ({what} removed from the end, or the head "
                                 "was edited)")
        return stored

    # -- facts pinned by the audit log
    def facts(self, entries: list[tuple[int, str, dict[str, Any]]],
              results: list[tuple], results_seq: int, audit_seq: int) -> None:
        info: dict[str, tuple[int, Any]] = {}
        models: dict[str, tuple[int, dict[str, Any]]] = {}
        scans: dict[int, tuple[int, dict[str, Any]]] = {}
        result_hashes = dict(self._row_hashes())
        schema2 = False
        for seq, action, p in entries:
            try:
                self._replay(seq, action, p, info, models, scans, result_hashes, audit_seq)
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                self.problems.append(f"audit entry #{seq} ({escape_text(action)}): its "
                                     f"parameters are malformed ({exc})")
            if action == ACTION_CASE_UPGRADED or (action == ACTION_CASE_CREATED
                                                   and "case_id" in p):
                schema2 = True
        if not schema2 and entries:
            self.notes.append("this case was written before schema 2: its case id, creation "
                              "time, scan start times and model metadata are not pinned "
                              "by the audit log (opening it for writing pins them)")
        self._check_info(info)
        self._check_models(models)
        self._check_scans(scans, results)
        self._check_evidence(results, entries)

    def _row_hashes(self) -> list[tuple[int, str]]:
        try:
            return self.conn.execute("SELECT seq, row_hash FROM results").fetchall()
        except sqlite3.Error:
            return []

    def _replay(self, seq: int, action: str, p: dict[str, Any], info: dict, models: dict,
                scans: dict, result_hashes: dict[int, str],
                audit_seq: int) -> None:
        if action == ACTION_CASE_CREATED:
            for key in ("name", "case_id", "created_utc"):
                if key in p:
                    info[key] = (seq, p[key])
        elif action == ACTION_CASE_UPGRADED:
            snap = p.get("snapshot") or {}
            for key, value in (snap.get("case_info") or {}).items():
                info[key] = (seq, value)
            for mid, facts in (snap.get("models") or {}).items():
                models[mid] = (seq, dict(facts))
            for sid, facts in (snap.get("scans") or {}).items():
                scans[int(sid)] = (seq, dict(facts))
        elif action in (ACTION_MODEL_RECORDED, ACTION_CHECKPOINT_LOADED):
            facts = {k: p[k] for k in ("path", "sha256", "kind", "meta_sha256") if k in p}
            models.setdefault(str(p["model_id"]), (seq, facts))
        elif action == ACTION_SCAN_STARTED:
            sid = int(p["scan_id"])
            facts = {"status": "running", "finished_utc": None, "model_id": p["model_id"],
                     "settings": p.get("settings"), "sources": p.get("sources"),
                     "recursive": bool(p.get("recursive")), "n_files": p.get("n_files")}
            if "started_utc" in p:
                facts["started_utc"] = p["started_utc"]
            scans[sid] = (seq, facts)
            pinned = {"path": p.get("model_path", ""), "sha256": p.get("model_sha256", "")}
            if "model_kind" in p:
                pinned.update(kind=p["model_kind"], meta_sha256=p.get("model_meta_sha256"))
            models.setdefault(str(p["model_id"]), (seq, pinned))
        elif action in SCAN_END_ACTIONS.values():
            sid = int(p["scan_id"])
            status = next(k for k, v in SCAN_END_ACTIONS.items() if v == action)
            _first, facts = scans.get(sid, (seq, {}))
            facts = dict(facts, status=status, n_done=p.get("n_done"))
            if "finished_utc" in p:
                facts["finished_utc"] = p["finished_utc"]
            else:  # schema 1 did not pin it
                facts.pop("finished_utc", None)
            scans[sid] = (seq, facts)
            head = p.get("results_head", "")
            if ":" in str(head):
                n_text, digest = str(head).split(":", 1)
                n = int(n_text)
                if n and result_hashes.get(n) != digest:
                    self.problems.append(f"audit entry #{seq} ({action}) pins result #{n}, "
                                         "which no longer matches (results edited or removed)")
            for key, total in (("n_results", len(result_hashes)), ("n_audit", audit_seq)):
                if key in p and int(p[key]) > total:
                    self.problems.append(f"audit entry #{seq} ({action}) counted {p[key]} "
                                         f"{key[2:]} rows, the case now holds {total} (removed)")

    def _check_info(self, info: dict[str, tuple[int, Any]]) -> None:
        rows = self.rows("case_info", "SELECT key, value FROM case_info")
        if rows is None:
            return
        stored = dict(rows)
        for key, (seq, value) in info.items():
            if stored.get(key) != value:
                self.problems.append(
                    f"case {key} is {escape_text(stored.get(key))!s} but audit entry #{seq} "
                    f"records {escape_text(value)!s} (edited)")

    def _check_models(self, models: dict[str, tuple[int, dict[str, Any]]]) -> None:
        rows = self.rows("models", "SELECT model_id, path, sha256, kind, meta_json FROM models")
        if rows is None:
            return
        seen = set()
        for mid, path, sha, kind, meta_json in rows:
            seen.add(mid)
            label = f"model {escape_text(mid)}"
            if mid not in models:
                self.problems.append(f"{label} is recorded by no audit entry (inserted)")
                continue
            seq, facts = models[mid]
            try:
                current = {"path": path, "sha256": sha, "kind": kind,
                           "meta_sha256": meta_digest(meta_json)}
            except (TypeError, ValueError):
                self.problems.append(f"{label}: its metadata is not valid JSON (edited)")
                continue
            for key, value in facts.items():
                if key in current and current[key] != value:
                    self.problems.append(f"{label}: its {key} does not match audit entry "
                                         f"#{seq} (edited)")
        for mid, (seq, _facts) in models.items():
            if mid not in seen:
                self.problems.append(f"model {escape_text(mid)} recorded in audit entry #{seq} "
                                     "is missing from the models table (deleted)")

    def _check_scans(self, scans: dict[int, tuple[int, dict[str, Any]]],
                     results: list[tuple]) -> None:
        rows = self.rows("scans", "SELECT scan_id, started_utc, finished_utc, status, model_id, "
                                  "settings_json, sources_json, recursive, n_files, n_done "
                                  "FROM scans")
        if rows is None:
            return
        per_scan = Counter(r[1] for r in results)
        seen = set()
        for sid, started, finished, status, mid, settings_json, sources_json, rec, n_files, \
                n_done in rows:
            seen.add(sid)
            if sid not in scans:
                self.problems.append(f"scan #{sid} is recorded by no audit entry (inserted)")
                continue
            seq, facts = scans[sid]
            try:
                current = {"started_utc": started, "finished_utc": finished, "status": status,
                           "model_id": mid, "settings": json.loads(settings_json),
                           "sources": json.loads(sources_json), "recursive": bool(rec),
                           "n_files": n_files, "n_done": n_done}
            except (TypeError, ValueError):
                self.problems.append(f"scan #{sid}: its settings or sources are not valid JSON "
                                     "(edited)")
                continue
            for key, value in facts.items():
                if key in current and canonical(current[key]) != canonical(value):
                    self.problems.append(f"scan #{sid}: its {key.replace('_', ' ')} does not "
                                         f"match audit entry #{seq} (edited)")
            if status == "running" and "started_utc" in facts and n_done != per_scan[sid]:
                self.problems.append(f"scan #{sid}: it counts {n_done} rows done but holds "
                                     f"{per_scan[sid]} results (edited)")
        for sid, (seq, _facts) in scans.items():
            if sid not in seen:
                self.problems.append(f"scan #{sid} recorded in audit entry #{seq} is missing "
                                     "from the scans table (deleted)")

    def _check_evidence(self, results: list[tuple],
                        entries: list[tuple[int, str, dict[str, Any]]]) -> None:
        rows = self.rows("evidence", "SELECT evidence_id, path, sha256, bytes FROM evidence")
        if rows is None:
            return
        known: dict[tuple[str, str], Any] = {}
        by_path: dict[str, list[tuple[str, Any]]] = {}
        for _seq, _scan, path, _mid, sha, stored in results:
            if sha:
                known[(path, sha)] = (stored or {}).get("bytes")
                by_path.setdefault(path, []).append((sha, known[(path, sha)]))
        for _seq, action, p in entries:
            if action == ACTION_EVIDENCE_MOVED and p.get("path"):
                for sha, n in by_path.get(p.get("scored_as", ""), ()):
                    known.setdefault((p["path"], sha), n)
        for eid, key, sha, n in rows:
            path = path_from_key(key)
            if (path, sha) not in known:
                self.problems.append(f"evidence row #{eid} ({escape_text(Path(path).name)}) "
                                     "matches no stored result or audit entry (inserted or "
                                     "edited)")
            elif known[(path, sha)] is not None and stored_int(n) != known[(path, sha)]:
                self.problems.append(f"evidence row #{eid} ({escape_text(Path(path).name)}): "
                                     "its size does not match the stored result (edited)")


def verify_database(conn: sqlite3.Connection, anchor: dict[str, Any] | None = None,
                    anchor_name: str | None = None) -> VerifyReport:
    """Recompute both chains and every pinned fact; ``problems[0]`` names the first break."""
    v = _Verifier(conn)
    entries, audit_seq, audit_prev = v.audit()
    a_head = v.head("audit_head", audit_seq, audit_prev, "audit entries")
    results, results_seq, results_prev = v.results()
    r_head = v.head("results_head", results_seq, results_prev, "results")
    v.facts(entries, results, results_seq, audit_seq)
    if anchor is not None:
        _check_anchor(v, anchor, anchor_name or "the anchor")
    else:
        v.notes.append("no anchor given: entries cut off the end of both chains together with "
                       "their heads cannot be told from a case that never had them")
    return VerifyReport(not v.problems, audit_seq, results_seq, v.problems,
                        str(a_head).split(":", 1)[-1], str(r_head).split(":", 1)[-1],
                        audit_seq, results_seq, v.tampered, v.notes, anchor_name)


# ----------------------------------------------------------------------------- anchors
def anchor_path(report: Path | str) -> Path:
    return Path(f"{report}{ANCHOR_SUFFIX}")


def anchor_record(case_id: str, case_name: str, report: VerifyReport,
                  created_utc: str, report_name: str = "") -> dict[str, Any]:
    return {"kind": ANCHOR_KIND, "version": 1, "case_id": case_id, "case_name": case_name,
            "created_utc": created_utc, "report": report_name,
            "audit": {"seq": report.audit_seq, "hash": report.audit_head},
            "results": {"seq": report.results_seq, "hash": report.results_head},
            "intact_when_written": report.ok}


class AnchorError(ValueError):
    """The anchor file cannot be read."""


def read_anchor(path: Path | str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AnchorError(f"cannot read the anchor {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("kind") != ANCHOR_KIND:
        raise AnchorError(f"{path} is not a case anchor (written by --report next to a report)")
    try:
        for chain in ("audit", "results"):
            int(data[chain]["seq"])
            str(data[chain]["hash"])
    except (KeyError, TypeError, ValueError) as exc:
        raise AnchorError(f"the anchor {path} is incomplete ({exc})") from exc
    return data


def _check_anchor(v: _Verifier, anchor: dict[str, Any], name: str) -> None:
    info = v.rows("case_info", "SELECT value FROM case_info WHERE key = 'case_id'")
    case_id = info[0][0] if info else None
    if anchor.get("case_id") and anchor.get("case_id") != case_id:
        v.problems.append(f"{name} belongs to case {escape_text(anchor.get('case_id'))}, not "
                          f"this one ({escape_text(case_id)})")
        return
    for chain, table, column in (("audit", "audit", "entry_hash"),
                                 ("results", "results", "row_hash")):
        seq, digest = int(anchor[chain]["seq"]), str(anchor[chain]["hash"])
        if seq == 0:
            continue
        what = "audit entry" if chain == "audit" else "result"
        try:
            row = v.conn.execute(f"SELECT {column} FROM {table} WHERE seq = ?",
                                 (seq,)).fetchone()
            n = v.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        except sqlite3.Error as exc:
            v.problems.append(f"{name}: the {table} table cannot be read ({exc})")
            continue
        if row is None:
            v.problems.append(f"{name} pins {what} #{seq}, but the case holds only {n} "
                              f"{table} rows: entries were removed from the end")
        elif row[0] != digest:
            v.problems.append(f"{name} pins {what} #{seq} with hash {digest}, the case has "
                              f"{row[0]}: the chain up to the anchor was rewritten")
