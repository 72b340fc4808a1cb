"""The S3 store against moto's server: O(1) journal objects, the ETag guard,
the lock object (holder named, left by a killed run, broken by its id)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import boto3
import pytest

from avatarsync.errors import LockError, StateError
from avatarsync.resources import Address
from avatarsync.state import ResourceState, State, StateOp
from avatarsync.state.s3 import S3StateStore

BRAIN = Address("Brain", "support")
KEY = "state/test.json"


@pytest.fixture
def s3(moto_server, s3_bucket):
    client = boto3.client("s3", endpoint_url=moto_server.url, region_name="us-east-1")
    yield client
    client.close()


@pytest.fixture
def make(moto_server, s3_bucket):
    opened: list[S3StateStore] = []

    def store(**credentials: str) -> S3StateStore:
        s = S3StateStore(
            bucket=s3_bucket,
            key=KEY,
            region="us-east-1",
            endpoint_url=moto_server.url,
            environment="test",
            client="acme",
            credentials=credentials,
        )
        opened.append(s)
        return s

    yield store
    for s in opened:
        s.close()


def keys(s3, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_a_record_is_one_small_object_and_compaction_folds_them(make, s3, s3_bucket) -> None:
    store = make()
    state = store.load()
    for n in range(200):
        state.resources[Address("Voice", f"v{n}")] = ResourceState(f"vo_{n}")
    store.save(state)
    size = s3.head_object(Bucket=s3_bucket, Key=KEY)["ContentLength"]
    store.record(state, StateOp("put", BRAIN, entry=ResourceState("br_1")))
    store.record(state, StateOp("drop", Address("Voice", "v0")))
    journal = [k for k in keys(s3, s3_bucket) if ".journal/" in k]
    assert len(journal) == 2
    for key in journal:  # each one change, not the 200-resource state
        assert s3.head_object(Bucket=s3_bucket, Key=key)["ContentLength"] < 200 < size
    # The state object is untouched until compaction.
    assert s3.head_object(Bucket=s3_bucket, Key=KEY)["ContentLength"] == size
    store.compact(state)
    assert keys(s3, s3_bucket) == [KEY]
    assert make().load().to_dict() == state.to_dict()


def test_a_journal_of_an_older_serial_is_not_replayed(make, s3, s3_bucket) -> None:
    store = make()
    state = store.load()
    store.record(state, StateOp("put", BRAIN, entry=ResourceState("br_old")))
    leftover = {
        k: s3.get_object(Bucket=s3_bucket, Key=k)["Body"].read() for k in keys(s3, s3_bucket)
    }
    store.record(state, StateOp("drop", BRAIN))
    store.compact(state)
    # A run that died between writing the state and deleting its journal:
    for key, body in leftover.items():
        s3.put_object(Bucket=s3_bucket, Key=key, Body=body)
    assert make().load().resources == {}


def test_a_write_over_a_state_changed_underneath_is_refused(make, s3, s3_bucket) -> None:
    mine, other = make(), make()
    state = mine.load()
    mine.save(state)
    theirs = other.load()
    theirs.resources[BRAIN] = ResourceState("br_theirs")
    other.save(theirs)
    state.resources[BRAIN] = ResourceState("br_mine")
    with pytest.raises(StateError, match="changed underneath this run"):
        mine.save(state)
    assert make().load().resources == {BRAIN: ResourceState("br_theirs")}


def test_a_first_write_does_not_overwrite_a_state_someone_else_created(make) -> None:
    mine, other = make(), make()
    mine.load()  # no object yet
    other.save(State(environment="test", client="acme"))
    with pytest.raises(StateError, match="changed underneath"):
        mine.save(State(environment="test", client="acme"))


HOLD = textwrap.dedent(
    """
    import sys, time
    from avatarsync.state.s3 import S3StateStore
    s = S3StateStore(bucket=sys.argv[1], key="state/test.json", region="us-east-1",
                     endpoint_url=sys.argv[2], environment="test", client="acme")
    with s.locked():
        print("locked", flush=True)
        time.sleep(600)
    """
)


def test_a_lock_left_by_a_killed_run_is_named_and_broken_by_its_id(
    make, moto_server, s3_bucket
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, s3_bucket, moto_server.url],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    store = make()
    with pytest.raises(LockError) as caught, store.locked():
        pass
    message = str(caught.value)
    assert f"pid {proc.pid}" in message and "outlives a runner that died" in message
    lock_id = message.split("lock id ")[1].split(")")[0]
    assert f"avatarsync state unlock --env test {lock_id}" in message
    with pytest.raises(LockError, match="nothing was changed"):
        store.force_unlock("not-the-id")
    assert lock_id in store.force_unlock(lock_id)
    with store.locked():
        pass


def test_releasing_a_lock_leaves_no_lock_object(make, s3, s3_bucket) -> None:
    store = make()
    with store.locked():
        assert f"{KEY}.lock" in keys(s3, s3_bucket)
        info = json.loads(s3.get_object(Bucket=s3_bucket, Key=f"{KEY}.lock")["Body"].read())
        assert set(info) == {"id", "who", "created", "environment"}
    assert f"{KEY}.lock" not in keys(s3, s3_bucket)


def test_bad_credentials_are_reported_without_the_secret(make, monkeypatch) -> None:
    # moto accepts any key; a missing bucket stands in for a refused request.
    store = S3StateStore(
        bucket="no-such-bucket-here",
        key=KEY,
        region="us-east-1",
        endpoint_url=make().endpoint_url,
        environment="test",
        client="acme",
        credentials={"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s3cr3t-SENTINEL"},
    )
    with pytest.raises(StateError) as caught:
        store.load()
    store.close()
    assert "NoSuchBucket" in str(caught.value) and "SENTINEL" not in str(caught.value)
    assert "environment 'test'" in str(caught.value)


def test_no_credentials_at_all_is_a_clear_error(make, monkeypatch, tmp_path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = make()
    with pytest.raises(StateError, match="no AWS credentials: set AWS_ACCESS_KEY_ID"):
        store.load()


def test_a_state_object_that_is_not_json_or_not_this_environments_is_refused(
    make, s3, s3_bucket
) -> None:
    store = make()
    s3.put_object(Bucket=s3_bucket, Key=KEY, Body=b"{nope")
    with pytest.raises(StateError) as caught:
        store.load()
    assert str(caught.value).startswith(f"S3 state s3://{s3_bucket}/{KEY} at ")
    assert "is not JSON" in str(caught.value)
    assert "'avatarsync import --env test' to rebuild it" in str(caught.value)
    other = State(environment="prod", client="acme").to_dict()
    s3.put_object(Bucket=s3_bucket, Key=KEY, Body=json.dumps(other).encode())
    with pytest.raises(StateError, match=r"belongs to environment 'prod', not 'test'$"):
        store.load()
