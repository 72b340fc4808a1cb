"""The file backend: `.avatarsync/state/<env>.json`, a journal beside it, and a lock.

Durability without quadratic cost. Apply records one small `StateOp` per API
call; this store appends it as a JSON line to `<env>.json.journal`, written
with one `write()` straight to the file (so a killed process loses nothing
that was answered) and fsynced by a background thread at most every 50 ms
(so an OS crash loses at most the last 50 ms, and the event loop never
waits for the disk). When apply ends, `compact` folds the journal into the
state file: temp file, fsync, rename, then the journal goes. A journal left
by a crash is replayed by the next `load` (in memory: plan never writes) and
compacted by the next apply, under the lock.

The lock is an fcntl lock (filelock), released by the kernel when the holder
dies, so `kill -9` leaves no stale lock. It only spans one machine: teams
whose CI runs on many use a shared backend (docs/state.md).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from avatarsync.errors import LockError, StateError
from avatarsync.state.model import State, StateOp, corrupt_state, decode_state

__all__ = ["FileStateStore"]

_FSYNC_INTERVAL = 0.05  # seconds between background fsyncs of the journal


class FileStateStore:
    """State in a JSON file (rewritten atomically) plus an append-only journal."""

    def __init__(self, path: Path, *, environment: str, client: str) -> None:
        self.path = path
        self.journal_path = path.with_name(path.name + ".journal")
        self.environment = environment
        self.client = client
        self._lock = filelock.FileLock(str(path) + ".lock")
        self._journal: _Journal | None = None

    def describe(self) -> str:
        return f"state file {self.path}"

    # -- reading -------------------------------------------------------------

    def load(self) -> State:
        """The state, with any journal a crashed apply left replayed (in memory)."""
        state = self._read_file()
        ops = self._read_journal()
        if ops:
            for op in ops:
                op.apply(state)
            state.serial += 1  # the state moved since the file was written
        return state

    def _read_file(self) -> State:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return State(environment=self.environment, client=self.client)
        except (OSError, UnicodeDecodeError) as exc:
            raise self._corrupt(f"cannot be read ({exc})") from exc
        return decode_state(text, self.environment, self.describe())

    def _read_journal(self) -> list[StateOp]:
        try:
            raw = self.journal_path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._corrupt(f"has a journal that cannot be read ({exc.strerror})") from exc
        lines = raw.split(b"\n")
        ops: list[StateOp] = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                ops.append(StateOp.from_dict(json.loads(line), f"journal line {number}"))
            except (ValueError, StateError) as exc:
                if number == len(lines) and not raw.endswith(b"\n"):
                    break  # a torn last line: the write a crash interrupted
                raise self._corrupt(f"has a corrupt journal ({exc})") from None
        return ops

    def _corrupt(self, problem: str) -> StateError:
        return corrupt_state(self.describe(), self.environment, problem)

    # -- writing -------------------------------------------------------------

    def record(self, state: State, op: StateOp) -> None:
        """Apply `op` to `state` and make it durable: one journal line."""
        op.apply(state)
        if self._journal is None:
            self._journal = _Journal(self.journal_path)
        self._journal.append(json.dumps(op.to_dict(), sort_keys=True, separators=(",", ":")))

    def save(self, state: State) -> None:
        """Write the whole state atomically and drop the journal it folds in."""
        state.serial += 1
        data = json.dumps(state.to_dict(), sort_keys=True, separators=(",", ":")) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self.close()
            self.journal_path.unlink(missing_ok=True)
        except OSError as exc:
            raise StateError(f"cannot write {self.describe()}: {exc.strerror}") from exc

    compact = save

    def close(self) -> None:
        """Flush and close the journal (its lines stay until `compact`)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    @contextmanager
    def locked(self, timeout: float = 0.0) -> Iterator[None]:
        """Hold the environment's lock; fail fast (or after `timeout` s) if taken."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=timeout)
        except filelock.Timeout as exc:
            waited = f" after waiting {timeout:.0f} s" if timeout > 0 else ""
            raise LockError(
                f"environment {self.environment!r} is locked by another avatarsync apply{waited} "
                f"(lock file {self._lock.lock_file}); wait for it or pass --lock-timeout SECONDS"
            ) from exc
        try:
            yield
        finally:
            self.close()
            self._lock.release()

    def force_unlock(self, lock_id: str) -> str:
        """Nothing to break: the kernel drops an fcntl lock when its holder exits."""
        del lock_id  # the file lock has no id
        try:
            with self.locked():
                pass
        except LockError:
            raise LockError(
                f"environment {self.environment!r} is locked by a running process on this "
                f"machine ({self._lock.lock_file}); the file lock ends when that process "
                "exits: wait for it or stop it"
            ) from None
        return (
            f"environment {self.environment!r} is not locked: the file lock is released by the "
            "kernel when its holder exits, so it is never stale"
        )


class _Journal:
    """An append-only file of JSON lines: write() now, fsync soon, from a thread."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise StateError(f"cannot write state journal {path}: {exc.strerror}") from exc
        self._path = path
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._closing = False
        self._error: OSError | None = None
        self._flusher = threading.Thread(target=self._flush_loop, daemon=True)
        self._flusher.start()

    def append(self, line: str) -> None:
        if self._error is not None:
            raise StateError(f"cannot write state journal {self._path}: {self._error.strerror}")
        data = (line + "\n").encode()
        try:
            written = os.write(self._fd, data)
            if written != len(data):  # a short write: finish it
                os.write(self._fd, data[written:])
        except OSError as exc:
            raise StateError(f"cannot write state journal {self._path}: {exc.strerror}") from exc
        self._dirty.set()

    def _flush_loop(self) -> None:
        while not self._closing:
            self._dirty.wait()
            if self._closing:
                break
            self._dirty.clear()
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self._error = exc
                return
            self._stop.wait(_FSYNC_INTERVAL)  # group what arrives meanwhile into one fsync

    def close(self) -> None:
        self._closing = True
        self._stop.set()
        self._dirty.set()
        self._flusher.join()
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
