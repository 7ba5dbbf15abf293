"""Admin CLI: setup, database, keys, providers, models, secrets, batches, reports and the local runner."""

from llmproxy.devtools.cli import admin, batch, database, local, reports  # noqa: F401 - registers the commands
from llmproxy.devtools.cli.app import main

__all__ = ["main"]
