"""SIGINT and SIGTERM as asyncio's own cancellation of the work in hand.

A read, a session smoke and a conversation-test run all stop the same way:
the signal cancels the task doing the work, so its `finally` blocks and
`async with` exits run (requests in flight are closed, conversations are
stopped or ended), then `Interrupted` says which signal it was and what was
cleaned up. Handlers are installed only on the main thread and only where
the loop supports them; elsewhere the default handling stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

from avatarsync.errors import Interrupted

__all__ = ["SIGNALS", "cancel_on_signals", "install_handlers", "undone_if_cancelled"]

T = TypeVar("T")
SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, and how CI cancels a job


def install_handlers(
    loop: asyncio.AbstractEventLoop, handlers: Mapping[signal.Signals, Callable[[], object]]
) -> list[signal.Signals]:
    """Install each handler on `loop` (main thread only; a signal the loop
    cannot handle is skipped) and return the signals installed, for the
    caller to remove with `loop.remove_signal_handler`."""
    installed: list[signal.Signals] = []
    if threading.current_thread() is not threading.main_thread():
        return installed
    for sig, handler in handlers.items():
        try:
            loop.add_signal_handler(sig, handler)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(sig)
    return installed


async def cancel_on_signals(
    work: Coroutine[Any, Any, T],
    outcome: str | None = None,
    *,
    on_signal: Callable[[str], None] | None = None,
    cancel_again: bool = False,
) -> T:
    """Run `work` as a task; SIGINT or SIGTERM cancels it, then `Interrupted`
    ("interrupted (SIGINT); <outcome>") names the signal that last cancelled
    it. A later signal cancels again only with `cancel_again` (a read has
    nothing to finish); otherwise it is ignored, so clean-up (stopping what
    the work started) is not cut short. `on_signal` hears every signal's name."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    cancelled_by: list[str] = []

    def interrupted(sig: signal.Signals) -> None:
        if on_signal is not None:
            on_signal(sig.name)
        if cancel_again or not cancelled_by:
            cancelled_by[:] = [sig.name]
            task.cancel()

    installed = install_handlers(
        loop, {sig: functools.partial(interrupted, sig) for sig in SIGNALS}
    )
    try:
        return await task
    except asyncio.CancelledError:
        if not cancelled_by:
            raise
        suffix = f"; {outcome}" if outcome is not None else ""
        raise Interrupted(f"interrupted ({cancelled_by[0]}){suffix}") from None
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def undone_if_cancelled(
    start: Coroutine[Any, Any, T], undo: Callable[[T], Awaitable[object]], grace: float = 30.0
) -> T:
    """Await `start`, a create that is not taken back by hanging up (a POST the
    platform may have committed). Cancelled meanwhile, it waits up to `grace`
    seconds for the answer and `undo`es what was created (ends or stops a
    billed conversation), then lets the cancellation go on."""
    task = asyncio.ensure_future(start)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            created = await asyncio.wait_for(asyncio.shield(task), grace)
            await undo(created)
        raise
