"""CLI commands for a model's deployments; they share the admin API's services (llmproxy.catalog.deployment_config)."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy.orm import Session

from llmproxy.catalog.deployment_config import (
    add_deployment,
    deployment_json,
    list_deployments,
    remove_deployment,
    update_deployment,
)
from llmproxy.config import Settings
from llmproxy.devtools.cli.app import F, emit, given, main, stdin_secret, with_session
from llmproxy.jsontypes import JSON


@main.group()
def deployments() -> None:
    """A model's deployments (provider, endpoint, key, weight, limits)."""


def _deployment_options(func: F) -> F:
    for option in reversed(
        [
            click.option("--provider"),
            click.option("--api-base", help="Overrides the provider's."),
            click.option("--api-key", help="Stored encrypted. Prefer --api-key-stdin to keep it out of shell history."),
            click.option("--api-key-stdin", is_flag=True),
            click.option("--upstream-model"),
            click.option("--weight", type=int),
            click.option("--rpm", "rpm_limit", type=int),
            click.option("--tpm", "tpm_limit", type=int),
            click.option("--enabled/--disabled", default=None),
        ]
    ):
        func = option(func)
    return func


def _deployment_data(api_key: str | None, api_key_stdin: bool, **options: Any) -> JSON:
    return given(api_key=stdin_secret() if api_key_stdin else api_key, **options)


@deployments.command("list")
@click.argument("model")
@with_session
def deployments_list(session: Session, _settings: Settings, /, model: str) -> None:
    """List a model's deployments."""
    emit([deployment_json(d, model) for d in list_deployments(session, model)])


@deployments.command("add")
@click.argument("model")
@_deployment_options
@with_session
def deployments_add(session: Session, settings: Settings, /, model: str, **options: Any) -> None:
    """Add a deployment to a model."""
    deployment = add_deployment(session, model, _deployment_data(**options), encryption_key=settings.encryption_key)
    emit(deployment_json(deployment, model))


@deployments.command("update")
@click.argument("model")
@click.argument("deployment_id", type=int)
@_deployment_options
@with_session
def deployments_update(session: Session, settings: Settings, /, model: str, deployment_id: int, **options: Any) -> None:
    """Change a deployment."""
    deployment = update_deployment(
        session, model, deployment_id, _deployment_data(**options), encryption_key=settings.encryption_key
    )
    emit(deployment_json(deployment, model))


@deployments.command("remove")
@click.argument("model")
@click.argument("deployment_id", type=int)
@with_session
def deployments_remove(session: Session, _settings: Settings, /, model: str, deployment_id: int) -> None:
    """Remove a deployment (not a model's last one)."""
    remove_deployment(session, model, deployment_id)
    click.echo(f"removed deployment {deployment_id} of model {model}")
