"""The CLI's group, its context (settings and resources, built on first use) and the helpers commands share."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import click

from llmproxy.config import ConfigError, Settings, load_env_file, load_settings
from llmproxy.errors import ApiError
from llmproxy.jsontypes import JSON
from llmproxy.resources import Resources

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

P = ParamSpec("P")
R = TypeVar("R")


F = TypeVar("F", bound=Callable[..., Any])  # a click command, decorated by shared option lists


def given(**values: Any) -> JSON:
    """Only the options the user gave."""
    return {k: v for k, v in values.items() if v is not None}


def stdin_secret() -> str:
    """A secret piped to stdin (kept out of shell history), stripped."""
    # open_file("-") is the stdin stream click.get_text_stream("stdin") gave, without its deprecation.
    text: str = click.open_file("-").read()
    return text.strip()


def emit(data: Any) -> None:
    """Print a result as indented JSON."""
    click.echo(json.dumps(data, indent=2, default=str))


class Context:
    """Settings and the process's resources, built on first use (so `--help` needs no configuration)."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._resources: Resources | None = None

    @property
    def settings(self) -> Settings:
        """The settings from the environment; exits 2 naming a bad setting."""
        if self._settings is None:
            try:
                self._settings = load_settings()
            except ConfigError as exc:
                click.echo(f"configuration error: {exc}", err=True)
                sys.exit(2)
        return self._settings

    @property
    def resources(self) -> Resources:
        """The same resource factory the web and worker use."""
        if self._resources is None:
            self._resources = Resources(self.settings)
        return self._resources

    @property
    def session_factory(self) -> sessionmaker[Session]:
        """A session factory on the configured database."""
        return self.resources.session_factory


def with_session(func: Callable[Concatenate[Session, Settings, P], R]) -> Callable[P, R]:
    """Run the command in one transaction; an ApiError is printed as one line and exits 1."""

    @wraps(func)
    @click.pass_obj
    def wrapper(ctx: Context, /, *args: P.args, **kwargs: P.kwargs) -> R:
        from llmproxy.storage.engine import session_scope

        try:
            with session_scope(ctx.session_factory) as session:
                result = func(session, ctx.settings, *args, **kwargs)
        except ApiError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)
        announce_change(ctx)
        return result

    return wrapper


def announce_change(ctx: Context) -> None:
    """Tell running processes to drop their configuration snapshots (best effort: they expire in a second)."""
    if not ctx.settings.redis_url:
        return
    import redis

    try:
        ctx.resources.announce_config_change()
    except redis.RedisError:
        pass


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """LLM Proxy administration (reads the environment, then instance/.env)."""
    load_env_file()
    ctx.obj = Context()
