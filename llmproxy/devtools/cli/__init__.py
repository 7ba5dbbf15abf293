"""Admin CLI: setup, database, keys, providers, models, deployments, secrets, batches, reports and the local runner."""

from llmproxy.devtools.cli import admin, batch, database, deployments, local, reports  # noqa: F401 - registers the commands
from llmproxy.devtools.cli.app import main

__all__ = ["main"]
