"""The promotion gate: SOURCE's conversation tests passed on these manifests.

`avatarsync test` records its outcome in the environment's state
(`lastTests`: the manifests' fingerprint, when, passed/failed and names);
`promote` asks this module whether that record covers the manifests being
promoted. A project without any ConversationTest has nothing to gate: the
promotion goes on, and the note says so.
"""

from __future__ import annotations

from avatarsync.errors import PromotionError
from avatarsync.resources import DesiredState
from avatarsync.state import State

__all__ = ["check_tests_passed"]


def check_tests_passed(state: State, desired: DesiredState, manifests: str, source: str) -> str:
    """A note saying why the gate lets the promotion through; PromotionError if it does not."""
    if not desired.tests:
        return "no ConversationTest in the manifests: no conversation test gates this promotion"
    again = f"run `avatarsync test --env {source}`, then promote (or pass --skip-tests)"
    last = state.last_tests
    if not last:
        raise PromotionError(f"no conversation tests were recorded on {source!r}: {again}")
    at = last.get("at") or "an unknown time"
    if last.get("manifests") != manifests:
        raise PromotionError(
            f"the conversation tests recorded on {source!r} ({at}) ran against other manifests "
            f"than this checkout's: {again}"
        )
    names = _names(last.get("names"))
    missing = sorted(set(desired.tests) - set(names))
    if not last.get("all") or missing:
        shown = f" (not run: {', '.join(missing)})" if missing else ""
        raise PromotionError(
            f"only some conversation tests ran on {source!r} ({at}){shown}: {again}"
        )
    failed = last.get("failed")
    if not isinstance(failed, int) or failed != 0:
        failed_names = _names(last.get("failedNames"))
        raise PromotionError(
            f"conversation tests failed on {source!r} ({failed} of {len(names)} failed at {at}: "
            f"{', '.join(failed_names)}): fix them, {again}"
        )
    return (
        f"conversation tests passed on {source!r} against these manifests "
        f"({last.get('passed')} passed, {at})"
    )


def _names(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []
