"""The web process: `create_app()` builds the Flask app; nothing connects at import or at build time."""

from __future__ import annotations

import logging

from flask import Flask

from llmproxy.config import ConfigError, Settings, load_settings
from web import context, dashboard, errors, url_guard
from web.admin_api import admin, compat, deployments, usage
from web.batch_api import batches, files
from web.dashboard.signin import init_sessions
from web.jobs_api import jobs
from web.openai_api import chat, embeddings, models, responses
from web.ops_api import ops

BLUEPRINTS = (
    ops.bp,
    admin.bp,
    deployments.bp,
    compat.bp,
    usage.bp,
    models.bp,
    chat.bp,
    embeddings.bp,
    responses.bp,
    jobs.bp,
    files.bp,
    batches.bp,
    dashboard.bp,
)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app for these settings (default: from the environment)."""
    if settings is None:
        try:
            settings = load_settings()
        except ConfigError as exc:
            raise SystemExit(f"configuration error: {exc}") from None
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]  # Flask's default JSON provider has it
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    context.init_app(app, context.WebResources(settings))
    ops.init_metrics(app)
    errors.init_app(app)
    app.before_request(url_guard.refuse_nul_in_url)
    init_sessions(app, settings.encryption_key)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app
