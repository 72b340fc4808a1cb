"""The one SIGINT/SIGTERM policy of reads, smokes and conversation-test runs.

The signal is sent to this process from inside the work (the handlers are
loop handlers on the main thread, as in the CLI).
"""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from avatarsync.errors import Interrupted
from avatarsync.interrupts import cancel_on_signals


async def _work(cleanup: list[str]) -> str:
    os.kill(os.getpid(), signal.SIGINT)
    try:
        await asyncio.sleep(60)
    finally:
        # A second signal arrives while the work cleans up.
        os.kill(os.getpid(), signal.SIGTERM)
        try:
            await asyncio.sleep(0.05)
            cleanup.append("finished")
        except asyncio.CancelledError:
            cleanup.append("cut short")
            raise
    return "not reached"


def test_the_first_signal_cancels_and_later_ones_do_not_cut_the_cleanup_short() -> None:
    cleanup: list[str] = []
    heard: list[str] = []
    with pytest.raises(Interrupted) as caught:
        asyncio.run(cancel_on_signals(_work(cleanup), "all ended", on_signal=heard.append))
    assert str(caught.value) == "interrupted (SIGINT); all ended"
    assert cleanup == ["finished"]
    assert heard == ["SIGINT", "SIGTERM"]


def test_with_cancel_again_a_later_signal_cancels_again_and_is_the_one_named() -> None:
    cleanup: list[str] = []
    with pytest.raises(Interrupted) as caught:
        asyncio.run(cancel_on_signals(_work(cleanup), "nothing was written", cancel_again=True))
    assert str(caught.value) == "interrupted (SIGTERM); nothing was written"
    assert cleanup == ["cut short"]


def test_without_an_outcome_the_message_names_only_the_signal() -> None:
    with pytest.raises(Interrupted, match=r"^interrupted \(SIGINT\)$"):
        asyncio.run(cancel_on_signals(_work([])))


def test_a_cancellation_that_is_not_a_signal_stays_a_cancellation() -> None:
    async def main() -> None:
        task = asyncio.ensure_future(cancel_on_signals(asyncio.sleep(60)))
        await asyncio.sleep(0)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())
