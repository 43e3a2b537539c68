"""The run store: every run kept, step by step, in one SQLite file (WAL).

Two tables. `runs` is the index, one row per run: id, name, note, created, source,
config (strict JSON) and its hash, status, step count, stored bytes, summary figures,
environment, theory, and the process that writes it. `steps` holds one row per
recorded step: the step's strict JSON (`codec.encode`, NaN/±Inf as "NaN"/"Infinity",
the live stream's `overflow` marker kept) exactly as an export writes it, and a
brief {step, loss, accuracy, delta: ‖δ(l)‖ per layer} that the history and the
comparison read without decoding whole steps.

Nothing lost: each step is committed in its own short transaction as it is produced.
WAL with synchronous=NORMAL makes a commit survive the death of the process (SIGKILL:
the WAL is written before COMMIT returns; only a power cut or an OS crash may roll
the newest commits back, never corrupt the file); synchronous=FULL also survives
those at the cost of an fsync per commit (setting BACKPROPLAB_STORE_SYNC). On open,
runs left `running` by a process that is gone become `interrupted`, with the steps
they had.

Bounded memory: listing is paginated; an export is produced row batch by row batch
(`export_chunks`), never as one object. Over `max_bytes`, the oldest unnamed finished
runs are deleted first; named runs, running runs and the newest run are kept.

`RunStore(":memory:")` keeps nothing: one in-memory database for tests and kiosks.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import queue
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import orjson

from .codec import decode, encode
from .figures import brief, fold_summary

SOURCES = ("live", "headless", "imported", "watched", "experiment")
STATUSES = ("running", "done", "stopped", "interrupted", "error")
Source = Literal["live", "headless", "imported", "watched", "experiment"]
Status = Literal["running", "done", "stopped", "interrupted", "error"]
MEMORY = ":memory:"
FILENAME = "runs.sqlite3"
PAGE_SIZE = 65536
WAL_CHECKPOINT_PAGES = 640  # × 64 KiB = 40 MiB
EXPORT_BATCH_BYTES = 4 * 1024 * 1024  # step rows fetched per query while exporting
IMPORT_BATCH_BYTES = 4 * 1024 * 1024  # steps committed per transaction while importing
# this process: a run whose owner is this token is ours, whatever the pid says
# (a restarted container is pid 1 again)
_PROCESS = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  name TEXT,
  note TEXT,
  created REAL NOT NULL,
  updated REAL NOT NULL,
  source TEXT NOT NULL CHECK (source IN {SOURCES}),
  schema TEXT NOT NULL,
  config BLOB NOT NULL,
  config_hash TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN {STATUSES}),
  error TEXT,
  step_count INTEGER NOT NULL DEFAULT 0,
  bytes INTEGER NOT NULL DEFAULT 0,
  summary BLOB NOT NULL,
  environment BLOB NOT NULL,
  theory BLOB NOT NULL,
  owner TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_source ON runs (source, seq);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status);
CREATE INDEX IF NOT EXISTS runs_by_hash ON runs (config_hash);
CREATE TABLE IF NOT EXISTS steps (
  run INTEGER NOT NULL,
  n INTEGER NOT NULL,
  step INTEGER NOT NULL,
  body BLOB NOT NULL,
  brief BLOB NOT NULL,
  PRIMARY KEY (run, n)
);
"""
_INDEX_COLUMNS = ("seq, id, name, note, created, updated, source, schema, config_hash, "
                  "status, error, step_count, bytes, summary, config")


