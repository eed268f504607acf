"""A case: one folder, one SQLite database, everything a scan did and found.

The database (stdlib ``sqlite3``, WAL journal) holds the evidence list, every result as it
arrives (one transaction per batch), the model and settings of every scan, and an
append-only audit log. Two hash chains make it tamper-evident: each audit entry and each
result row stores the SHA-256 of the previous one and a SHA-256 over its own content and
that link, and the heads of both chains are kept in ``case_info``. :meth:`Case.verify`
recomputes everything and names the first entry that does not match.

The chains detect an edit made with an ordinary SQLite tool; they cannot stop someone who
rewrites the whole database and recomputes every hash. The report prints both chain heads,
so a printed or archived report anchors the state it describes.

One writer: a case opened for writing holds an exclusive lock on ``case.lock`` (released by
the operating system when the process dies, so ``kill -9`` never leaves a stale lock). Every
connection is shared under a :class:`threading.Lock`, so a GUI thread and a scan thread can
both use one :class:`Case`. Readers (report, verify) open the database read-only and take
no lock.
"""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import json
import os
import socket
import sqlite3
import threading
import typing
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forensics_app import __version__
from forensics_app.core.results import ScanResult, Verdict

CASE_DB_NAME = "case.sqlite3"
CASE_LOCK_NAME = "case.lock"
CASE_APP_TAG = "forensics-app-case"
SCHEMA_VERSION = 1
GENESIS_HASH = "0" * 64

# Actions the audit log records (free text is allowed too; these are the ones the app writes).
ACTION_CASE_CREATED = "case created"
ACTION_CASE_OPENED = "case opened"
ACTION_SCAN_STARTED = "scan started"
ACTION_SCAN_FINISHED = "scan finished"
ACTION_SCAN_CANCELLED = "scan cancelled"
ACTION_SCAN_INTERRUPTED = "scan interrupted"
ACTION_SCAN_FAILED = "scan failed"
ACTION_THRESHOLD_CHANGED = "threshold changed"
ACTION_CHECKPOINT_LOADED = "checkpoint loaded"
ACTION_REPORT_EXPORTED = "report exported"
ACTION_EVIDENCE_CHANGED = "evidence changed"
ACTION_EVIDENCE_MOVED = "evidence moved"

SCAN_RUNNING, SCAN_FINISHED, SCAN_CANCELLED = "running", "finished", "cancelled"
SCAN_INTERRUPTED, SCAN_FAILED = "interrupted", "failed"
_SCAN_END_ACTIONS = {
    SCAN_FINISHED: ACTION_SCAN_FINISHED, SCAN_CANCELLED: ACTION_SCAN_CANCELLED,
    SCAN_INTERRUPTED: ACTION_SCAN_INTERRUPTED, SCAN_FAILED: ACTION_SCAN_FAILED,
}


# ----------------------------------------------------------------------------- errors
class CaseError(Exception):
    """A case that cannot be used as asked; the message says what and what to do."""


class NotACaseError(CaseError):
    """The folder is not a case (and not empty, so one will not be created there)."""


class CaseVersionError(CaseError):
    """The database was written by a newer version of the app."""


class CaseLockedError(CaseError):
    """Another process has the case open for writing."""


class CaseReadOnlyError(CaseError):
    """The case folder or database cannot be written."""


class CaseStorageError(CaseError):
    """SQLite could not store data (disk full, I/O error); what was committed is safe."""


# ----------------------------------------------------------------------------- records
@dataclass(frozen=True)
class AuditEntry:
    seq: int
    time_utc: str
    os_user: str
    host: str
    app_version: str
    action: str
    params: dict[str, Any]
    prev_hash: str
    entry_hash: str


@dataclass(frozen=True)
class ScanRecord:
    scan_id: int
    started_utc: str
    finished_utc: str | None
    status: str
    model_id: str
    settings: dict[str, Any]
    sources: list[str]
    recursive: bool
    n_files: int | None
    n_done: int


@dataclass(frozen=True)
class ModelRecord:
    model_id: str
    path: str
    sha256: str
    kind: str
    meta: dict[str, Any]


@dataclass
class ResumePlan:
    """What a scan into the case still has to do.

    ``todo`` are the files to score; ``skipped`` were already scored with the same model and
    their bytes are unchanged; ``changed`` have a row for their path whose SHA-256 differs
    (they are scored again and flagged); ``moved`` are files whose bytes were already scored
    at another path that no longer exists (recorded, not scored twice).
    """

    todo: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    changed: dict[str, str] = field(default_factory=dict)  # path -> previous SHA-256
    moved: dict[str, str] = field(default_factory=dict)  # new path -> old path


