"""A case: one folder, one SQLite database, everything a scan did and found.

The database (stdlib ``sqlite3``, WAL journal) holds the evidence list, every result as it
arrives (one transaction per batch), the model and settings of every scan, and an
append-only audit log. The hash chains, the facts they pin and verification live in
:mod:`forensics_app.core.case_chain`; :meth:`Case.verify` names the first entry that does
not match, and with an anchor file (written next to every report) also proves that nothing
was cut off the end.

Paths are stored absolute (folder resolved), and a name that is not valid UTF-8 is stored
as its exact bytes, so a case resumes from any working directory and any file name.

A case is created aside and renamed into place, so a kill during creation leaves either no
case or a whole one (an empty ``case.sqlite3`` left by an older version is finished on the
next open for writing).

One writer: a case opened for writing holds an exclusive lock on ``case.lock`` (released by
the operating system when the process dies, so ``kill -9`` never leaves a stale lock). Every
connection is shared under a lock, so a GUI thread and a scan thread can both use one
:class:`Case`. Readers (report, verify) open the database read-only, take no lock and need
no write access (on read-only media they read a private copy).
"""

from __future__ import annotations

import dataclasses
import errno
import getpass
import json
import os
import shutil
import socket
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forensics_app import __version__
from forensics_app.core.case_chain import (
    ACTION_CASE_CREATED,
    ACTION_CASE_UPGRADED,
    ACTION_CHECKPOINT_LOADED,
    ACTION_EVIDENCE_MOVED,
    ACTION_MODEL_RECORDED,
    ACTION_SCAN_CANCELLED,
    ACTION_SCAN_FAILED,
    ACTION_SCAN_FINISHED,
    ACTION_SCAN_INTERRUPTED,
    ACTION_SCAN_STARTED,
    GENESIS_HASH,
    SCAN_END_ACTIONS,
    VerifyReport,
    absolute_path,
    audit_hash,
    canonical,
    meta_digest,
    path_from_key,
    path_key,
    result_hash,
    verify_database,
)
from forensics_app.core.case_records import record_to_result, result_to_record
from forensics_app.core.case_resume import (
    ACTION_EVIDENCE_MISSING,
    ResumePlan,
    link_target,
    plan_resume,
)
from forensics_app.core.case_values import storable_int
from forensics_app.core.results import ScanResult, Verdict

__all__ = [
    "ACTION_CASE_CREATED", "ACTION_CASE_UPGRADED", "ACTION_CHECKPOINT_LOADED",
    "ACTION_EVIDENCE_MOVED", "ACTION_MODEL_RECORDED", "ACTION_SCAN_CANCELLED",
    "ACTION_SCAN_FAILED", "ACTION_SCAN_FINISHED", "ACTION_SCAN_INTERRUPTED",
    "ACTION_SCAN_STARTED", "ACTION_EVIDENCE_MISSING", "GENESIS_HASH", "ResumePlan",
    "VerifyReport", "record_to_result", "result_to_record",
]

CASE_DB_NAME = "case.sqlite3"
CASE_LOCK_NAME = "case.lock"
CASE_APP_TAG = "forensics-app-case"
SCHEMA_VERSION = 3
_CREATING_PREFIX = ".case-creating-"

# Actions the audit log records (free text is allowed too; these are the ones the app writes).
ACTION_CASE_OPENED = "case opened"
ACTION_THRESHOLD_CHANGED = "threshold changed"
ACTION_REPORT_EXPORTED = "report exported"
ACTION_REPORT_FAILED = "report failed"
ACTION_EVIDENCE_CHANGED = "evidence changed"
ACTION_EVIDENCE_LINK_CHANGED = "evidence link changed"

SCAN_RUNNING, SCAN_FINISHED, SCAN_CANCELLED = "running", "finished", "cancelled"
SCAN_INTERRUPTED, SCAN_FAILED = "interrupted", "failed"
_SCAN_END_ACTIONS = SCAN_END_ACTIONS

_canonical = canonical  # older name, used by callers outside this module


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


class RecordingError(CaseError):
    """A streamed report (CSV/JSONL) could not be written; the case's rows are safe."""


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


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return os.environ.get("USERNAME") or os.environ.get("USER") or "unknown"


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


