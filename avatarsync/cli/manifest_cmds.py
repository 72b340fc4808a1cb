"""Commands: manifest_cmds."""

from avatarsync.cli.app import main  # noqa: F401