@dataclass
class VerifyReport:
    ok: bool
    n_audit: int
    n_results: int
    problems: list[str] = field(default_factory=list)
    audit_head: str = GENESIS_HASH
    results_head: str = GENESIS_HASH

    @property
    def first_problem(self) -> str | None:
        return self.problems[0] if self.problems else None


# ----------------------------------------------------------------------------- hashing
def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _audit_hash(seq: int, time_utc: str, os_user: str, host: str, app_version: str,
                action: str, params_json: str, prev_hash: str) -> str:
    return _sha(_canonical([seq, time_utc, os_user, host, app_version, action, params_json,
                            prev_hash]))


def _result_hash(seq: int, scan_id: int, path: str, model_id: str, sha256: str,
                 mtime_ns: int | None, record_json: str, recorded_utc: str,
                 prev_hash: str) -> str:
    return _sha(_canonical([seq, scan_id, path, model_id, sha256, mtime_ns, record_json,
                            recorded_utc, prev_hash]))


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return os.environ.get("USERNAME") or os.environ.get("USER") or "unknown"


# ----------------------------------------------------------------------------- records <-> JSON
_RESULT_FIELDS = {f.name for f in dataclasses.fields(ScanResult)}


def result_to_record(r: ScanResult) -> dict[str, Any]:
    """Every field of the result (including ones added later, such as provenance)."""
    rec = dataclasses.asdict(r)
    rec["verdict"] = r.verdict.value
    return rec


def _type_hints(cls: type) -> dict[str, Any]:
    """Field types of a record dataclass, resolving names its module imports lazily."""
    ns: dict[str, Any] = {}
    try:
        from forensics_app.core import provenance

        ns = dict(vars(provenance))
    except ImportError:  # pragma: no cover - before provenance existed
        pass
    try:
        return typing.get_type_hints(cls, localns=ns)
    except (NameError, TypeError):
        return {}


def _from_plain(hint: Any, value: Any) -> Any:
    """Rebuild nested dataclasses (e.g. a result's provenance) from their JSON form."""
    if value is None:
        return None
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        hints = _type_hints(hint)
        names = {f.name for f in dataclasses.fields(hint) if f.init}
        return hint(**{k: _from_plain(hints.get(k), v) for k, v in value.items() if k in names})
    if origin in (list, tuple) and args and isinstance(value, list):
        return [_from_plain(args[0], v) for v in value]
    if len(args) == 1 and origin is not list:  # X | None
        return _from_plain(args[0], value)
    return value


def record_to_result(rec: dict[str, Any]) -> ScanResult:
    hints = _type_hints(ScanResult)
    kwargs = {k: v for k, v in rec.items() if k in _RESULT_FIELDS}
    kwargs["verdict"] = Verdict(kwargs.get("verdict", Verdict.ERROR.value))
    kwargs["tile_boxes"] = [tuple(b) for b in kwargs.get("tile_boxes") or []]
    for name, value in kwargs.items():
        hint = hints.get(name)
        if isinstance(value, dict) and hint is not None:
            try:
                kwargs[name] = _from_plain(hint, value)
            except (TypeError, ValueError):
                pass  # keep the plain form rather than lose the row
    return ScanResult(**kwargs)


# ----------------------------------------------------------------------------- schema
def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Statement by statement: ``executescript`` would commit the migration's transaction."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migration_1(conn: sqlite3.Connection) -> None:
    _run_script(conn, """
        CREATE TABLE case_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE models (
            model_id TEXT PRIMARY KEY, path TEXT NOT NULL, sha256 TEXT NOT NULL,
            kind TEXT NOT NULL, meta_json TEXT NOT NULL, first_used_utc TEXT NOT NULL);
        CREATE TABLE scans (
            scan_id INTEGER PRIMARY KEY, started_utc TEXT NOT NULL, finished_utc TEXT,
            status TEXT NOT NULL, model_id TEXT NOT NULL, settings_json TEXT NOT NULL,
            sources_json TEXT NOT NULL, recursive INTEGER NOT NULL, n_files INTEGER,
            n_done INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE evidence (
            evidence_id INTEGER PRIMARY KEY, path TEXT NOT NULL, sha256 TEXT NOT NULL,
            bytes INTEGER, mtime_ns INTEGER, first_seen_utc TEXT NOT NULL,
            last_seen_utc TEXT NOT NULL, UNIQUE (path, sha256));
        CREATE TABLE results (
            seq INTEGER PRIMARY KEY, scan_id INTEGER NOT NULL, path TEXT NOT NULL,
            model_id TEXT NOT NULL, sha256 TEXT NOT NULL, mtime_ns INTEGER,
            record_json TEXT NOT NULL, recorded_utc TEXT NOT NULL,
            prev_hash TEXT NOT NULL, row_hash TEXT NOT NULL,
            UNIQUE (path, model_id, sha256));
        CREATE INDEX results_by_sha ON results (sha256, model_id);
        CREATE TABLE audit (
            seq INTEGER PRIMARY KEY, time_utc TEXT NOT NULL, os_user TEXT NOT NULL,
            host TEXT NOT NULL, app_version TEXT NOT NULL, action TEXT NOT NULL,
            params_json TEXT NOT NULL, prev_hash TEXT NOT NULL, entry_hash TEXT NOT NULL);
    """)


