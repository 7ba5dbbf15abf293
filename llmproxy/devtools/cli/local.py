"""`setup` and `run`: everything `make run` does on a fresh machine."""

from __future__ import annotations

import os
import secrets
import sys
from typing import TYPE_CHECKING

import click

from llmproxy.billing import rollup
from llmproxy.catalog import defaults
from llmproxy.config import INSTANCE_DIR, ROOT, load_env_file, read_env_file
from llmproxy.devtools.cli.app import Context, main
from llmproxy.devtools.supervisor import Supervisor
from llmproxy.storage import migrate
from llmproxy.storage.engine import session_scope

if TYPE_CHECKING:
    from llmproxy.devtools.embedded_redis import EmbeddedRedis

ENV_FILE = INSTANCE_DIR / ".env"


def ensure_env_file() -> bool:
    """Write instance/.env with fresh secrets if it lacks them (never overwriting); True if written."""
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    existing = read_env_file(ENV_FILE)
    additions: dict[str, str] = {}
    if "ENCRYPTION_KEY" not in existing and not os.environ.get("ENCRYPTION_KEY"):
        additions["ENCRYPTION_KEY"] = secrets.token_hex(32)
    if "ADMIN_API_KEY" not in existing and not os.environ.get("ADMIN_API_KEY"):
        additions["ADMIN_API_KEY"] = "admin-" + secrets.token_urlsafe(32)
    if additions:
        with open(ENV_FILE, "a") as fh:
            os.chmod(ENV_FILE, 0o600)
            fh.write("# Written by `make run`; keep it secret, never commit it.\n")
            for name, value in additions.items():
                fh.write(f"{name}={value}\n")
    load_env_file(ENV_FILE)
    return bool(additions)


@main.command()
@click.pass_obj
def setup(ctx: Context) -> None:
    """Create instance/.env if needed, migrate the database and insert the default providers and models."""
    if ensure_env_file():
        click.echo(f"wrote fresh secrets to {ENV_FILE}")
    settings = ctx.settings
    migrate.upgrade(settings.database_url)
    with session_scope(ctx.session_factory) as session:
        added = defaults.seed_defaults(session)
        summed = rollup.fill_if_empty(session)  # what was billed before the rollup existed
    if summed:
        click.echo(f"usage rollup filled from {summed} ledger rows")
    ctx.resources.close()  # `run` goes on to start the processes: this one holds no connection
    click.echo(f"database ready ({settings.database_url.split('@')[-1]}); {added} default rows added")


@main.command()
@click.option(
    "--workers",
    default=os.cpu_count() or 1,
    show_default="one per CPU core",
    help="Celery worker processes (each consumes both queues).",
)
@click.pass_context
def run(click_ctx: click.Context, workers: int) -> None:
    """Run web, worker, writer and beat in the foreground (with an embedded Redis when REDIS_URL is unset)."""
    click_ctx.invoke(setup)
    settings = click_ctx.obj.settings
    supervisor = Supervisor(say=lambda line: click.echo(line, err=True))  # Ctrl-C from here on: stop cleanly
    embedded: EmbeddedRedis | None = None
    try:
        if not os.environ.get("REDIS_URL"):
            from llmproxy.devtools.embedded_redis import EmbeddedRedis

            embedded = EmbeddedRedis()
            os.environ["REDIS_URL"] = embedded.url
            click.echo(f"started an embedded Redis at {embedded.url} (set REDIS_URL to use your own)")
        supervisor.start(_commands(settings.host, settings.port, workers), cwd=ROOT)
        url = f"http://{_url_host(settings.host)}:{settings.port}"
        click.echo(f"\nLLM Proxy is running at {url}  (Ctrl-C stops everything)")
        if settings.host not in ("127.0.0.1", "localhost", "::1"):
            click.echo(f"It listens on {settings.host} (HOST): other machines may reach it.")
            if not settings.metrics_token:
                click.echo("/metrics and /readyz are open to them: set METRICS_TOKEN (see docs/operations.md).")
        click.echo(f"The admin key is ADMIN_API_KEY in {ENV_FILE}\n")
        supervisor.wait()
    finally:
        supervisor.stop()
        if embedded is not None:
            embedded.close()  # last: the others need it while they stop


def _commands(host: str, port: int, workers: int) -> dict[str, list[str]]:
    """The command line of each process `run` starts, by name."""
    bin_dir = os.path.dirname(sys.executable)
    commands = {
        "web": [
            os.path.join(bin_dir, "gunicorn"),
            "-c",
            str(ROOT / "web" / "gunicorn_conf.py"),
            "--bind",
            _bind_address(host, port),
            "web:create_app()",
        ],
        "writer": [sys.executable, "-m", "worker.writer"],
        "beat": [
            os.path.join(bin_dir, "celery"),
            "-A",
            "worker.main",
            "beat",
            "--loglevel",
            "warning",
            "-s",
            str(INSTANCE_DIR / "celerybeat-schedule"),
        ],
    }
    for i in range(workers):
        commands[f"worker{i + 1}"] = [
            os.path.join(bin_dir, "celery"),
            "-A",
            "worker.main",
            "worker",
            "-Q",
            "interactive,batch",
            "-P",
            "threads",
            "-c",
            "16",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "info",
            "-n",
            f"local{i + 1}@%h",
        ]
    return commands


def _bind_address(host: str, port: int) -> str:
    """gunicorn's --bind value (an IPv6 address goes in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _url_host(host: str) -> str:
    """Where a browser on this machine reaches the service."""
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
