"""should_color: the --no-color flag, NO_COLOR, FORCE_COLOR, then whether the stream is a TTY."""

from __future__ import annotations

import io

import pytest

from avatarsync.output import should_color


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        super().isatty()  # raises ValueError once closed, like a real stream
        return True


@pytest.mark.parametrize(
    ("stream", "flag", "environ", "expected"),
    [
        (_Tty(), False, {}, True),
        (_Tty(), True, {}, False),
        (_Tty(), False, {"NO_COLOR": "1"}, False),
        (_Tty(), False, {"NO_COLOR": ""}, True),  # no-color.org: empty means unset
        (io.StringIO(), False, {"FORCE_COLOR": "1"}, True),  # CI logs render ANSI
        (io.StringIO(), False, {"FORCE_COLOR": "0"}, False),
        (io.StringIO(), False, {"FORCE_COLOR": ""}, False),
        (io.StringIO(), True, {"FORCE_COLOR": "1"}, False),  # the flag wins
        (io.StringIO(), False, {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),
        (io.StringIO(), False, {}, False),
        (object(), False, {}, False),  # no isatty at all
    ],
)
def test_should_color(stream: object, flag: bool, environ: dict[str, str], expected: bool) -> None:
    assert should_color(stream, flag, environ=environ) is expected  # type: ignore[arg-type]


def test_closed_stream_is_not_a_terminal() -> None:
    stream = _Tty()
    stream.close()
    assert should_color(stream, False, environ={}) is False


def test_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    assert should_color(_Tty(), False) is False
    monkeypatch.delenv("NO_COLOR")
    assert should_color(_Tty(), False) is True