def _migration_2(conn: sqlite3.Connection) -> None:
    """Schema 2: what a path was at scoring (a link and its target, '' for a regular file).

    Also new in schema 2, without DDL: path columns hold a BLOB of the exact bytes when a
    name is not valid UTF-8; audit entries pin every fact a report prints (see
    case_chain); a "case upgraded" entry pins the facts of a schema-1 case as found.
    """
    conn.execute("ALTER TABLE evidence ADD COLUMN link_target TEXT")


def _migration_3(conn: sqlite3.Connection) -> None:
    """Schema 3: the examiner's conclusions (core/review.py owns the table and its meaning)."""
    from forensics_app.core.review import REVIEWS_SCHEMA

    _run_script(conn, REVIEWS_SCHEMA)


# Migration n takes a database at schema n-1 to schema n. Add new ones at the end; never
# edit a released one.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_migration_1, _migration_2,
                                                                 _migration_3)
assert len(MIGRATIONS) == SCHEMA_VERSION


def is_case_folder(folder: Path | str) -> bool:
    return (Path(folder) / CASE_DB_NAME).is_file()


def _never_initialised(folder: Path) -> bool:
    """An empty ``case.sqlite3`` (a kill during creation by an older version)."""
    db = folder / CASE_DB_NAME
    try:
        if db.stat().st_size:
            return False
        wal = Path(f"{db}-wal")
        return not wal.exists() or wal.stat().st_size == 0
    except OSError:
        return False


