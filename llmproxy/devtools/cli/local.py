"""`setup` and `run`: everything `make run` does on a fresh machine."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import click

from llmproxy.catalog import defaults
from llmproxy.config import INSTANCE_DIR, ROOT, load_env_file, read_env_file
from llmproxy.devtools.cli.app import Context, main
from llmproxy.storage import migrate
from llmproxy.storage.engine import session_scope

if TYPE_CHECKING:
    from llmproxy.devtools.embedded_redis import EmbeddedRedis

ENV_FILE = INSTANCE_DIR / ".env"


def ensure_env_file() -> bool:
    """Write instance/.env with fresh secrets if it lacks them (never overwriting); True if written."""
    INSTANCE_DIR.mkdir(exist_ok=True)
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
    embedded: EmbeddedRedis | None = None
    if not os.environ.get("REDIS_URL"):
        from llmproxy.devtools.embedded_redis import EmbeddedRedis

        embedded = EmbeddedRedis()
        os.environ["REDIS_URL"] = embedded.url
        click.echo(f"started an embedded Redis at {embedded.url} (set REDIS_URL to use your own)")
    port = click_ctx.obj.settings.port
    bin_dir = os.path.dirname(sys.executable)
    commands = {
        "web": [
            os.path.join(bin_dir, "gunicorn"),
            "-c",
            str(ROOT / "web" / "gunicorn_conf.py"),
            "--bind",
            f"0.0.0.0:{port}",
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
    procs = {name: subprocess.Popen(cmd, cwd=ROOT) for name, cmd in commands.items()}
    click.echo(f"\nLLM Proxy is running at http://127.0.0.1:{port}  (Ctrl-C stops everything)")
    click.echo(f"The admin key is ADMIN_API_KEY in {ENV_FILE}\n")
    stopping = False

    def stop(*_args: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            dead = [name for name, p in procs.items() if p.poll() is not None]
            if dead:
                click.echo(f"{', '.join(dead)} exited; stopping the rest", err=True)
                break
            time.sleep(0.5)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        if embedded is not None:
            embedded.close()