def default_data_dir() -> str:
    """$XDG_DATA_HOME/backproplab, else ~/.local/share/backproplab."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "backproplab")


def config_hash(config: dict[str, Any]) -> str:
    """The same config, whatever its key order, gives the same 16 hex digits."""
    return hashlib.sha256(orjson.dumps(orjson.loads(encode(config)),
                                       option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def new_run_id() -> str:
    """Unique across processes and restarts; sorts by creation time."""
    return f"r{int(time.time() * 1000):x}{secrets.token_hex(3)}"


def _owner_alive(owner: str | None) -> bool:
    if owner == _PROCESS:
        return True
    try:
        host, pid, _token = (owner or "").split(":")
        pid_number = int(pid)
    except ValueError:
        return False
    if host != socket.gethostname() or pid_number == os.getpid():
        return False  # another machine's, or an earlier life of this pid
    try:
        os.kill(pid_number, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _filters(source: str | None, name: str | None, status: str | None,
             config_hash: str | None) -> tuple[list[str], list[Any]]:
    """SQL conditions and their arguments; `name` is a case-insensitive part."""
    where, args = [], []
    for column, value in (("source", source), ("status", status),
                          ("config_hash", config_hash)):
        if value is not None:
            where.append(f"{column}=?")
            args.append(value)
    if name is not None:
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("name LIKE ? ESCAPE '\\'")
        args.append(f"%{escaped}%")
    return where, args


def _row(row: sqlite3.Row) -> dict[str, Any]:
    """An index row as the API's run summary (no steps)."""
    return {"id": row["id"], "name": row["name"], "note": row["note"],
            "created": row["created"], "updated": row["updated"], "source": row["source"],
            "status": row["status"], "error": row["error"], "steps": row["step_count"],
            "bytes": row["bytes"], "config_hash": row["config_hash"],
            "config": decode(row["config"]), "summary": decode(row["summary"])}


def prepare_record(record: dict[str, Any]) -> dict[str, Any]:
    """A whole record cut into what the store writes: its head (schema, config,
    environment, theory), each step's (number, strict JSON, brief), its summary. Pure
    CPU work, so an upload can be prepared in another process and stored here with
    nothing left to encode."""
    summary: dict[str, Any] = {}
    rows = []
    for step in record.get("steps") or ():
        rows.append((step["step"], encode(step), encode(brief(step))))
        summary = fold_summary(summary, step)
    return {"head": {k: record.get(k) for k in ("schema", "config", "environment", "theory")},
            "rows": rows, "summary": summary}


class NotFound(KeyError):
    """No run with that id."""


