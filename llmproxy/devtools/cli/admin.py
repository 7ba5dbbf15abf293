"""CLI commands for keys, providers, models and secrets; they share the admin API's services."""

from __future__ import annotations

import sys
from functools import wraps

import click

from llmproxy.catalog.defaults import seed_defaults
from llmproxy.catalog.model_config import create_model, delete_model, list_models, model_json, update_model
from llmproxy.catalog.provider_config import (
    PROVIDER_KINDS,
    create_provider,
    delete_provider,
    list_providers,
    provider_json,
    update_provider,
)
from llmproxy.devtools.cli import emit, main
from llmproxy.errors import ApiError
from llmproxy.keys import virtual_keys
from llmproxy.keys.credentials import reencrypt_all
from llmproxy.keys.virtual_keys import key_json
from llmproxy.storage import migrate
from llmproxy.storage.engine import session_scope


def with_session(func):
    """Run the command in one transaction; an ApiError is printed as one line and exits 1."""

    @wraps(func)
    @click.pass_obj
    def wrapper(ctx, *args, **kwargs):
        try:
            with session_scope(ctx.session_factory) as session:
                result = func(session, ctx.settings, *args, **kwargs)
        except ApiError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)
        announce_change(ctx.settings)
        return result

    return wrapper


def announce_change(settings) -> None:
    """Tell running processes to drop their configuration snapshots (best effort: they expire in a second)."""
    if not settings.redis_url:
        return
    import redis

    from llmproxy.catalog.snapshots import bump_version

    try:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=1)
        bump_version(client)
        client.close()
    except redis.RedisError:
        pass


def _fields(**values) -> dict:
    """Only the options the user gave."""
    return {k: v for k, v in values.items() if v is not None}


@main.group()
def db() -> None:
    """Database migrations and default data."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(ctx) -> None:
    """Migrate to the newest schema."""
    migrate.upgrade(ctx.settings.database_url)
    click.echo("database is at the newest revision")


@db.command("downgrade")
@click.argument("revision", default="base")
@click.pass_obj
def db_downgrade(ctx, revision) -> None:
    """Migrate down to REVISION (default: empty)."""
    migrate.downgrade(ctx.settings.database_url, revision)


@db.command("seed")
@with_session
def db_seed(session, _settings) -> None:
    """Insert the default providers and models that are missing."""
    click.echo(f"added {seed_defaults(session)} default rows")


@main.group(name="keys")
def keys_group() -> None:
    """Virtual keys."""


@keys_group.command("create")
@click.option("--name", default="")
@click.option("--rpm", "rpm_limit", type=int)
@click.option("--tpm", "tpm_limit", type=int)
@click.option("--budget", "budget_usd")
@click.option("--model", "models", multiple=True, help="Allowed model (repeat); default all.")
@with_session
def keys_create(session, _settings, name, rpm_limit, tpm_limit, budget_usd, models) -> None:
    """Create a key and print its secret (shown this once)."""
    key, secret = virtual_keys.create_key(
        session,
        _fields(
            name=name, rpm_limit=rpm_limit, tpm_limit=tpm_limit, budget_usd=budget_usd, models=list(models) or None
        ),
    )
    emit({**key_json(key), "key": secret})


@keys_group.command("list")
@with_session
def keys_list(session, _settings) -> None:
    """List keys."""
    emit([key_json(k) for k in virtual_keys.list_keys(session)])


@keys_group.command("update")
@click.argument("key_id")
@click.option("--name")
@click.option("--rpm", "rpm_limit", type=int)
@click.option("--tpm", "tpm_limit", type=int)
@click.option("--budget", "budget_usd")
@with_session
def keys_update(session, _settings, key_id, **options) -> None:
    """Change a key's name, limits or budget."""
    key = virtual_keys.get_key(session, key_id)
    virtual_keys.apply_key_fields(session, key, _fields(**options))
    emit(key_json(key))


@keys_group.command("revoke")
@click.argument("key_id")
@with_session
def keys_revoke(session, _settings, key_id) -> None:
    """Revoke a key at once."""
    key = virtual_keys.get_key(session, key_id)
    virtual_keys.revoke_key(session, key)
    emit(key_json(key))


@main.group()
def providers() -> None:
    """Upstream providers."""


@providers.command("list")
@with_session
def providers_list(session, _settings) -> None:
    """List providers."""
    emit([provider_json(p) for p in list_providers(session)])


