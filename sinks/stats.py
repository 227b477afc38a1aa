"""The statistics store of `workerfile stats`: running totals of the workforce figures
(`processors.stats`), kept up to date from `worker-files` change by change, never by
rescanning, in SQLite (default) or PostgreSQL.

Tables (next to the sink's, in the same database or another one):

    stats_workers(ssn PRIMARY KEY, version, contribution, updated_at)
        what each worker's latest file adds to the totals (`processors.stats.contribution`,
        JSON text [[key, count], ...]); "[]" after a tombstone (kept, so that an older
        record cannot bring the worker back).
    stats_totals(key PRIMARY KEY, value)
        the sum of every worker's contribution, key = JSON text of the tuple key
        (["level","senior"]); no zero rows.
    stats_meta(key PRIMARY KEY, value)
        `definitions`: the version of `processors.stats` definitions the contributions
        were counted with (`processors.stats.DEFINITIONS`; a database from before this
        table counts as version 1).
    sink_offsets(consumer_group, topic, kafka_partition, next_offset, updated_at)
        the sink's table, shared: the stats consumer stores its offsets under its own
        group name (default `workerfile-stats`).

A store counted with other definitions than this version's is refused by `apply` and
`follow` (StatsStoreOutdated): its stored contributions are no longer what `contribution` gives,
so adding new contributions to them would not sum to a recount. Rebuild it from
`worker-files` into a fresh database (`workerfile stats follow --db NEW`); `GET /stats`
still answers from it, saying so in `meta.definitions`.

One batch of `worker-files` records = one transaction: for the newest record of each
worker in the batch whose version (its offset, as in `workerfile sink`) is greater than
the stored one, the stored contribution is read, the new one computed, the difference
added to the totals, the new contribution stored, and the consumer's offsets moved, all
or nothing. So a re-delivered or older record changes nothing, a crash at any point
resumes exactly after the last committed batch, and the totals are always the exact sum
of the stored contributions: `totals() == processors.stats.recount(latest files)`.

The Kafka loop is `sinks.runner.Sink` (the store has the same `apply`/`offsets` interface
as the sink's `FileStore`).
"""

from __future__ import annotations

import datetime as dt
import re
from abc import ABC, abstractmethod
from typing import Any, Iterable, Mapping

from processors import stats as st
from sinks.base import TOPIC, ApplyResult, FileChange, latest_per_worker, utc_now

DEFAULT_GROUP = "workerfile-stats"
DEFAULT_SQLITE_PATH = "workerfile_stats.sqlite3"
LOCK_KEY = 0x7374617473  # "stats": PostgreSQL advisory lock that serialises stats transactions
CHUNK = 500  # ssns per SELECT ... IN (...)

TABLES = """
CREATE TABLE IF NOT EXISTS stats_workers (
    ssn          TEXT PRIMARY KEY,
    version      BIGINT NOT NULL,
    contribution TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stats_totals (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS stats_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
)
"""

SAVE_WORKER = """
INSERT INTO stats_workers (ssn, version, contribution, updated_at) VALUES (:ssn, :version, :contribution, :now)
ON CONFLICT (ssn) DO UPDATE SET version = excluded.version, contribution = excluded.contribution,
    updated_at = excluded.updated_at
WHERE excluded.version > stats_workers.version
"""

ADD_TOTAL = """
INSERT INTO stats_totals (key, value) VALUES (:key, :delta)
ON CONFLICT (key) DO UPDATE SET value = stats_totals.value + excluded.value
"""

DROP_ZERO = "DELETE FROM stats_totals WHERE key = :key AND value = 0"


class StatsStoreOutdated(RuntimeError):
    """The store's contributions were counted with other definitions (see the module)."""


