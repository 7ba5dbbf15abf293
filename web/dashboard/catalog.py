"""The dashboard's models and providers page: chains, prices, deployments with their health, recent failures."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import redis
from flask import render_template
from sqlalchemy import select

from llmproxy.catalog.model_config import list_models, model_json
from llmproxy.catalog.provider_config import list_providers, provider_json
from llmproxy.jobs.deployment_choice import cooldowns
from llmproxy.storage.models import Job
from llmproxy.storage.timestamps import utcnow
from web.context import db, resources
from web.dashboard.blueprint import bp
from web.dashboard.signin import admin_page

RECENT = timedelta(hours=1)
RECENT_JOBS = 500  # the newest ended jobs of the last hour whose attempts are read


@bp.get("/models")
@admin_page
def models() -> Any:
    """Every model with its fallback chain, prices and deployments (cooling ones marked); providers; failures."""
    shown = [model_json(m) for m in list_models(db())]
    ids = [d["id"] for m in shown for d in m["deployments"]]
    try:
        cooling = cooldowns(resources().redis, ids) if ids else {}
    except redis.RedisError:
        cooling = {}  # health unknown: shown as such rather than failing the page
    failures, by_provider = _recent_failures()
    return render_template(
        "dashboard/models.html",
        models=shown,
        providers=[provider_json(p) for p in list_providers(db())],
        cooling=cooling,
        health_known=bool(cooling) or not ids,
        failures=failures,
        failures_by_provider=by_provider,
    )


def _recent_failures() -> tuple[list[dict[str, Any]], Counter[str]]:
    """The failed upstream attempts of the last hour's newest ended jobs: the latest 20, and a count per provider."""
    since = utcnow() - RECENT
    rows = db().execute(
        select(Job.id, Job.completed_at, Job.attempts)
        .where(Job.completed_at >= since)
        .order_by(Job.completed_at.desc())
        .limit(RECENT_JOBS)
    )
    failures: list[dict[str, Any]] = []
    for job_id, ended, attempts in rows:
        for attempt in attempts or []:
            if attempt.get("outcome") not in ("ok", "cancelled"):
                failures.append({**attempt, "job_id": job_id, "at": ended})
    by_provider = Counter(str(f.get("provider")) for f in failures)
    return failures[:20], by_provider
