"""Fixtures of the CLI tests: the entry point, and small projects against a real emulator."""

from support.cli import cli, process  # noqa: F401  (fixtures)
from support.e2e import make_project, project  # noqa: F401  (fixtures)
from support.servers import postgres_server, postgres_url  # noqa: F401  (fixtures)
