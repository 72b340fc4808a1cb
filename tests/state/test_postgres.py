"""The PostgreSQL store against a real server: its schema and version, one row
per resource, the advisory lock (who holds it, a killed holder, unlock), a
server restart between two writes, and a URI whose password never shows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psycopg
import pytest

from avatarsync.errors import LockError, StateError
from avatarsync.resources import Address
from avatarsync.secret import Secret
from avatarsync.state import ResourceState, StateOp
from avatarsync.state.postgres import SCHEMA_VERSION, PostgresStateStore

BRAIN = Address("Brain", "support")


def store(url: str, environment: str = "test", **kwargs: str) -> PostgresStateStore:
    return PostgresStateStore(
        Secret(url),
        url_env="PGURL",
        project="acme",
        environment=environment,
        client="acme",
        **kwargs,
    )


def load(url: str, environment: str = "test", **kwargs: str):
    """The state a new instance reads (closed after)."""
    s = store(url, environment, **kwargs)
    try:
        return s.load()
    finally:
        s.close()


def test_first_use_creates_a_versioned_schema_with_a_row_per_resource(postgres_url) -> None:
    s = store(postgres_url)
    state = s.load()
    for n in range(3):
        s.record(state, StateOp("put", Address("Voice", f"v{n}"), entry=ResourceState(f"vo_{n}")))
    s.close()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM avatarsync.schema_version").fetchall() == [
            (SCHEMA_VERSION,)
        ]
        rows = conn.execute(
            "SELECT client, environment, address, entry->>'id' FROM avatarsync.resources "
            "ORDER BY address"
        ).fetchall()
    assert rows == [("acme", "test", f"Voice/v{n}", f"vo_{n}") for n in range(3)]


def test_environments_and_schemas_do_not_share_rows(postgres_url) -> None:
    a, b, c = store(postgres_url), store(postgres_url, "prod"), store(postgres_url, schema="other")
    state = a.load()
    a.record(state, StateOp("put", BRAIN, entry=ResourceState("br_1")))
    assert b.load().resources == {} and c.load().resources == {}
    assert load(postgres_url).resources == {BRAIN: ResourceState("br_1")}
    for s in (a, b, c):
        s.close()


def test_reading_an_unused_database_creates_nothing(postgres_url) -> None:
    assert load(postgres_url).resources == {}  # what plan does: it never writes
    with psycopg.connect(postgres_url) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'avatarsync'"
        ).fetchone()
    assert found == (0,)


def test_the_rows_are_the_clients_so_another_folder_name_finds_them(postgres_url) -> None:
    # The project name defaults to the folder name: a checkout elsewhere has another.
    s = store(postgres_url)
    state = s.load()
    s.record(state, StateOp("put", BRAIN, entry=ResourceState("br_1")))
    s.close()
    other = PostgresStateStore(
        Secret(postgres_url),
        url_env="PGURL",
        project="checkout2",
        environment="test",
        client="acme",
    )
    assert other.load().resources == {BRAIN: ResourceState("br_1")}
    other.close()
    # Another client of the same project: that state is found, with its client,
    # so the workspace refuses a changed client instead of planning everything anew.
    moved = PostgresStateStore(
        Secret(postgres_url),
        url_env="PGURL",
        project="acme",
        environment="test",
        client="acme-new",
    )
    found = moved.load()
    moved.close()
    assert found.client == "acme" and BRAIN in found.resources


def test_a_newer_schema_version_is_refused_with_a_clear_error(postgres_url) -> None:
    first = store(postgres_url)
    first.save(first.load())
    first.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE avatarsync.schema_version SET version = 99")
    with pytest.raises(StateError) as caught:
        load(postgres_url)
    with pytest.raises(StateError, match="schema version 99"), store(postgres_url).locked():
        pass
    assert "schema version 99, newer than this avatarsync knows (1)" in str(caught.value)
    assert "upgrade avatarsync" in str(caught.value)


def test_each_record_writes_one_row_whatever_the_size_of_the_state(postgres_url) -> None:
    s = store(postgres_url)
    state = s.load()
    for n in range(1000):
        state.resources[Address("Voice", f"v{n}")] = ResourceState(f"vo_{n}")
    s.save(state)
    s.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_reset()")
        for n in range(50):
            s.record(state, StateOp("put", Address("Voice", f"v{n}"), entry=ResourceState("x")))
        s.record(state, StateOp("drop", Address("Voice", "v999")))
        s.close()  # a session flushes its statistics when it ends
        deadline = time.monotonic() + 10
        while (counts := _row_counts(conn)) == (0, 0, 0) and time.monotonic() < deadline:
            time.sleep(0.2)
    # 51 records of a 1000-resource state: 50 rows updated, 1 deleted, nothing else.
    assert counts == (0, 50, 1)


def _row_counts(conn: psycopg.Connection) -> tuple[int, int, int]:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables "
        "WHERE schemaname = 'avatarsync' AND relname = 'resources'"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def test_a_held_lock_names_its_holder_and_how_to_proceed(postgres_url) -> None:
    first, second = store(postgres_url), store(postgres_url)
    with first.locked():
        with pytest.raises(LockError) as caught, second.locked():
            pass
        pid = first.holder_pid()
    message = str(caught.value)
    assert "avatarsync lock " in message  # the holder's application_name: user@host pid
    assert f"pid {os.getpid()}" in message
    assert f"database session {pid}" in message
    assert f"state unlock --env test {pid}" in message


HOLD = textwrap.dedent(
    """
    import sys, time
    from avatarsync.secret import Secret
    from avatarsync.state.postgres import PostgresStateStore
    s = PostgresStateStore(Secret(sys.argv[1]), url_env="PGURL", project="acme",
                           environment="test", client="acme")
    with s.locked():
        print("locked", flush=True)
        time.sleep(600)
    """
)


def _holding_process(url: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, url], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def _reap(proc: subprocess.Popen[str]) -> None:
    proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


def test_a_killed_holder_leaves_no_stale_lock(postgres_url) -> None:
    proc = _holding_process(postgres_url)
    waiting = store(postgres_url)
    with pytest.raises(LockError), waiting.locked():
        pass
    os.kill(proc.pid, signal.SIGKILL)
    _reap(proc)
    with waiting.locked(10):  # the server ended the session and released the lock
        pass


def test_unlock_ends_the_holding_session_only_when_the_id_matches(postgres_url) -> None:
    proc = _holding_process(postgres_url)
    try:
        s = store(postgres_url)
        holder = s.holder_pid()
        assert holder is not None
        with pytest.raises(LockError, match="is not the session holding"):
            s.force_unlock(str(holder + 1))
        assert "ended database session" in s.force_unlock(str(holder))
        with s.locked(10):
            pass
    finally:
        proc.kill()
        _reap(proc)


def test_a_run_whose_lock_session_was_ended_retakes_it_or_stops(postgres_url) -> None:
    s = store(postgres_url)
    with s.locked():
        state = s.load()
        s.record(state, StateOp("put", BRAIN, entry=ResourceState("br_1")))
        ended = store(postgres_url)
        ended.force_unlock(str(ended.holder_pid()))  # `state unlock` of a "hung" run
        thief = store(postgres_url)
        with (
            thief.locked(),  # someone else takes it meanwhile
            pytest.raises(LockError, match="another run took the lock meanwhile"),
        ):
            s.compact(state)
    s.close()


def test_a_server_restart_between_records_is_survived_without_duplicates(
    postgres_server, postgres_url
) -> None:
    s = store(postgres_url)
    with s.locked():
        state = s.load()
        s.record(state, StateOp("put", BRAIN, entry=ResourceState("br_1")))
        postgres_server.restart()
        s.record(state, StateOp("put", Address("Voice", "warm"), entry=ResourceState("vo_1")))
        s.record(state, StateOp("put", BRAIN, entry=ResourceState("br_2")))
        s.compact(state)
        # The lock died with the old session and was taken again.
        with pytest.raises(LockError), store(postgres_url).locked():
            pass
    s.close()
    loaded = load(postgres_url)
    assert loaded.resources == {
        BRAIN: ResourceState("br_2"),
        Address("Voice", "warm"): ResourceState("vo_1"),
    }


def test_an_unreachable_database_names_the_variable_never_the_password(
    postgres_server,
) -> None:
    url = postgres_server.url("nodb", password="hunter2-SENTINEL").replace(
        str(postgres_server.port), "1"
    )
    with pytest.raises(StateError) as caught:
        load(url)
    message = str(caught.value)
    assert "hunter2-SENTINEL" not in message and "PGURL" in message
    assert "environment 'test'" in message and "127.0.0.1:1/nodb" in message


def test_a_wrong_password_is_reported_without_it(postgres_server, postgres_url) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE ROLE ci LOGIN PASSWORD 'right-pw-SENTINEL'")
    hba = postgres_server.data / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text("host all ci 127.0.0.1/32 scram-sha-256\n" + original)
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")
    try:
        url = postgres_url.replace("postgres@", "ci:wrong-pw-SENTINEL@")
        with pytest.raises(StateError) as caught:
            load(url)
        assert "SENTINEL" not in str(caught.value)
        assert "password authentication failed" in str(caught.value)
    finally:
        hba.write_text(original)
        with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")


def test_a_uri_that_is_not_one_is_refused_without_echoing_it() -> None:
    with pytest.raises(StateError) as caught:
        store("host=x password=SENTINEL-pw port")
    assert "PGURL does not hold a libpq connection URI" in str(caught.value)
    assert "SENTINEL" not in str(caught.value)
