"""What a request handler reaches: the process's resources, the task producer and one database session per request.

The session is opened on first use, committed before the response leaves (so a 2xx means
"stored") and always closed; nothing else opens, commits or closes one in the web process.
"""

from __future__ import annotations

import logging

import redis
from celery import Celery
from flask import Flask, Response, current_app, g
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from llmproxy.errors import dependency_unavailable
from llmproxy.jobs.queues import celery_config
from llmproxy.resources import Resources
from web.errors import render

log = logging.getLogger(__name__)
EXTENSION = "llmproxy"


class WebResources(Resources):
    """The process's resources plus a Celery producer for sending tasks by name (the web never imports the worker)."""

    _celery: Celery | None = None

    @property
    def celery(self) -> Celery:
        """A Celery app used only to send tasks."""
        return self._once("_celery", self._build_celery)

    def _build_celery(self) -> Celery:
        app = Celery("llmproxy-web", set_as_current=False)
        app.conf.update(celery_config(self.settings))
        return app


def resources() -> WebResources:
    """The current app's resources."""
    return current_app.extensions[EXTENSION]


def db() -> Session:
    """This request's session."""
    if "db" not in g:
        g.db = resources().session_factory()
    return g.db


def commit() -> None:
    """Commit now (views that must be durable before a side effect, e.g. enqueueing a job)."""
    # A session that never began (the catalog came from the snapshots) has nothing to commit.
    if "db" in g and g.db.in_transaction():
        try:
            g.db.commit()
        except (OperationalError, InterfaceError) as exc:
            g.db.rollback()
            raise dependency_unavailable("The database") from exc
        except SQLAlchemyError:
            g.db.rollback()
            raise


def release_connection() -> None:
    """Commit and give the connection back before a long wait (a waiting request holds no connection)."""
    commit()
    session = g.pop("db", None)
    if session is not None:
        session.close()


def announce_config_change() -> None:
    """Commit this request's change, then tell every process to drop its snapshots."""
    commit()
    try:
        resources().announce_config_change()
    except redis.RedisError:  # the change is stored; other processes see it when their snapshots expire
        log.warning("could not announce a configuration change", exc_info=True)


def init_app(app: Flask, resources: WebResources) -> None:
    """Attach the resources and register the hooks that own session lifetime."""
    app.extensions[EXTENSION] = resources

    @app.after_request
    def _commit(response: Response) -> Response:
        # Commit before the response leaves, so a 2xx always means "stored".
        if "db" in g and response.status_code < 400:
            try:
                commit()
            except Exception as exc:  # noqa: BLE001 - rendered as the one error type
                return render(exc)
        return response

    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        session = g.pop("db", None)
        if session is not None:
            session.rollback()
            session.close()
