"""Persistent state of the factory: one SQLite database (WAL) plus file and model directories.

Every request reads from SQLite, so several service processes (a restarted kernel, a second
``serve``) pointing at the same data directory see the same files, jobs and models. Status
changes are compare-and-set (:meth:`Store.transition`), which makes races between a cancel and
the worker harmless; which moves are allowed is decided in :mod:`.job_states`. Reads return typed,
immutable rows (:class:`FileRow`, :class:`JobRow`, :class:`ModelRow`, ...).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .disk import is_disk_full
from .job_states import IN_TRAINING, check_transition
from .launcher import pid_alive

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY, filename TEXT NOT NULL, bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL, purpose TEXT, sample_type TEXT NOT NULL, source TEXT NOT NULL,
    num_lines INTEGER, mimetype TEXT, visibility TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, model TEXT NOT NULL, status TEXT NOT NULL,
    auto_start INTEGER NOT NULL, started INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL, modified_at INTEGER NOT NULL,
    training_files TEXT NOT NULL, validation_files TEXT, hyperparameters TEXT NOT NULL,
    suffix TEXT, integrations TEXT, classifier_targets TEXT NOT NULL, requested_targets TEXT,
    metadata TEXT NOT NULL, fine_tuned_model TEXT, trained_tokens INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, name TEXT NOT NULL,
    created_at INTEGER NOT NULL, data TEXT
);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id);
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, step_number INTEGER NOT NULL,
    created_at INTEGER NOT NULL, metrics TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoints_job ON checkpoints (job_id);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY, job_id TEXT NOT NULL, root TEXT NOT NULL, created INTEGER NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0, classifier_targets TEXT NOT NULL, path TEXT NOT NULL
);
"""

_JSON_COLUMNS = {
    "training_files",
    "validation_files",
    "hyperparameters",
    "integrations",
    "classifier_targets",
    "requested_targets",
    "metadata",
    "data",
    "metrics",
}


@dataclass(frozen=True)
class FileRow:
    id: str
    filename: str
    bytes: int
    created_at: int
    purpose: str | None
    sample_type: str
    source: str
    num_lines: int | None
    mimetype: str | None
    visibility: str | None


@dataclass(frozen=True)
class JobRow:
    id: str
    model: str
    status: str
    auto_start: bool
    started: bool  # True once the job was queued for training (start or auto_start)
    created_at: int
    modified_at: int
    training_files: list[str]
    validation_files: list[str] | None
    hyperparameters: dict[str, Any]
    suffix: str | None
    integrations: list[dict[str, Any]] | None
    classifier_targets: list[dict[str, Any]]
    requested_targets: list[dict[str, Any]] | None
    metadata: dict[str, Any]
    fine_tuned_model: str | None
    trained_tokens: int | None


@dataclass(frozen=True)
class ModelRow:
    id: str
    job_id: str
    root: str
    created: int
    archived: bool
    classifier_targets: list[dict[str, Any]]
    path: str  # relative to the data directory


@dataclass(frozen=True)
class EventRow:
    name: str
    created_at: int
    data: dict[str, Any] | None


@dataclass(frozen=True)
class CheckpointRow:
    metrics: dict[str, float]
    step_number: int
    created_at: int


def _owner_only(path: Path, mode: int) -> None:
    """chmod ``path`` to ``mode`` if this user owns it (a shared folder is left alone)."""
    try:
        if path.stat().st_uid == os.getuid():
            path.chmod(mode)
    except OSError:
        pass


_BOOL_COLUMNS = {"auto_start", "started", "archived"}


def now() -> int:
    return int(time.time())


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in out.keys() & _JSON_COLUMNS:
        if out[key] is not None:
            out[key] = json.loads(out[key])
    for key in out.keys() & _BOOL_COLUMNS:
        out[key] = bool(out[key])
    return out


def _encode(record: dict[str, Any]) -> tuple[str, str, tuple]:
    """Column list, placeholders and values (JSON columns serialised) for an INSERT."""
    columns = ", ".join(record)
    marks = ", ".join("?" for _ in record)
    return columns, marks, tuple(_dumps(v) if k in _JSON_COLUMNS else v for k, v in record.items())


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, allow_nan=False)


class StateError(Exception):
    """The data directory's state cannot be trusted; the message says what and how to recover."""


def _full_at_start(data_dir: Path, exc: BaseException) -> str:
    free = shutil.disk_usage(data_dir).free if data_dir.exists() else 0
    return (
        f"the device holding {data_dir} is full ({free / 2**20:.1f} MiB free; {exc}). The "
        "service's state is not damaged: free some space on that device (or point --data-dir "
        "at another one) and start again."
    )


