"""should_color: the --no-color flag, NO_COLOR, then whether the stream is a TTY."""

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
        (_Tty(), False, {"NO_COLOR": ""}, False),  # any value, even empty
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
    monkeypatch.setenv("NO_COLOR", "")
    assert should_color(_Tty(), False) is False
    monkeypatch.delenv("NO_COLOR")
    assert should_color(_Tty(), False) is True
