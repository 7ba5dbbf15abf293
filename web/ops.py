"""Operations routes: liveness, readiness."""
from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from llmproxy.queueing import QUEUES, live_consumers
from web.services import services
from web.session import db

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    """200 while the process serves."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """200 when the database and Redis answer and a worker consumes each queue; else 503 naming what is missing."""
    problems: list[str] = []
    try:
        db().execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means "not ready", reported below
        problems.append("database")
    try:
        client = services().redis
        client.ping()
        for queue in QUEUES:
            if live_consumers(client, queue) == 0:
                problems.append(f"no worker consumes the '{queue}' queue")
    except Exception:  # noqa: BLE001
        problems.append("redis")
    if problems:
        return jsonify({"status": "unavailable", "missing": problems}), 503
    return jsonify({"status": "ready"})