class StatsStore(ABC):
    """Per-worker contributions and running totals, with the consumer's offsets.

    Subclasses give the connection, the transaction and the placeholder style; the
    statements are the same in both databases (`:name` placeholders, rewritten to
    `%(name)s` for psycopg)."""

    kind = "?"
    definitions: int = st.DEFINITIONS  # of the stored contributions (ensure_schema reads it)

    # --- what a database provides ----------------------------------------------------------
    @abstractmethod
    def _begin(self) -> None: ...

    @abstractmethod
    def _begin_read(self) -> None:
        """A read-only transaction: one consistent snapshot, no write lock."""

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None: ...

    @abstractmethod
    def _execute(self, sql: str, params: Mapping | tuple = ()) -> list[tuple]:
        """Run one statement; its rows (empty for a write)."""

    @abstractmethod
    def _executemany(self, sql: str, params: list[Mapping]) -> int:
        """Run a statement for each parameter set; the number of rows changed."""

    @abstractmethod
    def _offset_schema(self) -> list[str]:
        """The sink's DDL of sink_offsets."""

    @abstractmethod
    def _store_offset_sql(self) -> str:
        """The sink's forward-only upsert of sink_offsets."""

    @abstractmethod
    def close(self) -> None: ...

    # --- the store ------------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        self._begin()
        try:
            for statement in [s for s in TABLES.split(";") if s.strip()] + self._offset_schema():
                self._execute(statement)
            rows = self._execute("SELECT value FROM stats_meta WHERE key = 'definitions'")
            if rows:
                self.definitions = int(rows[0][0])
            else:  # a new database counts with this version; one from before the table with version 1
                self.definitions = 1 if self._execute("SELECT 1 FROM stats_workers LIMIT 1") else st.DEFINITIONS
                self._execute("INSERT INTO stats_meta (key, value) VALUES ('definitions', :value)",
                              {"value": str(self.definitions)})
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def apply(self, changes: Iterable[FileChange], offsets: Mapping[int, int] | None = None, *,
              group: str = DEFAULT_GROUP, topic: str = TOPIC) -> ApplyResult:
        """In one transaction: every change (newest per worker, version-guarded) folded into
        the totals, and the next offset of each partition in `offsets` (never moved back).
        `written` counts files applied, `deleted` tombstones that removed a worker,
        `ignored` the rest (older or repeated records, tombstones of absent workers)."""
        self.check_definitions()
        changes = list(changes)
        latest = latest_per_worker(changes)
        now = utc_now().isoformat(timespec="microseconds")
        result = ApplyResult()
        self._begin()
        try:
            stored = self._stored([c.ssn for c in latest])
            total_delta: dict[tuple, int] = {}
            rows = []
            for change in latest:
                version, old_text = stored.get(change.ssn, (None, None))
                if version is not None and version >= change.version:
                    continue
                old = st.contribution_of_text(old_text)
                new = st.contribution(change.file)
                st.add_into(total_delta, st.delta(old, new))
                rows.append({"ssn": change.ssn, "version": change.version,
                             "contribution": st.contribution_text(new), "now": now})
                if change.file is not None:
                    result.written += 1
                elif old:
                    result.deleted += 1
            if rows:
                self._executemany(SAVE_WORKER, rows)
            if total_delta:
                params = [{"key": st.key_text(k), "delta": v} for k, v in sorted(total_delta.items(), key=repr)]
                self._executemany(ADD_TOTAL, params)
                self._executemany(DROP_ZERO, [{"key": p["key"]} for p in params])
            if offsets:
                self._executemany(self._store_offset_sql(), [
                    {"group": group, "topic": topic, "partition": p, "offset": o, "now": now}
                    for p, o in sorted(offsets.items())])
            self._commit()
        except BaseException:
            self._rollback()
            raise
        result.ignored = len(changes) - result.written - result.deleted
        return result

    def check_definitions(self) -> None:
        """StatsStoreOutdated unless the stored contributions were counted with this
        version's definitions."""
        if self.definitions != st.DEFINITIONS:
            raise StatsStoreOutdated(
                f"this statistics database was counted with definitions version {self.definitions}, this "
                f"workerfile counts with version {st.DEFINITIONS}: rebuild it from worker-files into a fresh "
                "database (workerfile stats follow --db NEW), then point the server at it")

    def _stored(self, ssns: list[str]) -> dict[str, tuple[int, str]]:
        found: dict[str, tuple[int, str]] = {}
        for i in range(0, len(ssns), CHUNK):
            chunk = ssns[i:i + CHUNK]
            marks = ", ".join(f":s{n}" for n in range(len(chunk)))
            for ssn, version, text in self._execute(
                    f"SELECT ssn, version, contribution FROM stats_workers WHERE ssn IN ({marks})",
                    {f"s{n}": s for n, s in enumerate(chunk)}):
                found[ssn] = (version, text)
        return found

    def offsets(self, group: str = DEFAULT_GROUP, topic: str = TOPIC) -> dict[int, int]:
        rows = self._execute("SELECT kafka_partition, next_offset FROM sink_offsets "
                             "WHERE consumer_group = :group AND topic = :topic", {"group": group, "topic": topic})
        return {p: o for p, o in rows}

    def totals(self) -> dict[tuple, int]:
        """The running totals {key tuple: value}."""
        return {st.key_of(k): v for k, v in self._execute("SELECT key, value FROM stats_totals")}

    def contributions(self) -> dict[str, tuple[int, dict]]:
        """ssn -> (version, contribution) of every worker with a file (not the tombstoned)."""
        return {ssn: (version, st.contribution_of_text(text)) for ssn, version, text in
                self._execute("SELECT ssn, version, contribution FROM stats_workers WHERE contribution <> '[]'")}

    def updated_at(self, group: str = DEFAULT_GROUP, topic: str = TOPIC) -> str | None:
        """When the consumer last committed a batch (RFC 3339, UTC), or None."""
        rows = self._execute("SELECT max(updated_at) FROM sink_offsets WHERE consumer_group = :group "
                             "AND topic = :topic", {"group": group, "topic": topic})
        value = rows[0][0] if rows else None
        if isinstance(value, dt.datetime):
            value = value.astimezone(dt.timezone.utc).isoformat(timespec="seconds")
        return value

    def stats_json(self, min_cell: int = st.MIN_CELL, dispatch_cap: float = st.DISPATCH_CAP,
                   group: str = DEFAULT_GROUP, topic: str = TOPIC) -> dict:
        """The figures (`processors.stats.figures` of the totals) and, under "meta", where
        they come from: the topic, the consumer group, its offsets and last update."""
        self._begin_read()  # one consistent snapshot of totals and offsets
        try:
            totals = self.totals()
            offsets = self.offsets(group, topic)
            updated = self.updated_at(group, topic)
            self._commit()
        except BaseException:
            self._rollback()
            raise
        body = st.figures(totals, min_cell=min_cell, dispatch_cap=dispatch_cap)
        meta = {"topic": topic, "group": group, "offsets": {str(p): o for p, o in sorted(offsets.items())},
                "updated_at": updated, "generated_at": utc_now().isoformat(timespec="seconds"),
                "min_cell": min_cell, "dispatch_cap": dispatch_cap, "store": self.kind,
                "definitions": self.definitions, "definitions_current": st.DEFINITIONS}
        return {"meta": meta, **body}

    def __enter__(self) -> "StatsStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SqliteStatsStore(StatsStore):
    """SQLite (stdlib), WAL mode: readers (the dashboard) never block the consumer."""

    kind = "sqlite"

    def __init__(self, path: str, timeout: float = 60.0):
        from sinks.sqlite import connect

        self.path = str(path)
        self.conn = connect(self.path, timeout)

    def _begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def _begin_read(self) -> None:
        self.conn.execute("BEGIN")

    def _commit(self) -> None:
        self.conn.execute("COMMIT")

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def _execute(self, sql: str, params: Mapping | tuple = ()) -> list[tuple]:
        return self.conn.execute(sql, params).fetchall()

    def _executemany(self, sql: str, params: list[Mapping]) -> int:
        return self.conn.executemany(sql, params).rowcount

    def _offset_schema(self) -> list[str]:
        from sinks.sqlite import SCHEMA

        return [s for s in SCHEMA.split(";") if "TABLE IF NOT EXISTS sink_offsets" in s]

    def _store_offset_sql(self) -> str:
        from sinks.sqlite import STORE_OFFSET

        return STORE_OFFSET

    def close(self) -> None:
        self.conn.close()