# Migration n takes a database at schema n-1 to schema n. Add new ones at the end; never
# edit a released one.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_migration_1,)
assert len(MIGRATIONS) == SCHEMA_VERSION


def is_case_folder(folder: Path | str) -> bool:
    return (Path(folder) / CASE_DB_NAME).is_file()


def _storage_error(exc: sqlite3.Error, folder: Path, what: str) -> CaseError:
    msg = str(exc)
    low = msg.lower()
    if "full" in low:
        return CaseStorageError(
            f"cannot {what}: the disk holding the case {folder} is full ({msg}). Everything "
            "committed before this point is safe; free space and scan again to resume.")
    if "readonly" in low or "read-only" in low:
        return CaseReadOnlyError(f"cannot {what}: the case {folder} is read-only ({msg}).")
    if "locked" in low or "busy" in low:
        return CaseLockedError(f"cannot {what}: the case database {folder} is locked by "
                               f"another program ({msg}).")
    if "not a database" in low or "malformed" in low:
        return NotACaseError(f"{folder / CASE_DB_NAME} is not a readable case database "
                             f"({msg}).")
    return CaseStorageError(f"cannot {what} in the case {folder}: {msg}. Everything committed "
                            "before this point is safe.")


# ----------------------------------------------------------------------------- the lock
class _CaseLock:
    """An exclusive, process-scoped lock on ``case.lock`` (flock / msvcrt)."""

    def __init__(self, folder: Path):
        self.path = folder / CASE_LOCK_NAME
        self._fh = None

    def acquire(self) -> None:
        try:
            fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 -- held while open
        except PermissionError as exc:
            raise CaseReadOnlyError(
                f"the case folder {self.path.parent} is read-only: it can be reported on and "
                "verified, not scanned into (copy it somewhere writable to continue)") from exc
        except OSError as exc:
            raise CaseStorageError(f"cannot create {self.path}: {exc}") from exc
        try:
            if os.name == "nt":  # pragma: no cover - exercised on Windows only
                import msvcrt

                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise CaseLockedError(
                f"the case {self.path.parent} is open in another instance of the app "
                f"({holder}). Close it there first; nothing was changed.") from exc
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {utc_now()}\n")
            fh.flush()
        except OSError:
            pass  # the lock itself is what matters
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()  # closing releases flock/msvcrt locks
            finally:
                self._fh = None


