"""The manifest tests run the CLI too (corpus cases through `validate`)."""

from support.cli import cli, process  # noqa: F401  (fixtures)