DB_NAME = "factory.sqlite3"
GENERATION_FILE = "state.gen"  # the last write count a service committed (see Store.check)


class Store:
    """Thread-safe access to ``factory.sqlite3`` (one connection, serialised by a lock).

    Every transaction also counts itself in ``meta.generation`` and records the count in
    ``state.gen`` next to the database. At start-up a database that holds fewer writes than
    that file (a deleted or damaged ``-wal`` file rolls it back) is refused, as is a missing
    or unreadable database in a directory that was used: never a silently empty service.
    """

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.files_dir = self.data_dir / "files"
        self.models_dir = self.data_dir / "models"
        self.db_path = self.data_dir / DB_NAME
        self._generation_path = self.data_dir / GENERATION_FILE
        for d in (self.data_dir, self.files_dir, self.models_dir):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            _owner_only(d, 0o700)
        self._recorded_at_start = recorded = self._recorded_generation()
        if not self.db_path.exists() and (recorded or self._has_content()):
            raise StateError(
                f"{self.db_path} is missing, but this data directory was used (it holds "
                "uploaded files or models). Restore the database file (and its -wal file) "
                f"from a backup, or move {self.data_dir} aside to start with an empty service."
            )
        try:
            os.close(os.open(self.db_path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as exc:
            if is_disk_full(exc):
                raise StateError(_full_at_start(self.data_dir, exc)) from None
            raise
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(
                self.db_path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            verdict = self._db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise sqlite3.DatabaseError(verdict)
            self._db.executescript(_SCHEMA)
            # autocommit, not transaction(): setting up does not count as a write
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('workspace', ?)",
                (secrets.token_hex(4),),
            )
            self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', 0)")
        except sqlite3.DatabaseError as exc:
            if is_disk_full(exc):
                raise StateError(_full_at_start(self.data_dir, exc)) from None
            raise StateError(
                f"{self.db_path} cannot be read as a SQLite database ({exc}). Restore it (and "
                f"its -wal file) from a backup, or move {self.data_dir} aside to start with an "
                "empty service; uploaded files and models in it are kept."
            ) from None
        for path in self.data_dir.glob(f"{DB_NAME}*"):
            _owner_only(path, 0o600)
        self.workspace_id = self._one_row("SELECT value FROM meta WHERE key='workspace'")["value"]

    def _recorded_generation(self) -> int:
        try:
            return int(self._generation_path.read_text(encoding="ascii").strip() or 0)
        except (OSError, ValueError):
            return 0

    def _has_content(self) -> bool:
        return any(p.name[0] != "." for p in self.files_dir.iterdir()) or any(
            p.name[0] != "." for p in self.models_dir.iterdir()
        )

    def generation(self) -> int:
        return int(self._one_row("SELECT value FROM meta WHERE key='generation'")["value"])

    def check(self) -> list[str]:
        """Compare the database with what is on disk; warnings, or StateError to refuse.

        Refused: a database behind ``state.gen`` (its write-ahead log was lost), or one with no
        job and no file at all while model folders or uploaded files exist. Warned about (the
        service starts): a used database without ``state.gen`` (a copy that left it and the
        write-ahead log behind cannot be checked), models whose folder is missing (they answer
        410) and model folders no job produced.
        """
        recorded, current = self._recorded_at_start, self.generation()
        if recorded > current:
            raise StateError(
                f"{self.db_path} is behind: it holds {current} writes but the service had "
                f"committed {recorded}. Its write-ahead log ({DB_NAME}-wal) was probably "
                "deleted or damaged, so recent files, jobs or models are missing from it. "
                f"Restore {DB_NAME} and {DB_NAME}-wal from a backup; to accept the loss and "
                f"start with what the database holds, delete {self._generation_path}."
            )
        jobs = self._one_row("SELECT count(*) AS n FROM jobs")["n"]
        files = self._one_row("SELECT count(*) AS n FROM files")["n"]
        if jobs == 0 and files == 0 and self._has_content():
            raise StateError(
                f"{self.db_path} has no files and no jobs, but {self.files_dir} or "
                f"{self.models_dir} hold data: the database was emptied or replaced. Restore "
                f"it from a backup, or move {self.data_dir} aside to start with an empty "
                "service."
            )
        warnings = []
        if current and not self._generation_path.exists():
            warnings.append(
                f"{self._generation_path} is missing although {self.db_path} records {current} "
                "writes, so nothing can tell whether the database lost recent writes: a folder "
                f"copied while a service ran needs {DB_NAME}-wal and {GENERATION_FILE} copied "
                "with it (a clean stop folds the log into the database first). Starting with "
                "what the database holds"
            )
        models = self.list_models()
        for model in models:
            if not self.model_dir(model).is_dir():
                warnings.append(
                    f"model {model.id}: its folder {self.model_dir(model)} is "
                    "missing (it answers 410 until deleted)"
                )
        known = {self.model_dir(m).name for m in models}
        known |= {j.id for j in self.jobs_with_status(IN_TRAINING)}
        for folder in sorted(self.models_dir.iterdir()):
            if folder.name[0] != "." and folder.name not in known:
                warnings.append(
                    f"{folder} belongs to no model in the database (delete it, or "
                    "restore the database it came with)"
                )
        return warnings

    def close(self) -> None:
        """Fold the write-ahead log into the database file (a clean stop needs no -wal)."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self._db.close()

    def partial_path(self, file_id: str) -> Path:
        """Where an upload is written until complete; the PID lets a restart clean it."""
        return self.files_dir / f".{os.getpid()}-{file_id}.part"

    def remove_stale_partials(self) -> list[Path]:
        """Delete partial uploads whose process is gone (killed mid-upload)."""
        removed = []
        for path in self.files_dir.glob(".*.part"):
            pid = path.name[1:].split("-", 1)[0]
            if not pid.isdigit() or not pid_alive(int(pid)):
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    # -- low level ---------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: committed on success, rolled back on any exception."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                generation = self._db.execute(
                    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 "
                    "WHERE key='generation' RETURNING value"
                ).fetchone()
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            if generation is not None:
                try:  # no fsync: a stale count only weakens the start-up check
                    self._generation_path.write_text(f"{generation[0]}\n", encoding="ascii")
                except OSError:
                    pass

    def _one(self, sql: str, params: Iterable = ()) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(sql, tuple(params)).fetchone()
        return None if row is None else _decode(row)

    def _one_row(self, sql: str, params: Iterable = ()) -> dict[str, Any]:
        """:meth:`_one` for a query that always yields a row (a count, a seeded meta key)."""
        row = self._one(sql, params)
        assert row is not None
        return row

    def _all(self, sql: str, params: Iterable = ()) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(sql, tuple(params)).fetchall()
        return [_decode(r) for r in rows]

    # -- files -------------------------------------------------------------------------------

    def file_path(self, file_id: str) -> Path:
        return self.files_dir / file_id

    def add_file(self, record: dict[str, Any]) -> FileRow:
        columns, marks, values = _encode(record)
        with self.transaction() as db:
            db.execute(f"INSERT INTO files ({columns}) VALUES ({marks})", values)
        row = self.get_file(record["id"])
        assert row is not None
        return row

    def get_file(self, file_id: str) -> FileRow | None:
        row = self._one("SELECT * FROM files WHERE id=?", (file_id,))
        return None if row is None else FileRow(**row)

    def list_files(
        self, page: int, page_size: int, purpose: str | None, search: str | None
    ) -> tuple[list[FileRow], int]:
        where, params = ["1=1"], []
        if purpose:
            where.append("purpose=?")
            params.append(purpose)
        if search:
            where.append("instr(lower(filename), lower(?)) > 0")
            params.append(search)
        rows, total = self._page("files", where, params, page, page_size)
        return [FileRow(**r) for r in rows], total

    def _page(
        self, table: str, where: list[str], params: list, page: int, page_size: int
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of ``table`` rows matching ``where``, newest first, and the total count."""
        clause = " AND ".join(where)
        total = self._one_row(f"SELECT count(*) AS n FROM {table} WHERE {clause}", params)["n"]
        rows = self._all(
            f"SELECT * FROM {table} WHERE {clause} ORDER BY created_at DESC, rowid DESC "
            "LIMIT ? OFFSET ?",
            [*params, page_size, page * page_size],
        )
        return rows, total

    def delete_file(self, file_id: str) -> bool:
        with self.transaction() as db:
            deleted = db.execute("DELETE FROM files WHERE id=?", (file_id,)).rowcount == 1
        self.file_path(file_id).unlink(missing_ok=True)
        return deleted

    # -- jobs --------------------------------------------------------------------------------

    def create_job(self, record: dict[str, Any]) -> JobRow:
        job_id = str(uuid.uuid4())
        t = now()
        row = {
            "id": job_id,
            "status": "QUEUED",
            "started": 0,
            "created_at": t,
            "modified_at": t,
            "classifier_targets": [],
            **record,
        }
        columns, marks, values = _encode(row)
        with self.transaction() as db:
            db.execute(f"INSERT INTO jobs ({columns}) VALUES ({marks})", values)
            db.execute(*self._event_sql(job_id, {"status": "QUEUED"}, t))
        job = self.get_job(job_id)
        assert job is not None
        return job

    def get_job(self, job_id: str) -> JobRow | None:
        row = self._one("SELECT * FROM jobs WHERE id=?", (job_id,))
        return None if row is None else JobRow(**row)

    def list_jobs(
        self,
        page: int,
        page_size: int,
        status: str | None,
        model: str | None,
        created_after: int | None,
        created_before: int | None,
        suffix: str | None,
    ) -> tuple[list[JobRow], int]:
        where = ["1=1"]
        params: list[str | int] = []
        for column, value in (("status", status), ("model", model), ("suffix", suffix)):
            if value:
                where.append(f"{column}=?")
                params.append(value)
        if created_after is not None:
            where.append("created_at>=?")
            params.append(created_after)
        if created_before is not None:
            where.append("created_at<=?")
            params.append(created_before)
        rows, total = self._page("jobs", where, params, page, page_size)
        return [JobRow(**r) for r in rows], total

    def jobs_with_status(
        self, statuses: Iterable[str], started: bool | None = None
    ) -> list[JobRow]:
        statuses = list(statuses)
        sql = f"SELECT * FROM jobs WHERE status IN ({','.join('?' * len(statuses))})"
        params: list = list(statuses)
        if started is not None:
            sql += " AND started=?"
            params.append(int(started))
        rows = self._all(sql + " ORDER BY modified_at, created_at, rowid", params)
        return [JobRow(**r) for r in rows]

    def events(self, job_id: str) -> list[EventRow]:
        rows = self._all(
            "SELECT name, created_at, data FROM events WHERE job_id=? ORDER BY id", (job_id,)
        )
        return [EventRow(**r) for r in rows]

    def checkpoints(self, job_id: str) -> list[CheckpointRow]:
        rows = self._all(
            "SELECT metrics, step_number, created_at FROM checkpoints WHERE job_id=? "
            "ORDER BY step_number DESC, id DESC",
            (job_id,),
        )
        return [CheckpointRow(**r) for r in rows]

    @staticmethod
    def _event_sql(job_id: str, data: dict, t: int) -> tuple[str, tuple]:
        return (
            "INSERT INTO events (job_id, name, created_at, data) "
            "VALUES (?, 'status-updated', ?, ?)",
            (job_id, t, json.dumps(data)),
        )

    def transition(
        self,
        job_id: str,
        from_statuses: Iterable[str],
        to_status: str,
        *,
        event: dict | None = None,
        extra_statements: list[tuple[str, tuple]] | None = None,
        **fields: Any,
    ) -> bool:
        """Move a job to ``to_status`` only if it is in one of ``from_statuses``.

        Writes the status-updated event (``{"status": ..., **event}``), ``fields`` and
        ``extra_statements`` in the same transaction. Returns False when the job was elsewhere.
        Moves the life cycle does not allow (:data:`.job_states.TRANSITIONS`) raise ValueError.
        """
        from_statuses = list(from_statuses)
        check_transition(from_statuses, to_status)
        t = now()
        fields = {"status": to_status, "modified_at": t, **fields}
        sets = ", ".join(f"{k}=?" for k in fields)
        values = tuple(_dumps(v) if k in _JSON_COLUMNS else v for k, v in fields.items())
        marks = ",".join("?" * len(from_statuses))
        with self.transaction() as db:
            updated = db.execute(
                f"UPDATE jobs SET {sets} WHERE id=? AND status IN ({marks})",
                (*values, job_id, *from_statuses),
            ).rowcount
            if updated != 1:
                return False  # nothing written: the commit is empty
            db.execute(*self._event_sql(job_id, {"status": to_status, **(event or {})}, t))
            for sql, params in extra_statements or []:
                db.execute(sql, params)
        return True

    def add_checkpoint(self, job_id: str, step: int, metrics: dict) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO checkpoints (job_id, step_number, created_at, metrics) "
                "VALUES (?,?,?,?)",
                (job_id, step, now(), json.dumps(metrics)),
            )

    # -- models ------------------------------------------------------------------------------

    @staticmethod
    def model_insert_sql(record: dict[str, Any]) -> tuple[str, tuple]:
        columns, marks, values = _encode(record)
        return f"INSERT INTO models ({columns}) VALUES ({marks})", values

    def get_model(self, model_id: str) -> ModelRow | None:
        row = self._one("SELECT * FROM models WHERE id=?", (model_id,))
        return None if row is None else ModelRow(**row)

    def list_models(self) -> list[ModelRow]:
        return [ModelRow(**r) for r in self._all("SELECT * FROM models ORDER BY created, rowid")]

    def model_dir(self, model: ModelRow) -> Path:
        return self.data_dir / model.path

    def delete_model(self, model_id: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM models WHERE id=?", (model_id,)).rowcount == 1
