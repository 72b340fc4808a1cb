"""The s3 backend: state in one object of any S3-compatible store, locked by a conditional write.

Terraform 1.10's `use_lockfile` is the anchor. Three kinds of object, all
beside `key`:

    KEY                            the state, the same JSON as the file backend
    KEY.lock                       the lock: {id, who, created}, made with
                                   If-None-Match: * (only one writer can create it)
    KEY.journal/<serial>/<seq>     one small object per StateOp recorded since
                                   the state object of that serial was written

S3 has no append, and rewriting the whole state after every API call would
make an apply quadratic. So `record` writes one small journal object (one
PUT of a few hundred bytes, O(1), durable as soon as it answers) and
`compact`, when apply ends, writes the state object once and deletes the
journal. A journal left by a killed run is replayed by the next `load` (in
memory; plan never writes) and folded in by the next apply. Only journal
objects under the loaded object's serial are replayed: those of an older
serial were folded in already (a run that died between writing the state
and deleting its journal).

Every write of the state object is conditional on the ETag this run read
(If-Match), or on there being none (If-None-Match: *), so a writer that
skipped or lost the lock cannot overwrite another's state unnoticed: that
is a "state changed underneath" error, never a silent loss. Journal objects
are created with If-None-Match too.

Unlike PostgreSQL's advisory lock, a lock object outlives a runner that
died: `avatarsync state unlock --env E LOCK_ID` deletes it when its id
matches (like `terraform force-unlock`). Credentials come from the usual
AWS variables (process environment, the project's .env files) or profile.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import boto3
import botocore.config
import botocore.exceptions

from avatarsync.errors import LockError, StateError
from avatarsync.secret import Secret
from avatarsync.state.model import State, StateOp, corrupt_state, decode_state

__all__ = ["S3StateStore"]

_LOCK_RETRY = 0.5  # seconds between tries of the lock object
_PRECONDITION = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})

T = TypeVar("T")


class S3StateStore:
    """State of one environment in an S3 object, with per-call journal objects."""

    def __init__(
        self,
        *,
        bucket: str,
        key: str,
        environment: str,
        client: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        credentials: Mapping[str, str] | None = None,
    ) -> None:
        self.bucket = bucket
        self.key = key
        self.lock_key = key + ".lock"
        self.journal_prefix = key + ".journal/"
        self.environment = environment
        self.client = client
        self.region = region
        self.endpoint_url = endpoint_url
        self._credentials = dict(credentials or {})
        for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            if self._credentials.get(name):
                Secret(self._credentials[name])  # registered: scrubbed from output
        self._s3: Any = None
        self._etag: str | None = None  # of the state object as last read or written
        self._loaded = False
        self._base = 0  # serial of that object: the journal folder records go to
        self._seq = 0  # next journal object's number
        self._lock_id: str | None = None

    def describe(self) -> str:
        at = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"S3 state s3://{self.bucket}/{self.key}{at}"

    # -- the client ------------------------------------------------------------

    def _client(self) -> Any:
        if self._s3 is None:
            creds = self._credentials
            keys = creds.get("AWS_ACCESS_KEY_ID") and creds.get("AWS_SECRET_ACCESS_KEY")
            session = boto3.session.Session(
                aws_access_key_id=creds.get("AWS_ACCESS_KEY_ID") if keys else None,
                aws_secret_access_key=creds.get("AWS_SECRET_ACCESS_KEY") if keys else None,
                aws_session_token=creds.get("AWS_SESSION_TOKEN") if keys else None,
                profile_name=None if keys else creds.get("AWS_PROFILE"),
            )
            self._s3 = session.client(
                "s3",
                region_name=self.region,
                endpoint_url=self.endpoint_url,
                config=botocore.config.Config(
                    connect_timeout=10,
                    read_timeout=30,
                    retries={"mode": "standard", "max_attempts": 5},
                    # Checksums only where S3 requires them: S3-compatible
                    # stores (MinIO, Ceph, moto) reject the newer defaults.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            )
        return self._s3

    def _call(self, what: str, work: Callable[[Any], T]) -> T:
        """`work(client)`, with boto's failures turned into StateErrors that name
        the environment and the object (conditional and missing ones re-raised)."""
        try:
            return work(self._client())
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in _PRECONDITION | _MISSING:
                raise
            error = exc.response.get("Error", {})
            detail = f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
            raise self._error(what, detail) from None
        except botocore.exceptions.NoCredentialsError:
            raise self._error(
                what,
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or "
                "AWS_PROFILE) in the environment or the project's .env",
            ) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(what, str(exc)) from None

    def _error(self, what: str, detail: str) -> StateError:
        return StateError(
            f"environment {self.environment!r}: cannot {what} {self.describe()}: {detail}"
        )

    def _get(self, key: str) -> tuple[bytes, str] | None:
        """An object's bytes and ETag, or None if there is none."""
        try:
            response = self._call(
                f"read {key} of", lambda s3: s3.get_object(Bucket=self.bucket, Key=key)
            )
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise self._error(f"read {key} of", _code(exc)) from None
        return response["Body"].read(), str(response["ETag"])

    def _put(self, key: str, body: bytes, what: str, **condition: str) -> str:
        response = self._call(
            what,
            lambda s3: s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                **condition,
            ),
        )
        return str(response["ETag"])

    def close(self) -> None:
        if self._s3 is not None:
            self._s3.close()
            self._s3 = None

    # -- reading -------------------------------------------------------------

    def load(self) -> State:
        """The state, with any journal a killed apply left replayed (in memory)."""
        found = self._get(self.key)
        if found is None:
            state = State(environment=self.environment, client=self.client)
            self._etag, self._base = None, 0
        else:
            body, self._etag = found
            state = self._parse(body)
            self._base = state.serial
        self._loaded = True
        ops = self._read_journal()
        self._seq = len(ops)
        if ops:
            for op in ops:
                op.apply(state)
            state.serial += 1  # the state moved since the object was written
        return state

    def _parse(self, body: bytes) -> State:
        return decode_state(body, self.environment, self.describe())

    def _corrupt(self, problem: str) -> StateError:
        return corrupt_state(self.describe(), self.environment, problem)

    def _journal_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []

        def page(s3: Any) -> Iterator[dict[str, Any]]:
            return iter(
                s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            )

        for response in self._call("list the journal of", lambda s3: list(page(s3))):
            keys += [item["Key"] for item in response.get("Contents", [])]
        return sorted(keys)

    def _folder(self) -> str:
        return f"{self.journal_prefix}{self._base:010d}/"

    def _read_journal(self) -> list[StateOp]:
        ops = []
        for key in self._journal_keys(self._folder()):
            found = self._get(key)
            if found is None:
                continue
            try:
                ops.append(StateOp.from_dict(json.loads(found[0]), key))
            except (ValueError, UnicodeDecodeError, StateError) as exc:
                raise self._corrupt(f"has a corrupt journal object {key} ({exc})") from None
        return ops

    # -- writing -------------------------------------------------------------

    def record(self, state: State, op: StateOp) -> None:
        """Apply `op` to `state` and make it durable: one small journal object."""
        op.apply(state)
        if not self._loaded:
            self._sync_position()
        key = f"{self._folder()}{self._seq:010d}.json"
        body = json.dumps(op.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        try:
            self._put(key, body, "record a change in", IfNoneMatch="*")
        except botocore.exceptions.ClientError as exc:
            raise self._underneath(exc) from None
        self._seq += 1

    def _sync_position(self) -> None:
        """Where records go, for a store that has not loaded (reads the state once)."""
        self.load()

    def save(self, state: State) -> None:
        """Write the whole state object (guarded by its ETag), then drop the journal."""
        if not self._loaded:
            self._sync_position()
        state.serial += 1
        body = (json.dumps(state.to_dict(), sort_keys=True, separators=(",", ":")) + "\n").encode()
        condition = {"IfMatch": self._etag} if self._etag else {"IfNoneMatch": "*"}
        try:
            self._etag = self._put(self.key, body, "write", **condition)
        except botocore.exceptions.ClientError as exc:
            raise self._underneath(exc) from None
        self._base, self._seq = state.serial, 0
        stale = self._journal_keys(self.journal_prefix)
        for start in range(0, len(stale), 1000):  # DeleteObjects takes 1,000 keys
            self._delete_objects(stale[start : start + 1000])

    def _delete_objects(self, keys: list[str]) -> None:
        objects = [{"Key": k} for k in keys]
        self._call(
            "clear the journal of",
            lambda s3: s3.delete_objects(
                Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
            ),
        )

    compact = save

    def _underneath(self, exc: botocore.exceptions.ClientError) -> StateError:
        code = _code(exc)
        if code in _PRECONDITION:
            return StateError(
                f"{self.describe()} changed underneath this run (another writer without the "
                f"lock?): nothing was overwritten. Check who else applies to "
                f"{self.environment!r}, then plan again"
            )
        return self._error("write", code)

    # -- the lock ------------------------------------------------------------

    @contextmanager
    def locked(self, timeout: float = 0.0) -> Iterator[None]:
        """Hold the lock object for the block; LockError after `timeout` seconds."""
        lock_id = uuid.uuid4().hex
        body = json.dumps(
            {"id": lock_id, "who": _who(), "created": _now(), "environment": self.environment},
            sort_keys=True,
        ).encode()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._put(self.lock_key, body, "take the lock of", IfNoneMatch="*")
                break
            except botocore.exceptions.ClientError as exc:
                if _code(exc) not in _PRECONDITION:
                    raise self._error("take the lock of", _code(exc)) from None
            if time.monotonic() >= deadline:
                raise LockError(self._locked_message(timeout))
            time.sleep(min(_LOCK_RETRY, max(deadline - time.monotonic(), 0.0)))
        self._lock_id = lock_id
        try:
            yield
        finally:
            self._lock_id = None
            try:
                held = self._lock_info()
                if held is not None and held.get("id") == lock_id:
                    self._call(
                        "release the lock of",
                        lambda s3: s3.delete_object(Bucket=self.bucket, Key=self.lock_key),
                    )
            finally:
                self.close()

    def _lock_info(self) -> dict[str, Any] | None:
        found = self._get(self.lock_key)
        if found is None:
            return None
        try:
            info = json.loads(found[0])
        except (ValueError, UnicodeDecodeError):
            return {}
        return info if isinstance(info, dict) else {}

    def _locked_message(self, timeout: float) -> str:
        info = self._lock_info() or {}
        waited = f" after waiting {timeout:.0f} s" if timeout > 0 else ""
        who = info.get("who", "another run")
        since = f" since {info['created']}" if info.get("created") else ""
        lock_id = info.get("id", "?")
        return (
            f"environment {self.environment!r} is locked{waited} by {who}{since} (lock object "
            f"s3://{self.bucket}/{self.lock_key}, lock id {lock_id}); wait for it or pass "
            "--lock-timeout SECONDS. A lock object outlives a runner that died: if no run is "
            f"going on, break it with: avatarsync state unlock --env {self.environment} {lock_id}"
        )

    def force_unlock(self, lock_id: str) -> str:
        """Delete the lock object if its id is `lock_id` (a run that died left it)."""
        info = self._lock_info()
        if info is None:
            return f"environment {self.environment!r} is not locked (no s3://{self.bucket}/{self.lock_key})"
        if info.get("id") != lock_id:
            raise LockError(
                f"lock id {lock_id!r} is not the id of {self.environment!r}'s lock "
                f"({info.get('id', '?')}, by {info.get('who', '?')}); nothing was changed"
            )
        self._call(
            "break the lock of",
            lambda s3: s3.delete_object(Bucket=self.bucket, Key=self.lock_key),
        )
        return (
            f"deleted {self.environment!r}'s lock {lock_id} (by {info.get('who', '?')}, "
            f"since {info.get('created', '?')})"
        )


def _code(exc: botocore.exceptions.ClientError) -> str:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code") or status or "?")


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"avatarsync {user}@{socket.gethostname()} pid {os.getpid()}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
