"""The postgres backend: state shared by every runner, one row per resource.

Terraform's `pg` backend is the anchor. Tables live in one schema
(`avatarsync` by default), created on first use and versioned in
`schema_version` (a newer version than this code knows is refused, never
guessed at):

    environments  (client, environment) -> project, lineage, serial,
                  applied_plans (the last 50, jsonb), last_apply (jsonb)
    resources     (client, environment, address) -> entry (jsonb)
    pending       (client, environment, kind 'delete'|'create', address) -> value

Rows are keyed by the environment's client tag (the ownership tag on every
resource it creates, unique per project by design) and its name, not by
the project's name, which defaults to the folder name and so differs
between checkouts. A state written for another client of the same project
and environment is still found, so a changed `client` is refused as with
the file backend instead of planning everything anew.

Apply records one `StateOp` per API call; each is one small statement (an
upsert or a delete of one row, in autocommit), so a write costs the same at
10 resources or 10,000. `save` (import, migrate) rewrites the environment in
one transaction; `compact` at the end of apply only updates the
environment row, since every record is already durable.

The lock is a session-level advisory lock (`pg_try_advisory_lock`) on a
dedicated connection, held for the whole apply: the server releases it when
that session ends, so a runner that dies (kill -9, a lost VM) leaves no
stale lock. Its connection carries `application_name` = who holds it, which
a waiting run reads from `pg_stat_activity`.

A database restart between two calls is survived: a failed statement is
retried once on a new connection (every write is idempotent), and a lock
that died with the old session is taken again, or the run stops if someone
else took it meanwhile. The URI is a secret: messages name the variable and
the host, never the password.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from avatarsync.errors import LockError, StateError
from avatarsync.secret import Secret
from avatarsync.state.model import STATE_VERSION, State, StateOp

__all__ = ["SCHEMA_VERSION", "PostgresStateStore"]

SCHEMA_VERSION = 1  # of the tables below; bump with a migration in _migrate
_LOCK_RETRY = 0.2  # seconds between tries of the advisory lock
_RECONNECT_FOR = 15.0  # seconds a reconnect keeps trying (a restarting server)
_CONNECT_TIMEOUT = 10  # seconds, per connection attempt

_TABLES = """
CREATE TABLE {schema}.environments (
    client text NOT NULL,
    environment text NOT NULL,
    project text NOT NULL,
    lineage text NOT NULL,
    serial bigint NOT NULL,
    applied_plans jsonb NOT NULL DEFAULT '[]',
    last_apply jsonb,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client, environment)
);
CREATE TABLE {schema}.resources (
    client text NOT NULL,
    environment text NOT NULL,
    address text NOT NULL,
    entry jsonb NOT NULL,
    PRIMARY KEY (client, environment, address)
);
CREATE TABLE {schema}.pending (
    client text NOT NULL,
    environment text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('delete', 'create')),
    address text NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (client, environment, kind, address)
);
"""

T = TypeVar("T")


class PostgresStateStore:
    """State of one project environment in PostgreSQL, locked with an advisory lock."""

    def __init__(
        self,
        url: Secret,
        *,
        url_env: str,
        project: str,
        environment: str,
        client: str,
        schema: str = "avatarsync",
    ) -> None:
        self.environment = environment
        self.client = client
        self.project = project
        self.schema = schema
        self.url_env = url_env
        self._url = url
        self._where = _redacted(url, url_env)
        self._password = _password(url)
        self._conn: psycopg.Connection[Any] | None = None
        self._lock_conn: psycopg.Connection[Any] | None = None
        self._schema_ready = False
        self._touched = False  # the environment row bumped for this run's records
        self._unsynced = False  # a record failed: compact must rewrite everything
        self.lock_key = _lock_key(schema, client, environment)

    def describe(self) -> str:
        return f"PostgreSQL state ({self._where}, schema {self.schema})"

    # -- connections ---------------------------------------------------------

    def _connect(self, purpose: str) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                self._url.reveal(),
                autocommit=True,
                connect_timeout=_CONNECT_TIMEOUT,
                application_name=_who(purpose),
            )
        except psycopg.Error as exc:
            raise self._connection_error(exc) from None

    def _connection_error(self, exc: psycopg.Error) -> StateError:
        detail = self._scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        return StateError(
            f"environment {self.environment!r}: cannot use the PostgreSQL state database "
            f"({self._where}): {detail or type(exc).__name__}; check {self.url_env} and that "
            "the database is up"
        )

    def _scrub(self, text: str) -> str:
        text = text.replace(self._url.reveal(), "***")
        if self._password:
            text = text.replace(self._password, "***")
        return text

    def _data(self, *, writes: bool) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect("state")
        if writes and not self._schema_ready:
            self._ensure_schema(self._conn)
        return self._conn

    def _run(self, work: Callable[[psycopg.Connection[Any]], T], *, writes: bool = True) -> T:
        """`work` on the data connection (the tables created first if it
        `writes`); after a lost connection (a restarted server), once more on a
        new one: every caller's work is idempotent."""
        try:
            return work(self._data(writes=writes))
        except psycopg.Error as exc:
            if not _connection_lost(self._conn):
                raise self._connection_error(exc) from None
            first = exc
        self._drop(self._conn)
        self._conn = None
        deadline = time.monotonic() + _RECONNECT_FOR
        while True:
            try:
                conn = self._data(writes=writes)
                break
            except StateError:
                if time.monotonic() >= deadline:
                    raise self._connection_error(first) from None
                time.sleep(0.2)
        self._retake_lock()
        try:
            return work(conn)
        except psycopg.Error as exc:
            raise self._connection_error(exc) from None

    def _retake_lock(self) -> None:
        """The lock died with its session (server restart, `state unlock`): take it
        again at once, or stop, if another run took it in between."""
        if self._lock_conn is None:
            return
        try:
            self._lock_conn.execute("SELECT 1")
            return  # still held
        except psycopg.Error:
            self._drop(self._lock_conn)
        self._lock_conn = None
        conn = self._connect("lock")
        if not _try_lock(conn, self.lock_key):
            who, _ = self._holder(conn)
            self._drop(conn)
            raise LockError(
                f"environment {self.environment!r}: the database session holding this run's "
                "lock ended (a server restart, or `state unlock`) and another run took the "
                f"lock meanwhile ({who}); this run stopped. Plan again once it is done"
            )
        self._lock_conn = conn

    @staticmethod
    def _drop(conn: psycopg.Connection[Any] | None) -> None:
        if conn is not None:
            with suppress(psycopg.Error):
                conn.close()

    def close(self) -> None:
        """Close the data connection (the lock's is closed by `locked`)."""
        self._drop(self._conn)
        self._conn = None

    # -- the schema ------------------------------------------------------------

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        """Create the tables on first use; refuse a schema newer than this code."""
        schema = sql.Identifier(self.schema)
        try:
            version = self._schema_version(conn)
            if version != SCHEMA_VERSION:
                with conn.transaction():
                    # One creator at a time (two runners' first use at once).
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(self.schema),))
                    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
                    conn.execute(
                        sql.SQL(
                            "CREATE TABLE IF NOT EXISTS {}.schema_version "
                            "(version integer NOT NULL, created_at timestamptz NOT NULL "
                            "DEFAULT now())"
                        ).format(schema)
                    )
                    version = self._schema_version(conn)
                    if version is None:
                        conn.execute(sql.SQL(_TABLES).format(schema=schema))
                        conn.execute(
                            sql.SQL("INSERT INTO {}.schema_version (version) VALUES (%s)").format(
                                schema
                            ),
                            (SCHEMA_VERSION,),
                        )
                    elif version > SCHEMA_VERSION:
                        raise self._too_new(version)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise StateError(
                f"{self.describe()}: the role in {self.url_env} may not create the schema "
                f"{self.schema!r} or its tables ({self._scrub(str(exc).splitlines()[0])}); "
                "create them with a role that may, or grant CREATE on the database"
            ) from None
        self._schema_ready = True

    def _too_new(self, version: int) -> StateError:
        return StateError(
            f"{self.describe()}: the tables are at schema version {version}, newer than this "
            f"avatarsync knows ({SCHEMA_VERSION}); upgrade avatarsync (every runner sharing "
            "this database must)"
        )

    def _schema_version(self, conn: psycopg.Connection[Any]) -> int | None:
        row = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL",
            (f"{sql.Identifier(self.schema).as_string(conn)}.schema_version",),
        ).fetchone()
        if not row or not row[0]:
            return None
        found = conn.execute(
            sql.SQL("SELECT max(version) FROM {}.schema_version").format(
                sql.Identifier(self.schema)
            )
        ).fetchone()
        return int(found[0]) if found and found[0] is not None else None

    def _table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))

    # -- reading -------------------------------------------------------------

    def load(self) -> State:
        """The environment's state, read in one consistent snapshot."""
        data = self._run(self._read, writes=False)  # plan never writes, not even tables
        if data is None:
            return State(environment=self.environment, client=self.client)
        try:
            return State.from_dict(data)
        except StateError as exc:
            raise StateError(
                f"{self.describe()} holds invalid state for {self.environment!r} (client {self.client!r}): "
                f"{exc}. Nothing was changed. Remove it with 'avatarsync state rm' or rebuild "
                f"it with 'avatarsync import --env {self.environment}'"
            ) from None

    def _read(self, conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
        version = self._schema_version(conn)
        if version is None:
            return None  # first use: the tables come with the first write
        if version > SCHEMA_VERSION:
            raise self._too_new(version)
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            found = self._read_rows(conn, self.client)
            if found is None:
                # Written for another client of this project and environment?
                # Then that state it is, and the client check refuses it.
                other = conn.execute(
                    sql.SQL(
                        "SELECT client FROM {} WHERE environment = %s AND project = %s "
                        "AND client <> %s ORDER BY updated_at DESC LIMIT 1"
                    ).format(self._table("environments")),
                    (self.environment, self.project, self.client),
                ).fetchone()
                if other is not None:
                    found = self._read_rows(conn, str(other[0]))
        return found

    def _read_rows(self, conn: psycopg.Connection[Any], client: str) -> dict[str, Any] | None:
        key = (client, self.environment)
        row = conn.execute(
            sql.SQL(
                "SELECT lineage, serial, applied_plans, last_apply FROM {} "
                "WHERE client = %s AND environment = %s"
            ).format(self._table("environments")),
            key,
        ).fetchone()
        if row is None:
            return None
        resources = conn.execute(
            sql.SQL("SELECT address, entry FROM {} WHERE client = %s AND environment = %s").format(
                self._table("resources")
            ),
            key,
        ).fetchall()
        pending = conn.execute(
            sql.SQL(
                "SELECT kind, address, value FROM {} WHERE client = %s AND environment = %s"
            ).format(self._table("pending")),
            key,
        ).fetchall()
        lineage, serial, applied_plans, last_apply = row
        return {
            "version": STATE_VERSION,
            "environment": self.environment,
            "client": client,
            "lineage": lineage,
            "serial": serial,
            "resources": dict(resources),
            "appliedPlans": applied_plans,
            "pendingDeletes": {a: v for k, a, v in pending if k == "delete"},
            "pendingCreates": {a: v for k, a, v in pending if k == "create"},
            "lastApply": last_apply,
        }

    # -- writing -------------------------------------------------------------

    def record(self, state: State, op: StateOp) -> None:
        """Apply `op` to `state` and make it durable: one small statement."""
        op.apply(state)
        try:
            self._run(lambda conn: self._write(conn, state, op))
        except StateError:
            self._unsynced = True
            raise

    def _write(self, conn: psycopg.Connection[Any], state: State, op: StateOp) -> None:
        if not self._touched:
            # The first record of a run: the environment row exists and the
            # state moved (a plan saved before this run is stale now).
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} AS e (client, environment, project, lineage, serial) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (client, environment) "
                    "DO UPDATE SET serial = e.serial + 1, updated_at = now()"
                ).format(self._table("environments")),
                (self.client, self.environment, self.project, state.lineage, state.serial + 1),
            )
            self._touched = True
        key = (self.client, self.environment)
        address = str(op.address) if op.address is not None else None
        match op.kind:
            case "put":
                assert op.entry is not None
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (client, environment, address, entry) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT (client, environment, address) "
                        "DO UPDATE SET entry = EXCLUDED.entry"
                    ).format(self._table("resources")),
                    (*key, address, Jsonb(op.entry.to_dict())),
                )
            case "drop":
                conn.execute(
                    sql.SQL(
                        "DELETE FROM {} WHERE client = %s AND environment = %s AND address = %s"
                    ).format(self._table("resources")),
                    (*key, address),
                )
            case "pending-delete" | "pending-create":
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (client, environment, kind, address, value) "
                        "VALUES (%s, %s, %s, %s, %s) "
                        "ON CONFLICT (client, environment, kind, address) "
                        "DO UPDATE SET value = EXCLUDED.value"
                    ).format(self._table("pending")),
                    (*key, op.kind.removeprefix("pending-"), address, op.value),
                )
            case "clear-pending-delete" | "clear-pending-create":
                # Like StateOp.apply: a pending delete is cleared only for the id it names.
                conn.execute(
                    sql.SQL(
                        "DELETE FROM {} WHERE client = %s AND environment = %s AND kind = %s "
                        "AND address = %s AND (%s::text IS NULL OR value = %s::text)"
                    ).format(self._table("pending")),
                    (
                        *key,
                        op.kind.removeprefix("clear-pending-"),
                        address,
                        op.value if op.kind == "clear-pending-delete" else None,
                        op.value if op.kind == "clear-pending-delete" else None,
                    ),
                )
            case "applied-plan" | "last-apply":
                # Both are bounded (50 plan ids; one record): the row is small.
                conn.execute(
                    sql.SQL(
                        "UPDATE {} SET applied_plans = %s, last_apply = %s, updated_at = now() "
                        "WHERE client = %s AND environment = %s"
                    ).format(self._table("environments")),
                    (Jsonb(state.applied_plans[-50:]), _jsonb(state.last_apply), *key),
                )
            case _:
                raise StateError(f"unknown state change {op.kind!r}")

    def save(self, state: State) -> None:
        """Write the whole state in one transaction (import, migrate, repair)."""
        state.serial += 1
        self._run(lambda conn: self._write_all(conn, state))
        self._unsynced = False
        self._touched = False

    def compact(self, state: State) -> None:
        """End of apply: every record is durable already; the environment row
        takes the new serial. After a failed record, everything is rewritten."""
        self._retake_lock()  # never end a run on a lock it no longer holds
        if self._unsynced or not self._touched:
            self.save(state)
            return
        state.serial += 1
        self._run(
            lambda conn: conn.execute(
                sql.SQL(
                    "UPDATE {} SET serial = %s, lineage = %s, applied_plans = %s, "
                    "last_apply = %s, updated_at = now() WHERE client = %s AND environment = %s"
                ).format(self._table("environments")),
                (
                    state.serial,
                    state.lineage,
                    Jsonb(state.applied_plans[-50:]),
                    _jsonb(state.last_apply),
                    self.client,
                    self.environment,
                ),
            )
        )
        self._touched = False

    def _write_all(self, conn: psycopg.Connection[Any], state: State) -> None:
        key = (self.client, self.environment)
        with conn.transaction():
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} AS e (client, environment, project, lineage, serial, "
                    "applied_plans, last_apply) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (client, environment) DO UPDATE SET project = EXCLUDED.project, "
                    "lineage = EXCLUDED.lineage, serial = EXCLUDED.serial, "
                    "applied_plans = EXCLUDED.applied_plans, last_apply = EXCLUDED.last_apply, "
                    "updated_at = now()"
                ).format(self._table("environments")),
                (
                    *key,
                    self.project,
                    state.lineage,
                    state.serial,
                    Jsonb(state.applied_plans[-50:]),
                    _jsonb(state.last_apply),
                ),
            )
            for table in ("resources", "pending"):
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE client = %s AND environment = %s").format(
                        self._table(table)
                    ),
                    key,
                )
            with conn.cursor().copy(
                sql.SQL("COPY {} (client, environment, address, entry) FROM STDIN").format(
                    self._table("resources")
                )
            ) as copy:
                for address, entry in state.resources.items():
                    copy.write_row((*key, str(address), json.dumps(entry.to_dict())))
            pending = [(*key, "delete", str(a), v) for a, v in state.pending_deletes.items()] + [
                (*key, "create", str(a), v) for a, v in state.pending_creates.items()
            ]
            if pending:
                conn.cursor().executemany(
                    sql.SQL(
                        "INSERT INTO {} (client, environment, kind, address, value) "
                        "VALUES (%s, %s, %s, %s, %s)"
                    ).format(self._table("pending")),
                    pending,
                )

    # -- the lock ------------------------------------------------------------

    @contextmanager
    def locked(self, timeout: float = 0.0) -> Iterator[None]:
        """Hold the environment's advisory lock for the block; LockError after
        `timeout` seconds if another session holds it."""
        conn = self._connect("lock")
        try:
            self._ensure_schema(conn)  # a first use that waits must not race the creator
            deadline = time.monotonic() + timeout
            while not _try_lock(conn, self.lock_key):
                if time.monotonic() >= deadline:
                    raise LockError(self._locked_message(self._holder(conn), timeout))
                time.sleep(min(_LOCK_RETRY, max(deadline - time.monotonic(), 0.0)))
        except psycopg.Error as exc:
            self._drop(conn)
            raise self._connection_error(exc) from None
        except BaseException:
            self._drop(conn)
            raise
        self._lock_conn = conn
        try:
            yield
        finally:
            self.close()
            held, self._lock_conn = self._lock_conn, None
            if held is not None:
                with suppress(psycopg.Error):  # if the session is gone, so is the lock
                    held.execute("SELECT pg_advisory_unlock(%s)", (self.lock_key,))
                self._drop(held)

    def _holder(self, conn: psycopg.Connection[Any]) -> tuple[str, int | None]:
        """Who holds the lock, from pg_locks and pg_stat_activity (as far as
        this role may see), e.g. "avatarsync lock ci@runner-7 pid 4242 (database
        session 3117 from 10.0.0.7, since 2026-12-02 10:41:07Z)", and that session."""
        row = conn.execute(
            "SELECT l.pid, a.application_name, host(a.client_addr), "
            "to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"') "
            f"FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE {_HELD}",
            _lock_parts(self.lock_key),
        ).fetchone()
        if row is None:
            return "a session that has just ended", None
        pid, application, address, since = row
        who = application or "a session of another role"
        at = f" from {address}" if address else ""
        started = f", since {since}" if since else ""
        return f"{who} (database session {pid}{at}{started})", int(pid)

    def holder_pid(self) -> int | None:
        """The server pid of the session holding the lock, or None (not locked)."""
        conn = self._connect("unlock")
        try:
            return self._holder(conn)[1]
        except psycopg.Error as exc:
            raise self._connection_error(exc) from None
        finally:
            self._drop(conn)

    def _locked_message(self, holder: tuple[str, int | None], timeout: float) -> str:
        waited = f" after waiting {timeout:.0f} s" if timeout > 0 else ""
        who, session = holder
        return (
            f"environment {self.environment!r} is locked{waited} by {who}; wait for it or "
            "pass --lock-timeout SECONDS. The PostgreSQL advisory lock ends with the session "
            "that holds it, so a runner that died has already released it; to end a hung "
            f"run's session: avatarsync state unlock --env {self.environment} "
            f"{session if session is not None else 'SESSION'}"
        )

    def force_unlock(self, lock_id: str) -> str:
        """End the database session holding the lock if its pid is `lock_id`
        (pg_terminate_backend; the server then releases the lock)."""
        holder = self.holder_pid()
        if holder is None:
            return (
                f"environment {self.environment!r} is not locked (an advisory lock ends with "
                "the session that holds it: nothing to break)"
            )
        if lock_id != str(holder):
            raise LockError(
                f"lock id {lock_id!r} is not the session holding {self.environment!r}'s lock "
                f"(database session {holder}); nothing was changed"
            )
        conn = self._connect("unlock")
        try:
            row = conn.execute("SELECT pg_terminate_backend(%s)", (holder,)).fetchone()
        except psycopg.Error as exc:
            raise StateError(
                f"cannot end database session {holder}: "
                f"{self._scrub(str(exc).splitlines()[0])} (a superuser, the same role or "
                "pg_signal_backend may)"
            ) from None
        finally:
            self._drop(conn)
        if not row or not row[0]:
            raise StateError(f"database session {holder} could not be ended")
        return (
            f"ended database session {holder}, which held {self.environment!r}'s lock; the "
            "server released the lock with it"
        )


