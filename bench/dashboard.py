"""`python -m bench.dashboard`: how fast the dashboard's pages answer over a large generated ledger.

Creates its own PostgreSQL database (dropped and made again each run), migrates it, writes `--rows` ledger
rows spread over 30 days across `--keys` keys and five models (with the failed jobs beside them), fills the
usage rollup from them as `setup` does after an upgrade, then times each page through the app (signed in,
the test client: no network in the figure), `--repeat` times each, and prints the median and the worst.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import insert

from bench.proxy import DEFAULT_REDIS_URL, prepare_database, prepare_redis
from llmproxy.billing import rollup
from llmproxy.config import load_settings
from llmproxy.storage import migrate
from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import ApiKey, UsageEntry

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/llmproxy_bench_dashboard"
MODELS = ("gpt-4o-mini", "gpt-4o", "mistral-small", "claude-sonnet-4-5", "text-embedding-3-small")
PAGES = (
    "/dashboard/overview?range=24h",
    "/dashboard/overview.json?range=7d",
    "/dashboard/overview.json?range=30d",
    "/dashboard/usage?group_by=model",
    "/dashboard/usage?group_by=key",
    "/dashboard/usage?group_by=day&format=csv",
    "/dashboard/keys",
    "/dashboard/models",
    "/dashboard/work",
)
CHUNK = 20_000


def generate(session_factory, rows: int, keys: int) -> None:
    """Keys, and `rows` ledger rows over the last 30 days (a fixed seed: the same data every run)."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    with session_scope(session_factory) as session:
        session.execute(
            insert(ApiKey),
            [
                {"id": f"key_bench{i:04d}", "name": f"team-{i}", "key_hash": f"h{i}", "prefix": f"sk-{i:04d}"}
                for i in range(keys)
            ],
        )
    for start in range(0, rows, CHUNK):
        batch = []
        for n in range(start, min(rows, start + CHUNK)):
            model = MODELS[n % len(MODELS)]
            prompt, completion = rng.randint(10, 4000), rng.randint(0, 800)
            batch.append(
                {
                    "job_id": f"job_bench{n:09d}",
                    "api_key_id": f"key_bench{rng.randrange(keys):04d}",
                    "model_requested": model,
                    "model_served": model,
                    "provider_served": "openai" if model.startswith(("gpt", "text")) else model.split("-")[0],
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "cost_usd": Decimal(prompt * 150 + completion * 600) / 10**9,
                    "latency_ms": int(rng.lognormvariate(6.5, 0.6)),
                    "outcome": "completed",
                    "created_at": now - timedelta(seconds=rng.uniform(0, 30 * 86400)),
                }
            )
        with session_scope(session_factory) as session:
            session.execute(insert(UsageEntry), batch)


def time_pages(app, repeat: int) -> list[tuple[str, float, float]]:
    """(page, median ms, worst ms) of each page, signed in."""
    client = app.test_client()
    settings = app.extensions["llmproxy"].settings
    assert client.post("/dashboard/login", data={"admin_key": settings.admin_api_key}).status_code == 302
    results = []
    for page in PAGES:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.get(page)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (page, response.status_code)
        results.append((page, statistics.median(times), max(times)))
    return results


def main(argv: list[str] | None = None) -> None:
    """Generate, fill the rollup, time the pages, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    args = parser.parse_args(argv)
    prepare_database(args.database_url, fresh=True)
    prepare_redis(args.redis_url)
    import os

    os.environ.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        ENCRYPTION_KEY=os.environ.get("ENCRYPTION_KEY", "ab" * 32),
        ADMIN_API_KEY=os.environ.get("ADMIN_API_KEY", "bench-dashboard-admin-key"),
    )
    from web import create_app

    settings = load_settings()
    migrate.upgrade(settings.database_url)
    app = create_app(settings)
    factory = app.extensions["llmproxy"].session_factory
    started = time.perf_counter()
    generate(factory, args.rows, args.keys)
    print(f"{args.rows} ledger rows written in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    with session_scope(factory) as session:
        summed = rollup.fill_if_empty(session)
    print(f"rollup filled from {summed} ledger rows in {time.perf_counter() - started:.1f} s", flush=True)
    print(f"{'page':45} {'median ms':>10} {'worst ms':>10}")
    for page, median, worst in time_pages(app, args.repeat):
        print(f"{page:45} {median:10.1f} {worst:10.1f}")


if __name__ == "__main__":
    main()
