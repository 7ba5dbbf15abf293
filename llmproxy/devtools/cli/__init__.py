"""Admin CLI: setup, database, keys, providers, models, secrets, and the local runner."""

from __future__ import annotations

import json
import sys

import click

from llmproxy.config import ConfigError, load_env_file, load_settings


def emit(data) -> None:
    """Print a result as indented JSON."""
    click.echo(json.dumps(data, indent=2, default=str))


class Context:
    """Settings and a session factory, built on first use (so `--help` needs no configuration)."""

    def __init__(self) -> None:
        self._settings = None
        self._factory = None

    @property
    def settings(self):
        if self._settings is None:
            try:
                self._settings = load_settings()
            except ConfigError as exc:
                click.echo(f"configuration error: {exc}", err=True)
                sys.exit(2)
        return self._settings

    @property
    def session_factory(self):
        if self._factory is None:
            from llmproxy.storage.engine import make_engine, make_session_factory

            self._factory = make_session_factory(make_engine(self.settings.database_url))
        return self._factory


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """LLM Proxy administration (reads the environment, then instance/.env)."""
    load_env_file()
    ctx.obj = Context()


from llmproxy.devtools.cli import admin, batch, local, reports  # noqa: E402,F401 - registers the commands