@providers.command("add")
@click.argument("name")
@click.option("--kind", type=click.Choice(PROVIDER_KINDS), required=True)
@click.option("--api-base", required=True)
@click.option("--api-key", help="Stored encrypted. Prefer --api-key-stdin to keep it out of shell history.")
@click.option("--api-key-stdin", is_flag=True)
@with_session
def providers_add(session, settings, name, kind, api_base, api_key, api_key_stdin) -> None:
    """Add a provider."""
    secret = click.get_text_stream("stdin").read().strip() if api_key_stdin else api_key
    data = _fields(name=name, kind=kind, api_base=api_base, api_key=secret)
    emit(provider_json(create_provider(session, data, encryption_key=settings.encryption_key)))


@providers.command("edit")
@click.argument("name")
@click.option("--kind", type=click.Choice(PROVIDER_KINDS))
@click.option("--api-base")
@click.option("--api-key")
@click.option("--api-key-stdin", is_flag=True)
@click.option("--enabled/--disabled", default=None)
@with_session
def providers_edit(session, settings, name, kind, api_base, api_key, api_key_stdin, enabled) -> None:
    """Change a provider."""
    secret = click.get_text_stream("stdin").read().strip() if api_key_stdin else api_key
    data = _fields(kind=kind, api_base=api_base, api_key=secret, enabled=enabled)
    emit(provider_json(update_provider(session, name, data, encryption_key=settings.encryption_key)))


@providers.command("delete")
@click.argument("name")
@with_session
def providers_delete(session, _settings, name) -> None:
    """Remove a provider no model uses."""
    delete_provider(session, name)
    click.echo(f"deleted provider {name}")


@main.group()
def models() -> None:
    """Models, prices and fallbacks."""


def _model_options(func):
    for option in reversed(
        [
            click.option("--provider"),
            click.option("--upstream-model"),
            click.option("--fallback", "fallbacks", multiple=True, help="Fallback model, in order (repeat)."),
            click.option("--no-fallbacks", is_flag=True),
            click.option("--input-per-1m", "input_cost_per_1m"),
            click.option("--output-per-1m", "output_cost_per_1m"),
            click.option("--cached-input-per-1m", "cached_input_cost_per_1m"),
            click.option("--context-window", type=int),
            click.option("--enabled/--disabled", default=None),
        ]
    ):
        func = option(func)
    return func


def _model_data(fallbacks, no_fallbacks, **options) -> dict:
    data = _fields(**options)
    if fallbacks or no_fallbacks:
        data["fallbacks"] = list(fallbacks)
    return data


@models.command("list")
@with_session
def models_list(session, _settings) -> None:
    """List models with prices per 1M tokens."""
    emit([model_json(m) for m in list_models(session)])


@models.command("add")
@click.argument("name")
@_model_options
@with_session
def models_add(session, _settings, name, **options) -> None:
    """Add a model."""
    emit(model_json(create_model(session, {"name": name, **_model_data(**options)})))


@models.command("edit")
@click.argument("name")
@_model_options
@with_session
def models_edit(session, _settings, name, **options) -> None:
    """Change a model (provider, prices, fallbacks…)."""
    emit(model_json(update_model(session, name, _model_data(**options))))


@models.command("set-price")
@click.argument("name")
@click.option("--input-per-1m", "input_cost_per_1m", required=True)
@click.option("--output-per-1m", "output_cost_per_1m", required=True)
@click.option("--cached-input-per-1m", "cached_input_cost_per_1m")
@with_session
def models_set_price(session, _settings, name, **prices) -> None:
    """Set a model's prices in USD per 1M tokens."""
    emit(model_json(update_model(session, name, _fields(**prices))))


@models.command("delete")
@click.argument("name")
@with_session
def models_delete(session, _settings, name) -> None:
    """Remove a model that is nobody's fallback."""
    delete_model(session, name)
    click.echo(f"deleted model {name}")


@main.command("rotate-encryption-key")
@click.option(
    "--new-key",
    envvar="NEW_ENCRYPTION_KEY",
    required=True,
    help="64 hex chars (or NEW_ENCRYPTION_KEY); the current key is ENCRYPTION_KEY.",
)
@with_session
def rotate_encryption_key(session, settings, new_key) -> None:
    """Re-encrypt every stored provider key under a new ENCRYPTION_KEY, in one transaction."""
    try:
        new = bytes.fromhex(new_key)
    except ValueError:
        new = b""
    if len(new) != 32:
        raise ApiError(400, "--new-key must be 64 hex characters")
    count = reencrypt_all(session, old_key=settings.encryption_key, new_key=new)
    click.echo(f"re-encrypted {count} stored keys; now set ENCRYPTION_KEY to the new key and restart")
