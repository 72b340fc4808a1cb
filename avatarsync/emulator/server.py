"""Runs an emulator app under uvicorn on a background thread with its own loop.

Used three ways: the tests' `emulator` fixture, the engine's embedded mode
(`emulator: true` environments) and the `avatarsync emulator` command, which
waits in the foreground for Ctrl-C or SIGTERM. The listening socket is bound
here, before uvicorn starts, so `port=0` yields the real port at once and no
caller ever races for a fixed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from types import FrameType, TracebackType
from typing import Any, TypeVar

import uvicorn

from avatarsync.emulator.app import Runtime, create_app
from avatarsync.emulator.config import EmulatorConfig

__all__ = ["EmulatorServer"]

_T = TypeVar("_T")
_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0


class EmulatorServer:
    """One emulator on loopback (or `config.host`); a context manager."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.url = ""
        self.port = 0
        self._runtime: Runtime | None = None
        self._server: _UvicornServer | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> EmulatorServer:
        """Start serving; returns once the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        app = create_app(self.config)
        self._runtime = app.state.runtime
        try:
            sock = _bind(self.config.host, self.config.port)
        except OSError:
            self._runtime.close()
            raise
        self.port = sock.getsockname()[1]
        host = self.config.host
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}"
        self._server = _UvicornServer(
            uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,  # a log line per request would halve throughput
                lifespan="off",
                proxy_headers=False,
                server_header=False,
                timeout_graceful_shutdown=2,
            )
        )
        self._thread = threading.Thread(
            target=self._run, args=(sock,), name=f"avatarsync-emulator-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"emulator failed to start: {self._error!r}") from self._error
            time.sleep(0.005)
        return self

    def _run(self, sock: socket.socket) -> None:
        assert self._server is not None
        config = self._server.config
        try:
            with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
                self._loop = runner.get_loop()
                runner.run(self._server.serve(sockets=[sock]))
        except BaseException as exc:  # reported by start(), or lost if after
            self._error = exc
        finally:
            sock.close()

    def stop(self) -> None:
        """Stop serving and close the database; safe to call twice."""
        if self._server is not None:
            self._server.should_exit = True
            if self._loop is not None and not self._loop.is_closed():
                # Wake the main loop now instead of at its next 0.1 s tick.
                with contextlib.suppress(RuntimeError):  # loop closed meanwhile
                    self._loop.call_soon_threadsafe(self._server.wake)
        if self._thread is not None:
            self._thread.join(_STOP_TIMEOUT)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(_STOP_TIMEOUT)
        if self._runtime is not None:
            self._runtime.close()
        self._thread = None
        self._loop = None

    def serve_forever(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Start, call `on_ready(url)`, block until SIGINT/SIGTERM, then stop.

        Must run on the main thread (signal handlers live there).
        """
        # A SIGTERM while `on_ready` prints the start-up lines waits until they are
        # all out: a caller that reads the URL line and stops the server at once
        # must still get the rest (it used to, only most of the time).
        pending: list[int] = []
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: pending.append(signum))
        try:
            self.start()
            if on_ready is not None:
                on_ready(self.url)
            signal.signal(signal.SIGTERM, _raise_interrupt)
            if pending:
                raise KeyboardInterrupt
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.stop()
        if self._error is not None:
            raise RuntimeError(f"emulator stopped: {self._error!r}") from self._error

    def __enter__(self) -> EmulatorServer:
        return self if self._thread is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------ control

    def stats(self) -> dict[str, Any]:
        """What `GET /_emulator/stats` answers."""
        return self._call(self._require_runtime().stats_snapshot)

    def reset_stats(self) -> None:
        self._call(self._require_runtime().stats.reset)

    def set_faults(self, **changes: Any) -> None:
        """Change switches by field name (latency_ms, error_rate, fail_next,
        missing_as, ws_drop_after_chunks, ...: every field of
        faults.FaultSettings); ValueError if invalid, changing nothing."""
        runtime = self._require_runtime()
        self._call(lambda: runtime.faults.update(**changes))

    def faults(self) -> dict[str, Any]:
        """Current switches, as `GET /_emulator/faults` answers (camelCase)."""
        runtime = self._require_runtime()
        return self._call(lambda: runtime.faults.settings.to_wire())

    def _require_runtime(self) -> Runtime:
        if self._runtime is None or self._loop is None:
            raise RuntimeError("emulator not running")
        return self._runtime

    def _call(self, fn: Callable[[], _T]) -> _T:
        # Everything the handlers touch lives on the server's loop thread;
        # run there rather than share it across threads.
        assert self._loop is not None

        async def run() -> _T:
            return fn()

        coro: Coroutine[Any, Any, _T] = run()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(_STOP_TIMEOUT)


class _UvicornServer(uvicorn.Server):
    """uvicorn's server, but `stop()` need not wait for the next 0.1 s tick."""

    _wake_event: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._wake_event = asyncio.Event()
        counter = 0
        # on_tick also refreshes the Date header once a second; keep calling it.
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_event.wait(), 0.1)

    def wake(self) -> None:
        if self._wake_event is not None:
            self._wake_event.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown, minus its fixed 0.1 s sleep.

        uvicorn asks every connection to close, then sleeps 0.1 s whether or
        not any is open, then polls every 0.1 s. Every test stops a server, so
        that sleep alone was a third of the emulator tests' time. Same steps
        here, polling every 5 ms; on a uvicorn without these attributes, its
        own shutdown runs unchanged.
        """
        state = getattr(self, "server_state", None)
        servers = getattr(self, "servers", None)
        if state is None or servers is None:
            await super().shutdown(sockets)
            return
        for server in servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 0.1 + (self.config.timeout_graceful_shutdown or 0)
        while (state.connections or state.tasks) and not self.force_exit:
            if loop.time() >= deadline:
                for task in state.tasks:
                    task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
                break
            await asyncio.sleep(0.005)
        for server in servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
