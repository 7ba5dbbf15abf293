"""Operations routes: liveness, readiness, metrics."""

from __future__ import annotations

import hmac
import logging

import redis
from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from llmproxy import json_schema as js
from llmproxy.catalog.deployment_config import all_deployments
from llmproxy.errors import ApiError
from llmproxy.jobs.deployment_choice import cooldowns
from llmproxy.jobs.queues import Queue, queue_depth
from llmproxy.jobs.records import RECORDS_STREAM
from llmproxy.jobs.writer import ROLE as WRITER_ROLE
from llmproxy.telemetry import metrics
from llmproxy.telemetry.heartbeats import live_consumers
from web.auth import bearer_token
from web.context import db, resources
from web.openapi.document import build_document
from web.openapi.operation import Auth, Reply, json_reply, operation

log = logging.getLogger(__name__)
bp = Blueprint("ops", __name__)


_READINESS = js.obj(
    {"status": js.enum(("ready", "unavailable")), "missing": js.array(js.string())}, required=["status"], extra=False
)


@bp.get("/healthz")
@operation(auth=Auth.NONE, replies={200: json_reply("The process serves.", js.record({"status": js.const("ok")}))})
def healthz():
    """200 while the process serves."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@operation(
    auth=Auth.NONE,
    replies={
        200: json_reply("Ready to serve.", _READINESS),
        503: json_reply("Not ready; `missing` names what lacks (to METRICS_TOKEN holders if one is set).", _READINESS),
    },
)
def readyz():
    """200 when the database and Redis answer, each queue has a worker and a writer runs; else 503 naming what lacks."""
    problems: list[str] = []
    try:
        db().execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means "not ready", reported below
        problems.append("database")
    try:
        client = resources().redis
        client.ping()
        for queue in list(Queue):
            if live_consumers(client, queue) == 0:
                problems.append(f"no worker consumes the '{queue}' queue")
        if live_consumers(client, WRITER_ROLE) == 0:
            problems.append("no writer stores ended jobs")
    except Exception:  # noqa: BLE001
        problems.append("redis")
    if problems:
        # The details name the deployment's parts: only for holders of METRICS_TOKEN when one is set.
        body = {"status": "unavailable", "missing": problems} if _may_see_metrics() else {"status": "unavailable"}
        return jsonify(body), 503
    return jsonify({"status": "ready"})


@bp.get("/metrics")
@operation(
    auth=Auth.METRICS,
    replies={200: Reply("Prometheus text exposition.", {"text/plain": js.string()})},
)
def prometheus_metrics():
    """Prometheus text: requests, upstream attempts, queue depth, job latency, tokens and cost by model."""
    if not _may_see_metrics():
        raise ApiError(
            401,
            "This route needs the METRICS_TOKEN as a bearer token",
            type="authentication_error",
            code="invalid_metrics_token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        resources().counters.flush()  # this process's own counts, up to now
    except Exception:  # noqa: BLE001 - Redis is down: render() below says so with a 5xx
        pass
    client = resources().redis
    depths = {queue.value: queue_depth(client, queue) for queue in Queue}
    backlog = int(client.xlen(RECORDS_STREAM))
    text = metrics.render(client, queue_depths=depths, records_backlog=backlog, deployments=_deployment_health(client))
    return Response(text, mimetype="text/plain; version=0.0.4")


def _deployment_health(client: redis.Redis) -> list[metrics.DeploymentHealth] | None:
    """Every deployment with its cooldown; None when the database does not answer (the rest still renders)."""
    try:
        listed = all_deployments(db())
    except SQLAlchemyError:
        log.warning("deployment health left out of /metrics: the database did not answer")
        return None
    cooling = cooldowns(client, [d.id for _, d in listed])
    return [metrics.DeploymentHealth(model, d.id, d.provider.name, d.enabled, cooling[d.id]) for model, d in listed]


@bp.get("/openapi.json")
@operation(auth=Auth.NONE, replies={200: json_reply("The OpenAPI 3.1 document.", js.obj({"openapi": js.string()}))})
def openapi_document():
    """This API's OpenAPI 3.1 document, generated from the routes' own schemas."""
    document = current_app.extensions.get("openapi_document")
    if document is None:  # built once per process: the routes do not change while it runs
        document = current_app.extensions["openapi_document"] = build_document(current_app)
    return jsonify(document)


def _may_see_metrics() -> bool:
    """True without a METRICS_TOKEN setting, else only for `Authorization: Bearer <METRICS_TOKEN>`."""
    expected = resources().settings.metrics_token
    if expected is None:
        return True
    token = bearer_token()
    return token is not None and hmac.compare_digest(token.encode(), expected.encode())


def init_metrics(app) -> None:
    """Count every response by route template (never the raw path: ids would explode the label set)."""
    import logging

    from flask import request

    log = logging.getLogger(__name__)

    @app.after_request
    def _count(response):
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        if route != "/metrics":
            try:
                metrics.record_http(
                    resources().counters, route=route, method=request.method, status=response.status_code
                )
            except Exception:
                log.warning("could not record a metric", exc_info=True)
        return response