# ----------------------------------------------------------------------------- the case
class Case:
    """One case folder. Use :meth:`create`, :meth:`open` or :meth:`open_or_create`."""

    def __init__(self, folder: Path, conn: sqlite3.Connection, lock: _CaseLock | None,
                 read_only: bool):
        self.folder = folder
        self._conn = conn
        self._lock = lock
        self.read_only = read_only
        self._mutex = threading.RLock()

    # -- opening
    @classmethod
    def create(cls, folder: Path | str, name: str | None = None) -> Case:
        folder = Path(folder)
        if is_case_folder(folder):
            raise CaseError(f"{folder} is already a case; open it instead")
        if folder.exists() and not folder.is_dir():
            raise NotACaseError(f"{folder} is a file, not a case folder")
        if folder.is_dir() and any(folder.iterdir()):
            raise NotACaseError(
                f"{folder} is not a case folder (it has no {CASE_DB_NAME}) and is not empty; "
                "choose an empty or new folder for a new case")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CaseReadOnlyError(f"cannot create the case folder {folder}: {exc}") from exc
        case = cls._open_writable(folder, creating=True)
        with case._write("create the case"):
            case._set_info("case_id", str(uuid.uuid4()))
            case._set_info("name", name or folder.name)
            case._set_info("created_utc", utc_now())
            case._append_audit(ACTION_CASE_CREATED, {"name": name or folder.name,
                                                     "folder": str(folder.absolute())})
        return case

    @classmethod
    def open(cls, folder: Path | str, read_only: bool = False) -> Case:
        folder = Path(folder)
        if not folder.is_dir():
            raise NotACaseError(f"{folder} does not exist or is not a folder")
        if not is_case_folder(folder):
            raise NotACaseError(f"{folder} is not a case folder (it has no {CASE_DB_NAME})")
        if read_only:
            return cls._open_read_only(folder)
        case = cls._open_writable(folder, creating=False)
        case._mark_interrupted_scans()
        return case

    @classmethod
    def open_or_create(cls, folder: Path | str, name: str | None = None) -> Case:
        folder = Path(folder)
        if is_case_folder(folder):
            return cls.open(folder)
        return cls.create(folder, name)

    @classmethod
    def _open_writable(cls, folder: Path, creating: bool) -> Case:
        db = folder / CASE_DB_NAME
        if not creating and not os.access(db, os.W_OK):
            raise CaseReadOnlyError(
                f"the case database {db} is read-only: the case can be reported on and "
                "verified, not scanned into (copy it somewhere writable to continue)")
        lock = _CaseLock(folder)
        lock.acquire()
        try:
            conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False,
                                   timeout=5.0)
            try:
                cls._check_is_case(conn, folder, creating)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
                cls._migrate(conn, folder)
            except BaseException:
                conn.close()
                raise
        except sqlite3.Error as exc:
            lock.release()
            raise _storage_error(exc, folder, "open the case") from exc
        except BaseException:
            lock.release()
            raise
        return cls(folder, conn, lock, read_only=False)

    @classmethod
    def _open_read_only(cls, folder: Path) -> Case:
        db = (folder / CASE_DB_NAME).absolute()
        try:
            conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True,
                                   isolation_level=None, check_same_thread=False, timeout=5.0)
            try:
                cls._check_is_case(conn, folder, creating=False)
            except sqlite3.OperationalError:
                # A read-only medium without the WAL's -shm file: read the file as it is.
                conn.close()
                conn = sqlite3.connect(f"{db.as_uri()}?mode=ro&immutable=1", uri=True,
                                       isolation_level=None, check_same_thread=False)
                cls._check_is_case(conn, folder, creating=False)
            version = cls._schema_version(conn)
            if version > SCHEMA_VERSION:
                conn.close()
                raise cls._newer(folder, version)
            if version < SCHEMA_VERSION:
                conn.close()
                raise CaseError(f"the case {folder} uses schema {version}; open it once for "
                                f"writing to upgrade it to schema {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise _storage_error(exc, folder, "read the case") from exc
        return cls(folder, conn, None, read_only=True)

    @staticmethod
    def _check_is_case(conn: sqlite3.Connection, folder: Path, creating: bool) -> None:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if creating and not tables:
            return
        if "schema_version" not in tables or "case_info" not in tables:
            raise NotACaseError(f"{folder / CASE_DB_NAME} is an SQLite database but not a case "
                                "of this app")
        row = conn.execute("SELECT value FROM case_info WHERE key='app'").fetchone()
        if row is None or row[0] != CASE_APP_TAG:
            raise NotACaseError(f"{folder / CASE_DB_NAME} is not a case of this app")

    @staticmethod
    def _schema_version(conn: sqlite3.Connection) -> int:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "schema_version" not in tables:
            return 0
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    @staticmethod
    def _newer(folder: Path, version: int) -> CaseVersionError:
        return CaseVersionError(
            f"the case {folder} was written by a newer version of the app (case schema "
            f"{version}; this version {__version__} reads up to schema {SCHEMA_VERSION}). "
            "Update the app to open it; the case was not changed.")

    @classmethod
    def _migrate(cls, conn: sqlite3.Connection, folder: Path) -> None:
        version = cls._schema_version(conn)
        if version > SCHEMA_VERSION:
            raise cls._newer(folder, version)
        if version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version == 0:
                conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, "
                             "applied_utc TEXT NOT NULL, app_version TEXT NOT NULL)")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[target - 1](conn)
                conn.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                             (target, utc_now(), __version__))
            if version == 0:
                conn.execute("INSERT INTO case_info VALUES ('app', ?)", (CASE_APP_TAG,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> Case:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._conn is None

    # -- plumbing
    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One transaction; SQLite errors become :class:`CaseError` with a clear message."""
        if self.read_only:
            raise CaseReadOnlyError(f"the case {self.folder} was opened read-only")
        with self._mutex:
            if self._conn is None:
                raise CaseError(f"the case {self.folder} is closed")
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise _storage_error(exc, self.folder, what) from exc

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._mutex:
            if self._conn is None:
                raise CaseError(f"the case {self.folder} is closed")
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise _storage_error(exc, self.folder, "read the case") from exc

    def _set_info(self, key: str, value: str) -> None:
        self._conn.execute("INSERT INTO case_info VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                           "SET value = excluded.value", (key, value))

    def info(self, key: str, default: str | None = None) -> str | None:
        rows = self._read("SELECT value FROM case_info WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    @property
    def name(self) -> str:
        return self.info("name") or self.folder.name

    @property
    def case_id(self) -> str:
        return self.info("case_id") or ""

    def _head(self, key: str) -> tuple[int, str]:
        row = self._conn.execute("SELECT value FROM case_info WHERE key = ?", (key,)).fetchone()
        if row is None:
            return 0, GENESIS_HASH
        seq, digest = row[0].split(":", 1)
        return int(seq), digest

    # -- audit
    def _append_audit(self, action: str, params: dict[str, Any]) -> AuditEntry:
        seq, prev = self._head("audit_head")
        seq += 1
        t, user, host = utc_now(), _os_user(), socket.gethostname()
        params_json = _canonical(params)
        digest = _audit_hash(seq, t, user, host, __version__, action, params_json, prev)
        self._conn.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (seq, t, user, host, __version__, action, params_json, prev, digest))
        self._set_info("audit_head", f"{seq}:{digest}")
        return AuditEntry(seq, t, user, host, __version__, action, params, prev, digest)

    def audit(self, action: str, params: dict[str, Any] | None = None) -> AuditEntry:
        """Append one entry to the audit log (its own transaction)."""
        with self._write(f"record '{action}'"):
            return self._append_audit(action, params or {})

    def audit_entries(self) -> list[AuditEntry]:
        rows = self._read("SELECT * FROM audit ORDER BY seq")
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8])
                for r in rows]

    # -- models and scans
    def register_model(self, model_id: str, path: str, sha256: str, kind: str,
                       meta: dict[str, Any]) -> None:
        with self._write("record the model"):
            self._register_model(model_id, path, sha256, kind, meta)

    def _register_model(self, model_id: str, path: str, sha256: str, kind: str,
                        meta: dict[str, Any]) -> None:
        self._conn.execute("INSERT OR IGNORE INTO models VALUES (?, ?, ?, ?, ?, ?)",
                           (model_id, path, sha256, kind, _canonical(meta), utc_now()))

    def models(self) -> dict[str, ModelRecord]:
        rows = self._read("SELECT model_id, path, sha256, kind, meta_json FROM models")
        return {r[0]: ModelRecord(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows}

    def begin_scan(self, detector_facts: dict[str, Any], settings: dict[str, Any],
                   sources: Sequence[str], recursive: bool, n_files: int | None = None,
                   plan: ResumePlan | None = None) -> int:
        """Record a scan (model, settings, sources) and its start in the audit log.

        ``detector_facts``: ``model_id``, ``path``, ``sha256``, ``kind``, ``meta`` of the
        checkpoint (see :func:`detector_facts`).
        """
        model_id = detector_facts["model_id"]
        with self._write("record the scan") as conn:
            self._register_model(model_id, detector_facts.get("path", ""),
                                 detector_facts.get("sha256", ""),
                                 detector_facts.get("kind", ""), detector_facts.get("meta", {}))
            cur = conn.execute(
                "INSERT INTO scans (started_utc, status, model_id, settings_json, sources_json, "
                "recursive, n_files) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (utc_now(), SCAN_RUNNING, model_id, _canonical(settings),
                 _canonical([str(s) for s in sources]), int(recursive), n_files))
            scan_id = int(cur.lastrowid)
            params: dict[str, Any] = {
                "scan_id": scan_id, "model_id": model_id,
                "model_sha256": detector_facts.get("sha256", ""),
                "model_path": detector_facts.get("path", ""), "settings": settings,
                "sources": [str(s) for s in sources], "recursive": recursive,
                "n_files": n_files,
            }
            if plan is not None:
                params.update(n_to_score=len(plan.todo), n_skipped=len(plan.skipped),
                              n_changed=len(plan.changed), n_moved=len(plan.moved))
            self._append_audit(ACTION_SCAN_STARTED, params)
            if plan is not None:
                for path, old in plan.changed.items():
                    self._append_audit(ACTION_EVIDENCE_CHANGED, {
                        "path": path, "previous_sha256": old, "model_id": model_id,
                        "scan_id": scan_id})
                for new, old in plan.moved.items():
                    self._append_audit(ACTION_EVIDENCE_MOVED, {
                        "path": new, "scored_as": old, "model_id": model_id,
                        "scan_id": scan_id})
                    self._note_evidence_path(new, old)
        return scan_id

    def finish_scan(self, scan_id: int, status: str = SCAN_FINISHED,
                    message: str = "") -> None:
        """Close a scan (finished / cancelled / interrupted / failed) in the audit log."""
        if status not in _SCAN_END_ACTIONS:
            raise ValueError(f"unknown scan status {status!r}")
        with self._write("close the scan") as conn:
            row = conn.execute("SELECT n_done, status FROM scans WHERE scan_id = ?",
                               (scan_id,)).fetchone()
            if row is None or row[1] != SCAN_RUNNING:
                return
            conn.execute("UPDATE scans SET status = ?, finished_utc = ? WHERE scan_id = ?",
                         (status, utc_now(), scan_id))
            seq, head = self._head("results_head")
            params = {"scan_id": scan_id, "n_done": row[0], "results_head": f"{seq}:{head}"}
            if message:
                params["message"] = message
            self._append_audit(_SCAN_END_ACTIONS[status], params)

    def _mark_interrupted_scans(self) -> None:
        """Scans still 'running' when a writer opens the case died with their process."""
        running = self._read("SELECT scan_id FROM scans WHERE status = ?", (SCAN_RUNNING,))
        for (scan_id,) in running:
            self.finish_scan(scan_id, SCAN_INTERRUPTED,
                             "the process ended before the scan finished")

    def scans(self) -> list[ScanRecord]:
        rows = self._read("SELECT scan_id, started_utc, finished_utc, status, model_id, "
                          "settings_json, sources_json, recursive, n_files, n_done FROM scans "
                          "ORDER BY scan_id")
        return [ScanRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), json.loads(r[6]),
                           bool(r[7]), r[8], r[9]) for r in rows]

    def resumable_scans(self) -> list[ScanRecord]:
        """Interrupted or cancelled scans that left files unscored (latest first)."""
        out = [s for s in self.scans() if s.status in (SCAN_INTERRUPTED, SCAN_CANCELLED)
               and (s.n_files is None or s.n_done < s.n_files)]
        return out[::-1]

    # -- results
    def add_results(self, scan_id: int, results: Iterable[ScanResult]) -> int:
        """Store a batch of results in one transaction; return how many rows were new.

        A row already stored for the same (path, model id, SHA-256) is not stored twice.
        """
        results = list(results)
        if not results:
            return 0
        added = 0
        with self._write(f"store {len(results)} results") as conn:
            seq, prev = self._head("results_head")
            now = utc_now()
            for r in results:
                sha = r.sha256 or ""
                exists = conn.execute(
                    "SELECT 1 FROM results WHERE path = ? AND model_id = ? AND sha256 = ?",
                    (r.path, r.model_id, sha)).fetchone()
                if exists:
                    continue
                mtime_ns = _mtime_ns(r.path)
                record_json = _canonical(result_to_record(r))
                seq += 1
                digest = _result_hash(seq, scan_id, r.path, r.model_id, sha, mtime_ns,
                                      record_json, now, prev)
                conn.execute("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (seq, scan_id, r.path, r.model_id, sha, mtime_ns, record_json,
                              now, prev, digest))
                prev = digest
                added += 1
                if sha:
                    conn.execute(
                        "INSERT INTO evidence (path, sha256, bytes, mtime_ns, first_seen_utc, "
                        "last_seen_utc) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(path, sha256) "
                        "DO UPDATE SET last_seen_utc = excluded.last_seen_utc",
                        (r.path, sha, r.bytes, mtime_ns, now, now))
            self._set_info("results_head", f"{seq}:{prev}")
            conn.execute("UPDATE scans SET n_done = n_done + ? WHERE scan_id = ?",
                         (len(results), scan_id))
        return added

    def _note_evidence_path(self, new_path: str, old_path: str) -> None:
        row = self._conn.execute("SELECT sha256, bytes FROM evidence WHERE path = ? "
                                 "ORDER BY evidence_id DESC", (old_path,)).fetchone()
        if row is not None:
            now = utc_now()
            self._conn.execute(
                "INSERT OR IGNORE INTO evidence (path, sha256, bytes, mtime_ns, first_seen_utc, "
                "last_seen_utc) VALUES (?, ?, ?, ?, ?, ?)",
                (new_path, row[0], row[1], _mtime_ns(new_path), now, now))

    def results(self, model_id: str | None = None) -> list[ScanResult]:
        """Stored results in the order they were recorded, with case notes added."""
        return [r for _seq, _scan, r in self.result_rows(model_id)]

    def result_rows(self, model_id: str | None = None) -> list[tuple[int, int, ScanResult]]:
        """``(seq, scan_id, result)`` in recorded order; changed or moved evidence is noted."""
        sql = "SELECT seq, scan_id, path, model_id, sha256, record_json FROM results"
        args: tuple = ()
        if model_id is not None:
            sql, args = sql + " WHERE model_id = ?", (model_id,)
        rows = self._read(sql + " ORDER BY seq", args)
        by_path: dict[tuple[str, str], list[str]] = {}
        for _seq, _scan, path, mid, sha, _ in rows:
            by_path.setdefault((path, mid), []).append(sha)
        moved = self._moved_paths()
        out = []
        for i, (seq, scan_id, path, mid, sha, rec) in enumerate(rows):
            r = record_to_result(json.loads(rec))
            r.index = i
            shas = by_path[(path, mid)]
            if len(shas) > 1 and sha and shas.index(sha) > 0:
                r.notes.append(f"EVIDENCE CHANGED: an earlier scan of this path had SHA-256 "
                               f"{shas[shas.index(sha) - 1]}")
            elif len(shas) > 1 and sha:
                r.notes.append("superseded: the file at this path changed after this scan")
            for new in moved.get((path, sha), ()):
                r.notes.append(f"same bytes later found at {new} (moved or copied)")
            out.append((seq, scan_id, r))
        return out

    def _moved_paths(self) -> dict[tuple[str, str], list[str]]:
        rows = self._read("SELECT params_json FROM audit WHERE action = ?",
                          (ACTION_EVIDENCE_MOVED,))
        out: dict[tuple[str, str], list[str]] = {}
        by_path = {(r[0]): r[1] for r in self._read("SELECT path, sha256 FROM results")}
        for (params_json,) in rows:
            p = json.loads(params_json)
            old = p.get("scored_as", "")
            out.setdefault((old, by_path.get(old, "")), []).append(p.get("path", ""))
        return out

    def count_results(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM results")[0][0])

    # -- resume
    def plan_resume(self, files: Sequence[Path | str], model_id: str) -> ResumePlan:
        """Split ``files`` into what still needs scoring with ``model_id`` and what does not.

        A file is skipped when a row for its path and model exists and its size and SHA-256
        match that row now (mtime is a quick pre-check; the hash decides). Hashing reads only
        files that already have a row, and new files whose size equals that of a scored file
        whose path has gone (a moved file).
        """
        rows = self._read("SELECT path, sha256, record_json FROM results WHERE model_id = ?",
                          (model_id,))
        by_path: dict[str, list[tuple[str, int | None]]] = {}
        for path, sha, rec in rows:
            by_path.setdefault(path, []).append((sha, json.loads(rec).get("bytes")))
        gone: dict[tuple[int, str], str] = {}  # (bytes, sha) -> old path, for vanished files
        for path, entries in by_path.items():
            if not os.path.exists(path):
                for sha, n in entries:
                    if sha and n is not None:
                        gone[(int(n), sha)] = path
        gone_sizes = {n for n, _ in gone}
        plan = ResumePlan()
        for f in files:
            p = Path(f)
            key = str(p)
            entries = by_path.get(key)
            try:
                size = p.stat().st_size
            except OSError:
                size = None
            if entries:
                if size is None:
                    # Unreadable now; skip when it was unreadable before too.
                    if any(not sha for sha, _ in entries):
                        plan.skipped.append(p)
                    else:
                        plan.todo.append(p)
                    continue
                current = _hash_file(p)
                known = {sha for sha, _ in entries}
                if current is not None and current in known:
                    plan.skipped.append(p)
                else:
                    last = next((sha for sha, _ in reversed(entries) if sha), "")
                    if last and current is not None:
                        plan.changed[key] = last
                    plan.todo.append(p)
                continue
            if size is not None and size in gone_sizes:
                current = _hash_file(p)
                old = gone.get((size, current or ""))
                if old is not None:
                    plan.moved[key] = old
                    plan.skipped.append(p)
                    continue
            plan.todo.append(p)
        return plan

    # -- verification
    def verify(self) -> VerifyReport:
        """Recompute both hash chains; ``problems[0]`` names the first broken entry."""
        problems: list[str] = []
        audit = self._read("SELECT seq, time_utc, os_user, host, app_version, action, "
                           "params_json, prev_hash, entry_hash FROM audit ORDER BY seq")
        prev, expected = GENESIS_HASH, 1
        for seq, t, user, host, ver, action, params_json, prev_hash, entry_hash in audit:
            label = f"audit entry #{seq} ({action}, {t})"
            if seq != expected:
                gap = (f"#{expected}" if seq == expected + 1
                       else f"#{expected}-#{seq - 1}")
                problems.append(f"audit entry {gap} is missing (deleted): the log jumps from "
                                f"#{expected - 1} to #{seq}")
            elif prev_hash != prev:
                problems.append(f"{label}: its link to the previous entry does not match")
            if _audit_hash(seq, t, user, host, ver, action, params_json, prev_hash) != entry_hash:
                problems.append(f"{label}: content does not match its hash (edited)")
            prev, expected = entry_hash, seq + 1
        n_audit = len(audit)
        a_head = self.info("audit_head") or f"0:{GENESIS_HASH}"
        if a_head != f"{expected - 1}:{prev}":
            problems.append(f"audit log ends at #{expected - 1} but the case records its last "
                            f"entry as #{a_head.split(':')[0]} (entries removed from the end, "
                            "or the head was edited)")

        rows = self._read("SELECT seq, scan_id, path, model_id, sha256, mtime_ns, record_json, "
                          "recorded_utc, prev_hash, row_hash FROM results ORDER BY seq")
        prev, expected = GENESIS_HASH, 1
        hashes: dict[int, str] = {}
        for seq, scan_id, path, mid, sha, mtime, rec, t, prev_hash, row_hash in rows:
            label = f"result #{seq} ({Path(path).name}, {mid})"
            if seq != expected:
                problems.append(f"result #{expected} is missing (deleted): results jump from "
                                f"#{expected - 1} to #{seq}")
            elif prev_hash != prev:
                problems.append(f"{label}: its link to the previous result does not match")
            if _result_hash(seq, scan_id, path, mid, sha, mtime, rec, t, prev_hash) != row_hash:
                problems.append(f"{label}: content does not match its hash (edited)")
            else:
                try:
                    stored = json.loads(rec)
                except ValueError:
                    stored = {}
                if stored.get("path") != path or (stored.get("sha256") or "") != sha:
                    problems.append(f"{label}: record and key columns disagree")
            hashes[seq] = row_hash
            prev, expected = row_hash, seq + 1
        r_head = self.info("results_head") or f"0:{GENESIS_HASH}"
        if r_head != f"{expected - 1}:{prev}":
            problems.append(f"results end at #{expected - 1} but the case records the last one "
                            f"as #{r_head.split(':')[0]} (results removed from the end, or the "
                            "head was edited)")
        # Scan-end audit entries pin the results chain as it was at that moment.
        for seq, _t, _u, _h, _v, action, params_json, *_ in audit:
            if action not in _SCAN_END_ACTIONS.values():
                continue
            head = json.loads(params_json).get("results_head", "")
            if ":" not in head:
                continue
            n, digest = head.split(":", 1)
            if int(n) and hashes.get(int(n)) != digest:
                problems.append(f"audit entry #{seq} ({action}) pins result #{n}, which no "
                                "longer matches (results edited or removed)")
        return VerifyReport(not problems, n_audit, len(rows), problems,
                            a_head.split(":", 1)[-1], r_head.split(":", 1)[-1])


def _mtime_ns(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _hash_file(path: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def detector_facts(detector: Any) -> dict[str, Any]:
    """What a case records about the checkpoint a scan used (plain data only)."""
    ck = detector.checkpoint
    return {"model_id": ck.model_id, "path": str(ck.path), "sha256": ck.sha256, "kind": ck.kind,
            "meta": json.loads(_canonical(ck.meta)), "fake_index": ck.fake_index,
            "device": detector.device_description}


class CaseRecorder:
    """An ``on_result`` callable that stores results in the case once per batch.

    The scan loop calls it per file; rows are committed when ``batch_size`` have gathered or
    ``max_delay_s`` has passed, and by :meth:`flush` at the end. ``sinks`` (streamed CSV /
    JSONL reports) receive the same batches right after the commit.
    """

    def __init__(self, case: Case | None, scan_id: int | None, batch_size: int = 16,
                 sinks: Sequence[Callable[[list[ScanResult]], None]] = (),
                 max_delay_s: float = 2.0, clock: Callable[[], float] | None = None):
        import time

        self.case, self.scan_id = case, scan_id
        self.batch_size = max(1, batch_size)
        self.sinks = list(sinks)
        self.max_delay_s = max_delay_s
        self._clock = clock or time.monotonic
        self._buffer: list[ScanResult] = []
        self._last = self._clock()
        self.n_committed = 0

    def __call__(self, result: ScanResult) -> None:
        self._buffer.append(result)
        if (len(self._buffer) >= self.batch_size
                or self._clock() - self._last >= self.max_delay_s):
            self.flush()

    def flush(self) -> None:
        rows, self._buffer = self._buffer, []
        self._last = self._clock()
        if not rows:
            return
        try:
            if self.case is not None and self.scan_id is not None:
                self.case.add_results(self.scan_id, rows)
            self.n_committed += len(rows)
        finally:  # the reports get the rows even when the case could not store them
            for sink in self.sinks:
                sink(rows)