def _creation_leftover(p: Path) -> bool:
    """Files a killed creation may leave in an otherwise empty folder."""
    if p.name == CASE_LOCK_NAME or p.name.startswith(_CREATING_PREFIX):
        return True
    if p.name in (CASE_DB_NAME, f"{CASE_DB_NAME}-wal", f"{CASE_DB_NAME}-shm",
                  f"{CASE_DB_NAME}-journal"):
        try:
            return p.is_file() and p.stat().st_size == 0
        except OSError:
            return False
    return False


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _storage_error(exc: Exception, folder: Path, what: str) -> CaseError:
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
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise CaseStorageError(f"cannot create {self.path}: {exc}") from exc
            raise CaseReadOnlyError(
                f"the case folder {self.path.parent} is read-only: it can be reported on and "
                "verified, not scanned into (copy it somewhere writable to continue)") from exc
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
                 read_only: bool, scratch: str | None = None):
        self.folder = folder
        self._conn = conn
        self._lock = lock
        self.read_only = read_only
        self._mutex = threading.RLock()
        self._scratch = scratch  # private copy read from read-only media

    # -- opening
    @classmethod
    def create(cls, folder: Path | str, name: str | None = None) -> Case:
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise NotACaseError(f"{folder} is a file, not a case folder")
        if is_case_folder(folder) and not _never_initialised(folder):
            raise CaseError(f"{folder} is already a case; open it instead")
        if folder.is_dir() and any(not _creation_leftover(p) for p in folder.iterdir()):
            raise NotACaseError(
                f"{folder} is not a case folder (it has no {CASE_DB_NAME}) and is not empty; "
                "choose an empty or new folder for a new case")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CaseReadOnlyError(f"cannot create the case folder {folder}: {exc}") from exc
        lock = _CaseLock(folder)
        lock.acquire()
        try:
            cls._build(folder, name or folder.name)
            return cls._open_writable(folder, lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _build(cls, folder: Path, name: str, finishing: bool = False) -> None:
        """Write a whole new case aside and rename it into place (the lock is held)."""
        for p in folder.glob(f"{_CREATING_PREFIX}*"):
            p.unlink(missing_ok=True)
        tmp = folder / f"{_CREATING_PREFIX}{uuid.uuid4().hex}"
        try:
            try:
                conn = sqlite3.connect(tmp, isolation_level=None)
            except sqlite3.Error as exc:
                raise _storage_error(exc, folder, "create the case") from exc
            try:
                cls._migrate(conn, folder)
                case = cls(folder, conn, None, read_only=False)
                case_id, created = str(uuid.uuid4()), utc_now()
                with case._write("create the case"):
                    case._set_info("case_id", case_id)
                    case._set_info("name", name)
                    case._set_info("created_utc", created)
                    params: dict[str, Any] = {"name": name, "folder": absolute_path(folder),
                                              "case_id": case_id, "created_utc": created}
                    if finishing:
                        params["note"] = ("an empty case file left by an interrupted creation "
                                          "was completed")
                    case._append_audit(ACTION_CASE_CREATED, params)
            finally:
                conn.close()
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            for suffix in ("-wal", "-shm", "-journal"):  # empty leftovers of an older kill
                Path(f"{folder / CASE_DB_NAME}{suffix}").unlink(missing_ok=True)
            os.replace(tmp, folder / CASE_DB_NAME)
            _fsync_folder(folder)
        except OSError as exc:
            raise CaseStorageError(f"cannot create the case in {folder}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def open(cls, folder: Path | str, read_only: bool = False) -> Case:
        folder = Path(folder)
        if not folder.is_dir():
            raise NotACaseError(f"{folder} does not exist or is not a folder")
        if not is_case_folder(folder):
            raise NotACaseError(f"{folder} is not a case folder (it has no {CASE_DB_NAME})")
        if read_only:
            if _never_initialised(folder):
                raise NotACaseError(
                    f"{folder / CASE_DB_NAME} is empty: its creation was interrupted. Open the "
                    "case for writing (or scan into it) to finish creating it.")
            return cls._open_read_only(folder)
        db = folder / CASE_DB_NAME
        if not os.access(db, os.W_OK):
            raise CaseReadOnlyError(
                f"the case database {db} is read-only: the case can be reported on and "
                "verified, not scanned into (copy it somewhere writable to continue)")
        lock = _CaseLock(folder)
        lock.acquire()
        try:
            if _never_initialised(folder):
                cls._build(folder, folder.name, finishing=True)
            case = cls._open_writable(folder, lock)
        except BaseException:
            lock.release()
            raise
        case._mark_interrupted_scans()
        return case

    @classmethod
    def open_or_create(cls, folder: Path | str, name: str | None = None) -> Case:
        folder = Path(folder)
        if is_case_folder(folder):
            return cls.open(folder)
        return cls.create(folder, name)

    @classmethod
    def _open_writable(cls, folder: Path, lock: _CaseLock) -> Case:
        """Open the (whole) database for writing; ``lock`` is held and released on failure
        by the caller."""
        db = folder / CASE_DB_NAME
        try:
            conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False,
                                   timeout=5.0)
            try:
                cls._check_is_case(conn, folder)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
                from_version = cls._migrate(conn, folder)
            except BaseException:
                conn.close()
                raise
        except sqlite3.Error as exc:
            raise _storage_error(exc, folder, "open the case") from exc
        case = cls(folder, conn, lock, read_only=False)
        if 0 < from_version < SCHEMA_VERSION:
            case._pin_upgrade(from_version)
        return case

    @classmethod
    def _open_read_only(cls, folder: Path) -> Case:
        db = (folder / CASE_DB_NAME).absolute()
        scratch = None
        try:
            try:
                conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True,
                                       isolation_level=None, check_same_thread=False,
                                       timeout=5.0)
                try:
                    cls._check_is_case(conn, folder)
                except BaseException:
                    conn.close()
                    raise
            except sqlite3.OperationalError:
                # Read-only media: SQLite cannot make the WAL's index there. Read a private
                # copy (database and WAL), so rows still in the WAL are not missed.
                scratch = tempfile.mkdtemp(prefix="forensics-case-")
                conn = cls._open_copy(folder, Path(scratch))
            version = cls._schema_version(conn)
            if version > SCHEMA_VERSION:
                conn.close()
                raise cls._newer(folder, version)
        except sqlite3.Error as exc:
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
            raise _storage_error(exc, folder, "read the case") from exc
        except BaseException:
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
            raise
        return cls(folder, conn, None, read_only=True, scratch=scratch)

    @classmethod
    def _open_copy(cls, folder: Path, scratch: Path) -> sqlite3.Connection:
        src = folder / CASE_DB_NAME
        try:
            shutil.copyfile(src, scratch / CASE_DB_NAME)
            wal = Path(f"{src}-wal")
            if wal.is_file():
                shutil.copyfile(wal, scratch / f"{CASE_DB_NAME}-wal")
        except OSError as exc:
            raise CaseStorageError(f"cannot read the case {folder}: {exc}") from exc
        conn = sqlite3.connect(scratch / CASE_DB_NAME, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA query_only=ON")
        cls._check_is_case(conn, folder)
        return conn

    @staticmethod
    def _check_is_case(conn: sqlite3.Connection, folder: Path) -> None:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
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
    def _migrate(cls, conn: sqlite3.Connection, folder: Path) -> int:
        """Bring the schema up to date; return the version found."""
        version = cls._schema_version(conn)
        if version > SCHEMA_VERSION:
            raise cls._newer(folder, version)
        if version == SCHEMA_VERSION:
            return version
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
        return version

    def _pin_upgrade(self, from_version: int) -> None:
        """Pin, in the audit log, the facts an older schema left unchained (as found now)."""
        before = self.verify()
        models = {m.model_id: {"path": m.path, "sha256": m.sha256, "kind": m.kind,
                               "meta_sha256": meta_digest(canonical(m.meta))}
                  for m in self.models().values()}
        scans = {str(s.scan_id): {
            "started_utc": s.started_utc, "finished_utc": s.finished_utc, "status": s.status,
            "model_id": s.model_id, "settings": s.settings, "sources": s.sources,
            "recursive": s.recursive, "n_files": s.n_files, "n_done": s.n_done}
            for s in self.scans()}
        info = {k: self.info(k) for k in ("name", "case_id", "created_utc")
                if self.info(k) is not None}
        self.audit(ACTION_CASE_UPGRADED, {
            "from_schema": from_version, "to_schema": SCHEMA_VERSION,
            "verified_before": "intact" if before.ok else f"BROKEN: {before.first_problem}",
            "snapshot": {"case_info": info, "models": models, "scans": scans}})

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
                self._scratch = None

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
            except (sqlite3.Error, OverflowError) as exc:  # OverflowError: an int over 64 bits
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
        params_json = canonical(params)
        digest = audit_hash(seq, t, user, host, __version__, action, params_json, prev)
        self._conn.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (seq, t, user, host, __version__, action, params_json, prev, digest))
        self._set_info("audit_head", f"{seq}:{digest}")
        return AuditEntry(seq, t, user, host, __version__, action, params, prev, digest)

    @contextmanager
    def audited(self, what: str) -> Iterator[tuple[sqlite3.Connection,
                                                   Callable[[str, dict[str, Any]], AuditEntry]]]:
        """One transaction for a change another core module stores (e.g. core.review) and
        the audit entries recording it: ``(connection, append_audit)``; both land or neither."""
        with self._write(what) as conn:
            yield conn, self._append_audit

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        """Rows of a read-only query (for core modules that own a table of the case)."""
        return self._read(sql, args)

    def audit(self, action: str, params: dict[str, Any] | None = None) -> AuditEntry:
        """Append one entry to the audit log (its own transaction)."""
        with self._write(f"record '{action}'"):
            return self._append_audit(action, params or {})

    def audit_entries(self) -> list[AuditEntry]:
        rows = self._read("SELECT * FROM audit ORDER BY seq")
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], _params(r[6]), r[7], r[8])
                for r in rows]

    # -- models and scans
    def register_model(self, model_id: str, path: str, sha256: str, kind: str,
                       meta: dict[str, Any]) -> None:
        """Record a checkpoint (first record wins); a new one is pinned in the audit log."""
        with self._write("record the model"):
            if self._register_model(model_id, path, sha256, kind, meta):
                self._append_audit(ACTION_MODEL_RECORDED, self._model_pin(model_id))

    def _register_model(self, model_id: str, path: str, sha256: str, kind: str,
                        meta: dict[str, Any]) -> bool:
        cur = self._conn.execute("INSERT OR IGNORE INTO models VALUES (?, ?, ?, ?, ?, ?)",
                                 (model_id, path, sha256, kind, canonical(meta), utc_now()))
        return cur.rowcount == 1

    def _model_pin(self, model_id: str) -> dict[str, Any]:
        path, sha, kind, meta_json = self._conn.execute(
            "SELECT path, sha256, kind, meta_json FROM models WHERE model_id = ?",
            (model_id,)).fetchone()
        return {"model_id": model_id, "path": path, "sha256": sha, "kind": kind,
                "meta_sha256": meta_digest(meta_json)}

    def models(self) -> dict[str, ModelRecord]:
        rows = self._read("SELECT model_id, path, sha256, kind, meta_json FROM models")
        return {r[0]: ModelRecord(r[0], r[1], r[2], r[3], _params(r[4])) for r in rows}

    def begin_scan(self, detector_facts: dict[str, Any], settings: dict[str, Any],
                   sources: Sequence[str], recursive: bool, n_files: int | None = None,
                   plan: ResumePlan | None = None) -> int:
        """Record a scan (model, settings, sources) and its start in the audit log.

        ``detector_facts``: ``model_id``, ``path``, ``sha256``, ``kind``, ``meta`` of the
        checkpoint (see :func:`detector_facts`). Sources are stored absolute (the evidence
        roots); what ``plan`` found changed, moved, missing or relinked is logged.
        """
        model_id = detector_facts["model_id"]
        roots = [absolute_path(s) for s in sources]
        with self._write("record the scan") as conn:
            self._register_model(model_id, detector_facts.get("path", ""),
                                 detector_facts.get("sha256", ""),
                                 detector_facts.get("kind", ""), detector_facts.get("meta", {}))
            model = self._model_pin(model_id)
            started = utc_now()
            cur = conn.execute(
                "INSERT INTO scans (started_utc, status, model_id, settings_json, sources_json, "
                "recursive, n_files) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (started, SCAN_RUNNING, model_id, canonical(settings), canonical(roots),
                 int(recursive), n_files))
            scan_id = int(cur.lastrowid)
            params: dict[str, Any] = {
                "scan_id": scan_id, "started_utc": started, "model_id": model_id,
                "model_sha256": model["sha256"], "model_path": model["path"],
                "model_kind": model["kind"], "model_meta_sha256": model["meta_sha256"],
                "settings": json.loads(canonical(settings)), "sources": roots,
                "recursive": recursive, "n_files": n_files, "cwd": os.getcwd(),
            }
            if plan is not None:
                params.update(n_to_score=len(plan.todo), n_skipped=len(plan.skipped),
                              n_changed=len(plan.changed), n_moved=len(plan.moved),
                              n_missing=len(plan.missing))
            self._append_audit(ACTION_SCAN_STARTED, params)
            if plan is not None:
                self._log_plan(plan, model_id, scan_id)
        return scan_id

    def _log_plan(self, plan: ResumePlan, model_id: str, scan_id: int) -> None:
        for path, old in plan.changed.items():
            self._append_audit(ACTION_EVIDENCE_CHANGED, {
                "path": path, "previous_sha256": old, "model_id": model_id, "scan_id": scan_id})
        for new, old in plan.moved.items():
            self._append_audit(ACTION_EVIDENCE_MOVED, {
                "path": new, "scored_as": old, "model_id": model_id, "scan_id": scan_id})
            self._note_evidence_path(new, old)
        for path, sha in plan.missing.items():
            self._append_audit(ACTION_EVIDENCE_MISSING, {
                "path": path, "sha256": sha, "model_id": model_id, "scan_id": scan_id})
        for path, (was, now) in plan.relinked.items():
            self._append_audit(ACTION_EVIDENCE_LINK_CHANGED, {
                "path": path, "was": was or "a regular file", "now": now or "a regular file",
                "scan_id": scan_id})
            self._conn.execute("UPDATE evidence SET link_target = ? WHERE path = ?",
                               (now, path_key(path)))

    def finish_scan(self, scan_id: int, status: str = SCAN_FINISHED,
                    message: str = "") -> None:
        """Close a scan (finished / cancelled / interrupted / failed) in the audit log.

        The entry pins the scan's outcome and both chains' counts at that moment.
        """
        if status not in _SCAN_END_ACTIONS:
            raise ValueError(f"unknown scan status {status!r}")
        with self._write("close the scan") as conn:
            row = conn.execute("SELECT n_done, status FROM scans WHERE scan_id = ?",
                               (scan_id,)).fetchone()
            if row is None or row[1] != SCAN_RUNNING:
                return
            finished = utc_now()
            conn.execute("UPDATE scans SET status = ?, finished_utc = ? WHERE scan_id = ?",
                         (status, finished, scan_id))
            seq, head = self._head("results_head")
            audit_seq, _ = self._head("audit_head")
            params = {"scan_id": scan_id, "n_done": row[0], "finished_utc": finished,
                      "results_head": f"{seq}:{head}", "n_results": seq,
                      "n_audit": audit_seq + 1}
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
        return [ScanRecord(r[0], r[1], r[2], r[3], r[4], _params(r[5]),
                           _json(r[6], []), bool(r[7]), r[8], r[9]) for r in rows]

    def resumable_scans(self) -> list[ScanRecord]:
        """Interrupted or cancelled scans that left files unscored (latest first)."""
        out = [s for s in self.scans() if s.status in (SCAN_INTERRUPTED, SCAN_CANCELLED)
               and (s.n_files is None or s.n_done < s.n_files)]
        return out[::-1]

    # -- results
    def add_results(self, scan_id: int, results: Iterable[ScanResult]) -> int:
        """Store a batch of results in one transaction; return how many rows were new.

        A row already stored for the same (path, model id, SHA-256) is not stored twice.
        Paths are stored absolute; a name that is not valid UTF-8 as its bytes.
        """
        results = list(results)
        if not results:
            return 0
        added = 0
        with self._write(f"store {len(results)} results") as conn:
            seq, prev = self._head("results_head")
            now = utc_now()
            for r in results:
                path = absolute_path(r.path)
                if path != r.path:
                    r = dataclasses.replace(r, path=path)
                key = path_key(path)
                sha = r.sha256 or ""
                exists = conn.execute(
                    "SELECT 1 FROM results WHERE path = ? AND model_id = ? AND sha256 = ?",
                    (key, r.model_id, sha)).fetchone()
                if exists:
                    continue
                mtime_ns = _mtime_ns(path)
                record_json = canonical(result_to_record(r))
                seq += 1
                digest = result_hash(seq, scan_id, path, r.model_id, sha, mtime_ns,
                                     record_json, now, prev)
                conn.execute("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (seq, scan_id, key, r.model_id, sha, mtime_ns, record_json,
                              now, prev, digest))
                prev = digest
                added += 1
                if sha:
                    conn.execute(
                        "INSERT INTO evidence (path, sha256, bytes, mtime_ns, first_seen_utc, "
                        "last_seen_utc, link_target) VALUES (?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT(path, sha256) DO UPDATE SET "
                        "last_seen_utc = excluded.last_seen_utc, "
                        "link_target = excluded.link_target",
                        (key, sha, storable_int(r.bytes), mtime_ns, now, now, link_target(path)))
            self._set_info("results_head", f"{seq}:{prev}")
            conn.execute("UPDATE scans SET n_done = n_done + ? WHERE scan_id = ?",
                         (added, scan_id))
        return added

    def _note_evidence_path(self, new_path: str, old_path: str) -> None:
        row = self._conn.execute("SELECT sha256, bytes FROM evidence WHERE path = ? "
                                 "ORDER BY evidence_id DESC", (path_key(old_path),)).fetchone()
        if row is not None:
            now = utc_now()
            self._conn.execute(
                "INSERT OR IGNORE INTO evidence (path, sha256, bytes, mtime_ns, first_seen_utc, "
                "last_seen_utc, link_target) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (path_key(new_path), row[0], row[1], _mtime_ns(new_path), now, now,
                 link_target(new_path)))

    def evidence_paths(self) -> list[str]:
        """Every file this case has read (scored or registered): the inputs a report written
        from this case must never land on (:func:`core.outputs.refuse_outputs_over_inputs`)."""
        keys = self._read("SELECT path FROM results UNION SELECT path FROM evidence")
        return [path_from_key(key) for (key,) in keys]

    def results(self, model_id: str | None = None) -> list[ScanResult]:
        """Stored results in the order they were recorded, with case notes added."""
        return [r for _seq, _scan, r in self.result_rows(model_id)]

    def result_rows(self, model_id: str | None = None) -> list[tuple[int, int, ScanResult]]:
        """``(seq, scan_id, result)`` in recorded order; changed or moved evidence is noted.

        A row whose file later changed at the same path is marked ``superseded``
        (:func:`is_superseded`); counts of files leave it out.
        """
        sql = "SELECT seq, scan_id, path, model_id, sha256, record_json FROM results"
        args: tuple = ()
        if model_id is not None:
            sql, args = sql + " WHERE model_id = ?", (model_id,)
        rows = [(seq, scan_id, path_from_key(key), mid, sha, rec)
                for seq, scan_id, key, mid, sha, rec in self._read(sql + " ORDER BY seq", args)]
        by_path: dict[tuple[str, str], list[str]] = {}
        for _seq, _scan, path, mid, sha, _ in rows:
            by_path.setdefault((path, mid), []).append(sha)
        moved = self._moved_paths()
        out = []
        for i, (seq, scan_id, path, mid, sha, rec) in enumerate(rows):
            try:
                r = record_to_result(json.loads(rec))
            except (TypeError, ValueError, KeyError) as exc:
                r = ScanResult(path=path, model_id=mid, sha256=sha, verdict=Verdict.ERROR,
                               error=f"stored record unreadable ({exc}); see --verify")
            r.index = i
            shas = by_path[(path, mid)]
            if len(shas) > 1 and sha and shas.index(sha) > 0:
                r.notes.append(f"EVIDENCE CHANGED: an earlier scan of this path had SHA-256 "
                               f"{shas[shas.index(sha) - 1]}")
            if len(shas) > 1 and sha and shas.index(sha) < len(shas) - 1:
                r.notes.append(SUPERSEDED_NOTE)
            for new in moved.get((path, sha), ()):
                r.notes.append(f"same bytes later found at {new} (moved or copied)")
            out.append((seq, scan_id, r))
        return out

    def _moved_paths(self) -> dict[tuple[str, str], list[str]]:
        rows = self._read("SELECT params_json FROM audit WHERE action = ?",
                          (ACTION_EVIDENCE_MOVED,))
        out: dict[tuple[str, str], list[str]] = {}
        by_path = {path_from_key(r[0]): r[1]
                   for r in self._read("SELECT path, sha256 FROM results")}
        for (params_json,) in rows:
            p = _params(params_json)
            old = p.get("scored_as", "")
            news = out.setdefault((old, by_path.get(old, "")), [])
            if p.get("path", "") not in news:
                news.append(p.get("path", ""))
        return out

    def count_results(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM results")[0][0])

    # -- resume
    def plan_resume(self, files: Sequence[Path | str], model_id: str,
                    sources: Sequence[Path | str] = (),
                    not_read: Collection[str] = (), root: Path | None = None) -> ResumePlan:
        """What a scan of ``files`` with ``model_id`` still has to do (see
        :func:`case_resume.plan_resume`; ``root``: no file outside it is read)."""
        return plan_resume(self, files, model_id, sources, not_read, root)

    # -- verification
    def verify(self, anchor: dict[str, Any] | None = None,
               anchor_name: str | None = None) -> VerifyReport:
        """Recompute both hash chains and every pinned fact (see :mod:`case_chain`);
        ``problems[0]`` names the first broken entry. Never raises for a damaged case."""
        with self._mutex:
            if self._conn is None:
                raise CaseError(f"the case {self.folder} is closed")
            report = verify_database(self._conn, anchor, anchor_name)
            from forensics_app.core.review import review_problems  # the examiner's own table

            extra = review_problems(self)
            if extra:
                report.problems.extend(extra)
                report.ok = False
            return report


SUPERSEDED_NOTE = "superseded: the file at this path changed after this scan"


def is_superseded(r: ScanResult) -> bool:
    """A row kept for the record whose file has since changed (a later row replaces it)."""
    return SUPERSEDED_NOTE in r.notes


def _params(text: str) -> dict[str, Any]:
    value = _json(text, {})
    return value if isinstance(value, dict) else {}


def _json(text: str, default: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def _mtime_ns(path: str) -> int | str | None:
    """The file's mtime as the case stores it (:mod:`core.case_values`: any year fits)."""
    try:
        return storable_int(os.stat(path).st_mtime_ns)
    except OSError:
        return None


def detector_facts(detector: Any) -> dict[str, Any]:
    """What a case records about the checkpoint a scan used (plain data only)."""
    ck = detector.checkpoint
    return {"model_id": ck.model_id, "path": str(ck.path), "sha256": ck.sha256, "kind": ck.kind,
            "meta": json.loads(canonical(ck.meta)), "fake_index": ck.fake_index,
            "device": detector.device_description}


from forensics_app.core.case_recorder import CaseRecorder  # noqa: E402  (re-exported)

__all__ += ["CaseRecorder"]
