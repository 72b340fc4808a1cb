"""Command-line interface: the only package that imports click.

`app` holds the root group and the error handling; each `*_cmds` module adds
the commands of one area to it.
"""

from avatarsync.cli import (  # noqa: F401  (registers)
    agent_cmds,
    emulator_cmds,
    env_cmds,
    manifest_cmds,
    plan_cmds,
    session_cmds,
)
from avatarsync.cli.app import CliContext, main, run

__all__ = ["CliContext", "main", "run"]
