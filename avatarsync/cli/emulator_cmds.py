"""Command: `avatarsync emulator` — serve the local Equos + Avatarium emulator.

Parses options and wires them to `avatarsync.emulator`; all behaviour lives
there. The emulator modules are imported inside the command so that other
commands do not pay for Starlette and uvicorn at start-up.
"""

from __future__ import annotations

from pathlib import Path

import click

from avatarsync.cli.app import CliContext, main
from avatarsync.emulator.config import DEFAULT_API_KEY, DEFAULT_DB_PATH

__all__ = ["emulator"]


@main.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.option(
    "--db",
    default=DEFAULT_DB_PATH,
    show_default=True,
    help="SQLite file (data survives restarts); ':memory:' for a throwaway one.",
)
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    help=f"Accept this key (repeatable). Default: the documented key {DEFAULT_API_KEY!r}.",
)
@click.option(
    "--latency-ms",
    type=click.IntRange(0, 60_000),
    default=0,
    help="Delay every API request (milliseconds, at most 60000).",
)
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Answer this share of API requests with 500/502/503 before handling them.",
)
@click.option(
    "--rate-limit",
    type=click.IntRange(1, 1_000_000),
    default=None,
    help="Requests per minute (token bucket); beyond it 429 with Retry-After.",
)
@click.option(
    "--drop-after-commit-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Close this share of write connections after committing, without answering.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every fault draw.")
@click.option(
    "--check",
    is_flag=True,
    help="Start an in-memory emulator on a free port, call it, report and exit.",
)
@click.pass_obj
def emulator(
    obj: CliContext,
    host: str,
    port: int,
    db: str,
    api_keys: tuple[str, ...],
    latency_ms: int,
    error_rate: float,
    rate_limit: int | None,
    drop_after_commit_rate: float,
    seed: int,
    check: bool,
) -> None:
    """Serve a local Equos v3 + Avatarium v1 emulator over HTTP, persisted in SQLite."""
    from avatarsync.emulator import EmulatorConfig, EmulatorServer
    from avatarsync.emulator.check import run_check

    if check:
        if not run_check(lambda line: click.echo(line)):
            raise click.ClickException("emulator self-check failed")
        return
    if db != ":memory:" and obj is not None and obj.directory is not None:
        db = str(Path(obj.directory) / db)
    try:
        config = EmulatorConfig(
            db=db,
            api_keys=api_keys or (DEFAULT_API_KEY,),
            host=host,
            port=port,
            latency_ms=latency_ms,
            error_rate=error_rate,
            rate_limit=rate_limit,
            drop_after_commit_rate=drop_after_commit_rate,
            seed=seed,
        )
    except ValueError as exc:  # a switch out of its documented range
        raise click.UsageError(str(exc)) from None

    def ready(url: str) -> None:
        # The first line is a contract: tests spawn this command and read it.
        click.echo(f"avatarsync emulator listening on {url}")
        if not api_keys:
            click.echo(
                f"accepting the default API key {DEFAULT_API_KEY} "
                "(x-api-key for Equos /v3, Bearer for Avatarium /v1)"
            )
        click.echo(f"database: {db}")
        click.echo("stop with Ctrl-C")

    try:
        EmulatorServer(config).serve_forever(on_ready=ready)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from exc