# The granted advisory lock of a 64-bit key in this database (pg_locks splits the key).
_HELD = (
    "l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.classid::text::bigint = %s AND l.objid::text::bigint = %s "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def _lock_parts(key: int) -> tuple[int, int]:
    return (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF


def _try_lock(conn: psycopg.Connection[Any], key: int) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    return bool(row and row[0])


def _connection_lost(conn: psycopg.Connection[Any] | None) -> bool:
    return conn is None or conn.closed or conn.broken


def _lock_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key for these names (stable across runs)."""
    digest = hashlib.sha256("\0".join(("avatarsync", *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _who(purpose: str) -> str:
    """`application_name` of our sessions: who to ask when a lock is held."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    name = f"avatarsync {purpose} {user}@{socket.gethostname()} pid {os.getpid()}"
    return name[:63]  # the server truncates longer names


def _jsonb(value: Any) -> Jsonb | None:
    return Jsonb(value) if value is not None else None


def _redacted(url: Secret, url_env: str) -> str:
    """host:port/database as a message may show it (never the password)."""
    try:
        params = conninfo_to_dict(url.reveal())
    except psycopg.Error:
        raise StateError(
            f"{url_env} does not hold a libpq connection URI "
            "(postgresql://user:password@host:5432/database)"
        ) from None
    host = str(params.get("host") or "localhost")
    port = params.get("port")
    database = params.get("dbname") or params.get("user") or ""
    return f"{host}{':' + str(port) if port else ''}/{database} from {url_env}"


def _password(url: Secret) -> str | None:
    try:
        password = conninfo_to_dict(url.reveal()).get("password")
    except psycopg.Error:
        return None
    if password:
        Secret(str(password))  # registered: scrubbed from anything the CLI prints
        return str(password)
    return None