class RunStore:
    """The run store. Thread-safe: writers take turns, one short transaction each;
    readers (file mode) take a pooled connection of their own and never wait for a
    writer. As many reader connections stay open as were ever in use at once."""

    def __init__(self, location: str | Path = MEMORY, max_bytes: int | None = None,
                 sync: Literal["normal", "full"] = "normal"):
        self.memory = str(location) == MEMORY
        self.max_bytes = max_bytes
        self.sync = sync
        if self.memory:
            self.path = None
        else:
            folder = Path(location).expanduser()
            folder.mkdir(parents=True, exist_ok=True)
            self.path = folder / FILENAME
        self._write_lock = threading.RLock()
        # reader connections are pooled, not kept per thread: job threads come and go
        self._idle_readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._writer = self._connect()
        self._unchecked = 0  # bytes appended since the size was last checked
        self.closed = False
        with self._write_lock:
            auto_vacuum = self._writer.execute("PRAGMA auto_vacuum").fetchone()[0]
            fresh = self._writer.execute(
                "SELECT count(*) FROM sqlite_master WHERE name='runs'").fetchone()[0] == 0
            if fresh:
                # steps are blobs of up to ~1 MB: 64 KiB pages write them in a few pages
                # rather than hundreds (benchmarks/store.py: ~2x faster inserts)
                self._writer.execute(f"PRAGMA page_size={PAGE_SIZE}")
                if auto_vacuum != 2:  # freed pages go back to the file system
                    self._writer.execute("PRAGMA auto_vacuum=INCREMENTAL")
            if not self.memory:
                self._writer.execute("PRAGMA journal_mode=WAL")
                # copy the WAL into the database every ~40 MB rather than every 4 MB:
                # fewer checkpoints (each one an fsync) while a large run streams in
                self._writer.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
                self._writer.execute("PRAGMA journal_size_limit=67108864")
            self._writer.executescript(_SCHEMA)
        self.interrupted = self.mark_interrupted()
        self.prune()

    # --- connections ------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(MEMORY if self.memory else str(self.path), timeout=30.0,
                               isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA synchronous={self.sync.upper()}")
        conn.execute("PRAGMA busy_timeout=30000")  # other processes (the CLI) write too
        return conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A connection to read with: an idle one from the pool in file mode (WAL readers
        do not wait for the writer), the one connection under the lock in memory mode."""
        if self.closed:
            raise RuntimeError("the run store is closed")
        if self.memory:
            with self._write_lock:
                yield self._writer
            return
        try:
            conn = self._idle_readers.get_nowait()
        except queue.Empty:
            conn = self._connect()
            with self._readers_lock:
                self._readers.append(conn)
        try:
            yield conn
        finally:
            self._idle_readers.put(conn)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction (BEGIN IMMEDIATE: the write lock up front, so two
        processes never deadlock upgrading a read)."""
        if self.closed:
            raise RuntimeError("the run store is closed")
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._write_lock:
            if self.closed:
                return
            self.closed = True
            with self._readers_lock:
                for conn in self._readers:
                    conn.close()
                self._readers.clear()
            if not self.memory:  # fold the WAL back into the file
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._writer.close()

    # --- writing ----------------------------------------------------------------
    def create(self, config: dict[str, Any], source: Source, *, run_id: str | None = None,
               name: str | None = None, note: str | None = None,
               environment: dict | None = None, theory: dict | None = None,
               schema: str = "backproplab.run/1", status: Status = "running") -> str:
        """A new run, `running` until `finish`; returns its id."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
        run_id = run_id or new_run_id()
        config_bytes, env_bytes, theory_bytes = encode(config), encode(environment), \
            encode(theory)
        now = time.time()
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO runs (id, name, note, created, updated, source, schema, config, "
                "config_hash, status, bytes, summary, environment, theory, owner) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, name, note, now, now, source, schema, config_bytes,
                 config_hash(config), status,
                 len(config_bytes) + len(env_bytes) + len(theory_bytes), b"{}", env_bytes,
                 theory_bytes, _PROCESS))
        return run_id

    def append_steps(self, run_id: str, steps: Iterable[dict[str, Any]]) -> int:
        """Store recorded steps, in order, in one transaction; returns the step count."""
        return self.append_encoded(run_id, [(s, encode(s)) for s in steps])

    def append_encoded(self, run_id: str, steps: list[tuple[dict[str, Any], bytes]]) -> int:
        """The same, for steps already encoded with `codec.encode` (a live job encodes
        each step once, for the store and the stream)."""
        encoded = [(s, body, encode(brief(s))) for s, body in steps]
        with self._transaction() as conn:
            row = conn.execute("SELECT seq, step_count, bytes, summary FROM runs WHERE id=?",
                               (run_id,)).fetchone()
            if row is None:
                raise NotFound(run_id)
            seq, count, size = row["seq"], row["step_count"], row["bytes"]
            summary = decode(row["summary"])
            added = 0
            for i, (step, body, step_brief) in enumerate(encoded):
                conn.execute("INSERT INTO steps (run, n, step, body, brief) VALUES (?,?,?,?,?)",
                             (seq, count + i, step["step"], body, step_brief))
                summary = fold_summary(summary, step)
                added += len(body) + len(step_brief)
            conn.execute("UPDATE runs SET step_count=?, bytes=?, summary=?, updated=? "
                         "WHERE seq=?", (count + len(encoded), size + added, encode(summary),
                                         time.time(), seq))
        self._unchecked += added
        if self.max_bytes is not None and self._unchecked > self.max_bytes // 20:
            self.prune()
        return count + len(encoded)

    def update_meta(self, run_id: str, *, environment: dict | None = None,
                    theory: dict | None = None) -> None:
        """Fill in the environment or the theory once they are known."""
        sets, values = [], []
        for column, value in (("environment", environment), ("theory", theory)):
            if value is not None:
                sets.append(f"{column}=?")
                values.append(encode(value))
        if not sets:
            return
        with self._transaction() as conn:
            if conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id=?",
                            (*values, run_id)).rowcount == 0:
                raise NotFound(run_id)

    def finish(self, run_id: str, status: Status, *, error: str | None = None,
               environment: dict | None = None, theory: dict | None = None) -> None:
        """The run's last word: done, stopped or error (with its message)."""
        if status not in STATUSES or status == "running":
            raise ValueError(f"a finished run is done, stopped, interrupted or error, "
                             f"not {status!r}")
        self.update_meta(run_id, environment=environment, theory=theory)
        with self._transaction() as conn:
            conn.execute("UPDATE runs SET status=?, error=?, updated=?, owner=NULL WHERE id=?",
                         (status, error, time.time(), run_id))
        self.prune()

    def rename(self, run_id: str, *, name: str | None | Any = ...,
               note: str | None | Any = ...) -> dict[str, Any]:
        """Set the name and/or the note (None clears; a named run is never pruned)."""
        sets, values = [], []
        if name is not ...:
            sets.append("name=?")
            values.append(name or None)
        if note is not ...:
            sets.append("note=?")
            values.append(note or None)
        if sets:
            with self._transaction() as conn:
                if conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id=?",
                                (*values, run_id)).rowcount == 0:
                    raise NotFound(run_id)
        return self.get(run_id)

    def delete(self, run_id: str) -> None:
        with self._transaction() as conn:
            row = conn.execute("SELECT seq FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                raise NotFound(run_id)
            conn.execute("DELETE FROM steps WHERE run=?", (row["seq"],))
            conn.execute("DELETE FROM runs WHERE seq=?", (row["seq"],))
        self._give_back_space()

    def put_record(self, record: dict[str, Any], source: Source = "imported", *,
                   name: str | None = None, note: str | None = None,
                   status: Status = "done") -> str:
        """Store a whole run record (an import), as `put_prepared` does."""
        return self.put_prepared(prepare_record(record), source, name=name, note=note,
                                 status=status)

    def put_prepared(self, prepared: dict[str, Any], source: Source = "imported", *,
                     name: str | None = None, note: str | None = None,
                     status: Status = "done") -> str:
        """Store a record cut by `prepare_record`: its rows inserted a few MB per
        transaction, so a large import never holds the write lock for long (sqlite3 runs
        them without the GIL); `running` until the last batch is in (a kill midway
        leaves it `interrupted`, never half-`done`; a batch that cannot be stored takes
        the run away again and raises)."""
        head = prepared["head"]
        run_id = self.create(head.get("config") or {}, source, name=name, note=note,
                             environment=head.get("environment"), theory=head.get("theory"),
                             schema=head.get("schema") or "backproplab.run/1")
        try:
            self._put_rows(run_id, prepared)
        except BaseException:
            with contextlib.suppress(Exception):
                self.delete(run_id)
            raise
        self.finish(run_id, status)
        return run_id

    def _put_rows(self, run_id: str, prepared: dict[str, Any]) -> None:
        rows, start = prepared["rows"], 0
        while start < len(rows):
            end, size = start, 0
            while end < len(rows) and (size < IMPORT_BATCH_BYTES or end == start):
                size += len(rows[end][1]) + len(rows[end][2])
                end += 1
            with self._transaction() as conn:
                row = conn.execute("SELECT seq, step_count, bytes FROM runs WHERE id=?",
                                   (run_id,)).fetchone()
                conn.executemany(
                    "INSERT INTO steps (run, n, step, body, brief) VALUES (?,?,?,?,?)",
                    [(row["seq"], row["step_count"] + i, number, body, step_brief)
                     for i, (number, body, step_brief) in enumerate(rows[start:end])])
                conn.execute("UPDATE runs SET step_count=?, bytes=?, summary=?, updated=? "
                             "WHERE seq=?", (row["step_count"] + end - start,
                                             row["bytes"] + size,
                                             encode(prepared["summary"]), time.time(),
                                             row["seq"]))
            start = end

    def merge_summary(self, run_id: str, values: dict[str, Any]) -> None:
        """Set keys of the run's summary figures (a watched run's first non-finite value
        as its watcher found it); later steps fold over them."""
        with self._transaction() as conn:
            row = conn.execute("SELECT summary FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                raise NotFound(run_id)
            conn.execute("UPDATE runs SET summary=? WHERE id=?",
                         (encode(decode(row["summary"]) | values), run_id))

    def resume(self, run_id: str) -> None:
        """An `interrupted` run written again (a watched model's script still pushing
        after the server restarted) is `running` again, owned by this process."""
        with self._transaction() as conn:
            conn.execute("UPDATE runs SET status='running', error=NULL, owner=? "
                         "WHERE id=? AND status='interrupted'", (_PROCESS, run_id))

    def mark_interrupted(self) -> int:
        """Runs left `running` by a process that is gone become `interrupted`."""
        with self._read() as conn:
            rows = conn.execute("SELECT id, owner FROM runs WHERE status='running'").fetchall()
        stale = [row["id"] for row in rows if not _owner_alive(row["owner"])]
        if stale:
            with self._transaction() as conn:
                conn.executemany("UPDATE runs SET status='interrupted', owner=NULL, "
                                 "error='the process writing it ended before it finished' "
                                 "WHERE id=? AND status='running'", [(i,) for i in stale])
        return len(stale)

    # --- the size cap -------------------------------------------------------------
    def total_bytes(self) -> int:
        """What the runs occupy: their step records, configs, environments, theories."""
        with self._read() as conn:
            return int(conn.execute("SELECT coalesce(sum(bytes), 0) FROM runs").fetchone()[0])

    def prune(self) -> list[str]:
        """Over the cap: delete the oldest unnamed finished runs until under it. Named
        runs, running runs and the newest run are kept (so the store may stay over the
        cap when they alone exceed it). Returns the ids deleted, oldest first."""
        self._unchecked = 0
        if self.max_bytes is None:
            return []
        total = self.total_bytes()
        if total <= self.max_bytes:
            return []
        with self._read() as conn:
            candidates = conn.execute(
                "SELECT id, bytes FROM runs WHERE name IS NULL AND status != 'running' "
                "AND seq < (SELECT max(seq) FROM runs) ORDER BY seq").fetchall()
        deleted = []
        for row in candidates:
            if total <= self.max_bytes:
                break
            try:
                self.delete(row["id"])
            except NotFound:  # deleted meanwhile
                continue
            total -= row["bytes"]
            deleted.append(row["id"])
        return deleted

    def _give_back_space(self) -> None:
        with self._write_lock:
            self._writer.execute("PRAGMA incremental_vacuum")

    # --- reading ----------------------------------------------------------------
    def get(self, run_id: str) -> dict[str, Any]:
        """The run's index entry (summary, no steps); NotFound when there is none."""
        with self._read() as conn:
            row = conn.execute(f"SELECT {_INDEX_COLUMNS} FROM runs WHERE id=?",
                               (run_id,)).fetchone()
        if row is None:
            raise NotFound(run_id)
        return _row(row)

    def list(self, *, source: str | None = None, name: str | None = None,
             status: str | None = None, config_hash: str | None = None, limit: int = 50,
             before: str | None = None, offset: int = 0) -> list[dict[str, Any]]:
        """Newest first. `name` matches a part of the name (case-insensitive);
        `before` is a run id: the page after it (stable while runs are added)."""
        where, args = _filters(source, name, status, config_hash)
        with self._read() as conn:
            if before is not None:
                row = conn.execute("SELECT seq FROM runs WHERE id=?", (before,)).fetchone()
                if row is None:
                    raise NotFound(before)
                where.append("seq < ?")
                args.append(row["seq"])
            clause = f"WHERE {' AND '.join(where)}" if where else ""
            rows = conn.execute(f"SELECT {_INDEX_COLUMNS} FROM runs {clause} "
                                f"ORDER BY seq DESC LIMIT ? OFFSET ?",
                                (*args, limit, offset)).fetchall()
        return [_row(r) for r in rows]

    def count(self, *, source: str | None = None, name: str | None = None,
              status: str | None = None, config_hash: str | None = None) -> int:
        """How many runs match (all pages)."""
        where, args = _filters(source, name, status, config_hash)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._read() as conn:
            return conn.execute(f"SELECT count(*) FROM runs {clause}", args).fetchone()[0]

    def _head(self, run_id: str) -> tuple[int, int, int, bytes]:
        """(seq, step count, bytes, the record's JSON up to its steps)."""
        with self._read() as conn:
            row = conn.execute("SELECT seq, schema, config, environment, theory, step_count, "
                               "bytes FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise NotFound(run_id)
        # the same bytes as codec.encode of {schema, config, environment, theory, steps}
        head = (b'{"schema":' + orjson.dumps(row["schema"]) + b',"config":' + row["config"]
                + b',"environment":' + row["environment"] + b',"theory":' + row["theory"])
        return row["seq"], row["step_count"], row["bytes"], head

    def step_bodies(self, run_id: str) -> Iterator[bytes]:
        """Each step's strict JSON, in order, fetched a few MB at a time."""
        seq, count, size, _ = self._head(run_id)
        per_step = max(1, size // max(count, 1))
        batch = max(1, EXPORT_BATCH_BYTES // per_step)
        n = 0
        while True:
            with self._read() as conn:
                rows = conn.execute("SELECT n, body FROM steps WHERE run=? AND n>=? "
                                    "ORDER BY n LIMIT ?", (seq, n, batch)).fetchall()
            if not rows:
                return
            for row in rows:
                yield row["body"]
            n = rows[-1]["n"] + 1

    def steps_after(self, run_id: str, after: int, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` steps whose step number is over `after`, in order."""
        seq = self._head(run_id)[0]
        with self._read() as conn:
            rows = conn.execute("SELECT body FROM (SELECT n, body FROM steps WHERE run=? "
                                "AND step>? ORDER BY n DESC LIMIT ?) ORDER BY n",
                                (seq, after, limit)).fetchall()
        return [decode(row["body"]) for row in rows]

    def export_chunks(self, run_id: str) -> Iterator[bytes]:
        """The run record {schema, config, environment, theory, steps} as strict JSON,
        in pieces: the same bytes as `codec.encode(store.record(id))`, in bounded memory.
        NotFound is raised at once (before the first piece), not midway."""
        _, _, _, head = self._head(run_id)

        def pieces() -> Iterator[bytes]:
            yield head + b',"steps":['
            for i, body in enumerate(self.step_bodies(run_id)):
                yield body if i == 0 else b"," + body
            yield b"]}"

        return pieces()

    def record(self, run_id: str) -> dict[str, Any]:
        """The whole run record, decoded (for reports and small runs)."""
        return decode(b"".join(self.export_chunks(run_id)))

    def last_step(self, run_id: str) -> dict[str, Any] | None:
        seq = self._head(run_id)[0]
        with self._read() as conn:
            row = conn.execute("SELECT body FROM steps WHERE run=? ORDER BY n DESC LIMIT 1",
                               (seq,)).fetchone()
        return decode(row["body"]) if row else None

    def briefs(self, run_id: str, points: int = 400) -> list[dict[str, Any]]:
        """At most `points` step briefs, evenly spaced, the first and last included,
        and the step where values turned non-finite kept."""
        seq, count, _, _ = self._head(run_id)
        if count == 0:
            return []
        stride = max(1, math.ceil(count / max(points, 2)))
        summary = self.get(run_id)["summary"]
        marked = (summary.get("first_nonfinite") or {}).get("step", -1)
        with self._read() as conn:
            rows = conn.execute("SELECT brief FROM steps WHERE run=? AND (n % ? = 0 OR n = ? "
                                "OR step = ?) ORDER BY n",
                                (seq, stride, count - 1, marked)).fetchall()
        return [decode(row["brief"]) for row in rows]