_NAMED = re.compile(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)")


class PostgresStatsStore(StatsStore):
    """PostgreSQL (psycopg 3); every write transaction takes an advisory lock first."""

    kind = "postgres"

    def __init__(self, dsn: str = "", connect_timeout: int = 30):
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout,
                                    application_name="workerfile-stats")

    @staticmethod
    def _sql(sql: str) -> str:
        return _NAMED.sub(r"%(\1)s", sql)

    def _begin(self) -> None:
        self.conn.execute("BEGIN")
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))

    def _begin_read(self) -> None:
        self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def _commit(self) -> None:
        self.conn.execute("COMMIT")

    def _rollback(self) -> None:
        import psycopg

        if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self.conn.execute("ROLLBACK")

    def _execute(self, sql: str, params: Mapping | tuple = ()) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(self._sql(sql), params or None)
            return cur.fetchall() if cur.description else []

    def _executemany(self, sql: str, params: list[Mapping]) -> int:
        with self.conn.cursor() as cur:
            cur.executemany(self._sql(sql), params)
            return max(cur.rowcount, 0)

    def _offset_schema(self) -> list[str]:
        from sinks.postgres import SCHEMA

        return [s for s in SCHEMA if "TABLE IF NOT EXISTS sink_offsets" in s]

    def _store_offset_sql(self) -> str:
        from sinks.postgres import STORE_OFFSET

        return STORE_OFFSET

    def close(self) -> None:
        self.conn.close()


def open_stats_store(kind: str = "sqlite", db: str | None = None) -> StatsStore:
    """A stats store of `kind` ("sqlite": db is a file path, default workerfile_stats.sqlite3;
    "postgres": a libpq connection string or URI, "" for the PG* variables), schema ensured."""
    if kind == "sqlite":
        store: StatsStore = SqliteStatsStore(db or DEFAULT_SQLITE_PATH)
    elif kind == "postgres":
        store = PostgresStatsStore(db or "")
    else:
        raise ValueError(f"unknown database kind {kind!r} (sqlite or postgres)")
    try:
        store.ensure_schema()
    except BaseException:
        store.close()
        raise
    return store


def follow(store: StatsStore, bootstrap: str, group: str = DEFAULT_GROUP, once: bool = False,
           batch_size: int = 500, handle_signals: bool = True, security: Any = None) -> Any:
    """Consume `worker-files` into `store` with the sink's loop (`sinks.runner`): until the
    end of the topic (`once`) or SIGTERM/SIGINT. Returns the runner's SinkStats. `security`:
    the Kafka login (streams.kafka_security.KafkaSecurity; default: the environment)."""
    from sinks.runner import run_sink

    store.check_definitions()  # before reading anything
    return run_sink(store, bootstrap, group=group, once=once, batch_size=batch_size,  # type: ignore[arg-type]
                    handle_signals=handle_signals, security=security)
