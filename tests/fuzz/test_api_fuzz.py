"""Property-based fuzzing of every operation of /openapi.json with schemathesis, on the real app and databases.

Each operation gets cases that follow its schema (positive) and cases that break it (negative), sent with the
credentials its `security` names. Every response must be no 5xx, a status and content type the document
declares, and a body matching the declared schema; input the schema refuses must be refused; and a refused
request changes nothing: every row of every table, and every queue, is as it was before.

`FUZZ_EXAMPLES` sets the examples per operation and mode: a few in `make test`, many in `make fuzz`.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from redis import Redis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from llmproxy.config import load_settings
from llmproxy.jobs.queues import Queue, queue_depth
from llmproxy.storage.models import Base
from tests.support.processes import ADMIN_KEY, base_env
from web import create_app
from web.openapi.document import build_document

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
TALLY: Counter[str] = Counter()
SENT_TO: set[str] = set()  # the operations that got at least one case


def _operations() -> list[tuple[str, str, GenerationMode]]:
    # The document of an app that is built but never connected (building one touches no database).
    app = create_app(load_settings({**base_env(), "DATABASE_URL": "sqlite://", "REDIS_URL": "redis://127.0.0.1:1/0"}))
    found = []
    for path, item in build_document(app)["paths"].items():
        for method, declared in item.items():
            found.append((method.upper(), path, GenerationMode.POSITIVE))
            # Negative cases need something to get wrong: a body, a query parameter or a header (a path
            # parameter is any non-empty string, and an empty one cannot be sent).
            inputs = [p for p in declared.get("parameters", []) if p["in"] != "path"]
            if inputs or declared.get("requestBody"):
                found.append((method.upper(), path, GenerationMode.NEGATIVE))
    return found


OPERATIONS = _operations()


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    """Print what was sent (operations, cases, refusals) once the module is done."""
    yield
    print(
        f"\nfuzz: {len(SENT_TO)} operations, {TALLY['cases']} cases ({EXAMPLES} examples per operation and mode), "
        f"{TALLY['refused']} refused, {TALLY['accepted']} accepted"
    )


def state(session_factory, redis_client) -> tuple:
    """Every row of every table, and every queue's depth: what a refused request must leave as it was."""
    with session_factory() as session:
        rows = tuple(
            (table.name, sorted(map(repr, session.execute(select(table)).all())))
            for table in Base.metadata.sorted_tables
        )
    return rows, tuple(queue_depth(redis_client, queue) for queue in Queue)


def credentials(operation, key_secret: str) -> dict[str, str]:
    """The bearer token the operation's `security` asks for (none where it is public)."""
    names = {name for requirement in operation.definition.raw.get("security") or [] for name in requirement}
    if "virtualKey" in names:
        return {"Authorization": f"Bearer {key_secret}"}
    if "adminKey" in names:
        return {"Authorization": f"Bearer {ADMIN_KEY}"}
    return {}


@pytest.mark.parametrize(("method", "path", "mode"), OPERATIONS, ids=[f"{m} {p} {g.value}" for m, p, g in OPERATIONS])
def test_every_operation_holds_to_the_document(method, path, mode, app, make_key, db, redis_url):
    secret, _ = make_key(name="fuzz")
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    # Credentials are ours to send (refusing bad ones is tested apart); unknown query parameters are ignored,
    # as OpenAI's API ignores them, so they are not "invalid input" here.
    schema.config.generation.update(with_security_parameters=False, allow_extra_parameters=False)
    # A body refused for its size or its number of multipart parts (413) is refused too.
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    operation = schema[path][method]
    headers = credentials(operation, secret)
    # /readyz answers 503 by design here (no worker runs in this test): its 503 is a declared answer, not a fault.
    checks = [check for check in CHECKS if not (path == "/readyz" and check is not_a_server_error)]
    client = Redis.from_url(redis_url)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def holds(case):
        before = state(db, client)
        response = case.call(headers={**(case.headers or {}), **headers})
        TALLY["cases"] += 1
        SENT_TO.add(f"{method} {path}")
        case.validate_response(response, checks=checks)
        if response.status_code >= 400:
            TALLY["refused"] += 1
            assert state(db, client) == before, f"refused with {response.status_code}, yet the state changed"
        else:
            TALLY["accepted"] += 1

    try:
        holds()
    finally:
        client.close()
