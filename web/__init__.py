"""The web process: `create_app()` builds the Flask app; nothing happens at import."""

from __future__ import annotations

import logging

from flask import Flask

from llmproxy.config import ConfigError, Settings, load_settings
from web.services import Services


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app for these settings (default: from the environment)."""
    if settings is None:
        try:
            settings = load_settings()
        except ConfigError as exc:
            raise SystemExit(f"configuration error: {exc}") from None
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False
    app.extensions["llmproxy"] = Services(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    from web import (
        admin,
        batches_api,
        compat,
        completions,
        errors,
        files_api,
        jobs_api,
        openai_api,
        ops,
        session,
        usage,
    )

    session.init_app(app)
    ops.init_metrics(app)
    errors.init_app(app)
    app.register_blueprint(ops.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(compat.bp)
    app.register_blueprint(openai_api.bp)
    app.register_blueprint(completions.bp)
    app.register_blueprint(usage.bp)
    app.register_blueprint(jobs_api.bp)
    app.register_blueprint(files_api.bp)
    app.register_blueprint(batches_api.bp)
    return app
