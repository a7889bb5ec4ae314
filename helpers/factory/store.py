"""Persistent state of the factory: one SQLite database (WAL) plus file and model directories.

Every request reads from SQLite, so several service processes (a restarted kernel, a second
``serve``) pointing at the same data directory see the same files, jobs and models. Status
changes are compare-and-set (:meth:`Store.transition`), which makes races between a cancel and
the worker harmless.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

TERMINAL = frozenset({"SUCCESS", "FAILED", "FAILED_VALIDATION", "CANCELLED"})

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
    "training_files", "validation_files", "hyperparameters", "integrations",
    "classifier_targets", "requested_targets", "metadata", "data", "metrics",
}


def now() -> int:
    return int(time.time())


def _row(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    out = dict(row)
    for key in _JSON_COLUMNS & out.keys():
        if out[key] is not None:
            out[key] = json.loads(out[key])
    return out


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


class Store:
    """Thread-safe access to ``factory.sqlite3`` (one connection, serialised by a lock)."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.files_dir = self.data_dir / "files"
        self.models_dir = self.data_dir / "models"
        for d in (self.data_dir, self.files_dir, self.models_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.data_dir / "factory.sqlite3", check_same_thread=False, isolation_level=None,
            timeout=30,
        )
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('workspace', ?)",
                (secrets.token_hex(4),),
            )
        self.workspace_id = self._one("SELECT value FROM meta WHERE key='workspace'")["value"]

    # -- low level ---------------------------------------------------------------------------

    def _one(self, sql: str, params: Iterable = ()) -> dict | None:
        with self._lock:
            return _row(self._db.execute(sql, tuple(params)).fetchone())

    def _all(self, sql: str, params: Iterable = ()) -> list[dict]:
        with self._lock:
            return [_row(r) for r in self._db.execute(sql, tuple(params)).fetchall()]

    def _write(self, statements: list[tuple[str, tuple]]) -> list[int]:
        """Run statements in one IMMEDIATE transaction; return their row counts."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                counts = [self._db.execute(sql, params).rowcount for sql, params in statements]
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return counts

    # -- files -------------------------------------------------------------------------------

    def file_path(self, file_id: str) -> Path:
        return self.files_dir / file_id

    def add_file(self, record: dict) -> dict:
        columns = ", ".join(record)
        marks = ", ".join("?" for _ in record)
        self._write([(f"INSERT INTO files ({columns}) VALUES ({marks})", tuple(record.values()))])
        return self.get_file(record["id"])

    def get_file(self, file_id: str) -> dict | None:
        return self._one("SELECT * FROM files WHERE id=?", (file_id,))

    def list_files(self, page: int, page_size: int, purpose: str | None, search: str | None):
        where, params = ["1=1"], []
        if purpose:
            where.append("purpose=?")
            params.append(purpose)
        if search:
            where.append("instr(lower(filename), lower(?)) > 0")
            params.append(search)
        return self._page("files", where, params, page, page_size)

    def _page(self, table: str, where: list[str], params: list, page: int, page_size: int):
        """One page of ``table`` rows matching ``where``, newest first, and the total count."""
        clause = " AND ".join(where)
        total = self._one(f"SELECT count(*) AS n FROM {table} WHERE {clause}", params)["n"]
        rows = self._all(
            f"SELECT * FROM {table} WHERE {clause} ORDER BY created_at DESC, rowid DESC "
            "LIMIT ? OFFSET ?",
            [*params, page_size, page * page_size],
        )
        return rows, total

    def delete_file(self, file_id: str) -> bool:
        deleted = self._write([("DELETE FROM files WHERE id=?", (file_id,))])[0] == 1
        self.file_path(file_id).unlink(missing_ok=True)
        return deleted

    # -- jobs --------------------------------------------------------------------------------

    def create_job(self, record: dict) -> dict:
        job_id = str(uuid.uuid4())
        t = now()
        row = {
            "id": job_id, "status": "QUEUED", "started": 0, "created_at": t, "modified_at": t,
            "classifier_targets": [], **record,
        }
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        values = tuple(_dumps(v) if k in _JSON_COLUMNS else v for k, v in row.items())
        self._write([
            (f"INSERT INTO jobs ({columns}) VALUES ({marks})", values),
            self._event_sql(job_id, {"status": "QUEUED"}, t),
        ])
        return self.get_job(job_id)

    def get_job(self, job_id: str) -> dict | None:
        return self._one("SELECT * FROM jobs WHERE id=?", (job_id,))

    def list_jobs(self, page: int, page_size: int, status: str | None, model: str | None,
                  created_after: int | None, created_before: int | None, suffix: str | None):
        where, params = ["1=1"], []
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
        return self._page("jobs", where, params, page, page_size)

    def jobs_with_status(self, statuses: Iterable[str], started: bool | None = None) -> list[dict]:
        statuses = list(statuses)
        sql = f"SELECT * FROM jobs WHERE status IN ({','.join('?' * len(statuses))})"
        params: list = list(statuses)
        if started is not None:
            sql += " AND started=?"
            params.append(int(started))
        return self._all(sql + " ORDER BY modified_at, created_at, rowid", params)

    def events(self, job_id: str) -> list[dict]:
        return self._all(
            "SELECT name, created_at, data FROM events WHERE job_id=? ORDER BY id", (job_id,)
        )

    def checkpoints(self, job_id: str) -> list[dict]:
        return self._all(
            "SELECT metrics, step_number, created_at FROM checkpoints WHERE job_id=? "
            "ORDER BY step_number DESC, id DESC",
            (job_id,),
        )

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
        """
        t = now()
        from_statuses = list(from_statuses)
        fields = {"status": to_status, "modified_at": t, **fields}
        sets = ", ".join(f"{k}=?" for k in fields)
        values = tuple(_dumps(v) if k in _JSON_COLUMNS else v for k, v in fields.items())
        marks = ",".join("?" * len(from_statuses))
        statements = [(
            f"UPDATE jobs SET {sets} WHERE id=? AND status IN ({marks})",
            (*values, job_id, *from_statuses),
        )]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if self._db.execute(*statements[0]).rowcount != 1:
                    self._db.execute("ROLLBACK")
                    return False
                data = {"status": to_status, **(event or {})}
                self._db.execute(*self._event_sql(job_id, data, t))
                for sql, params in extra_statements or []:
                    self._db.execute(sql, params)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return True

    def add_checkpoint(self, job_id: str, step: int, metrics: dict) -> None:
        self._write([(
            "INSERT INTO checkpoints (job_id, step_number, created_at, metrics) VALUES (?,?,?,?)",
            (job_id, step, now(), json.dumps(metrics)),
        )])

    # -- models ------------------------------------------------------------------------------

    @staticmethod
    def model_insert_sql(record: dict) -> tuple[str, tuple]:
        columns = ", ".join(record)
        marks = ", ".join("?" for _ in record)
        values = tuple(_dumps(v) if k in _JSON_COLUMNS else v for k, v in record.items())
        return f"INSERT INTO models ({columns}) VALUES ({marks})", values

    def get_model(self, model_id: str) -> dict | None:
        return self._one("SELECT * FROM models WHERE id=?", (model_id,))

    def list_models(self) -> list[dict]:
        return self._all("SELECT * FROM models ORDER BY created, rowid")

    def delete_model(self, model_id: str) -> bool:
        return self._write([("DELETE FROM models WHERE id=?", (model_id,))])[0] == 1
