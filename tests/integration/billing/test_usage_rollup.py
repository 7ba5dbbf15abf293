"""The usage rollup sums exactly what the ledger holds, once: the writer adds each new ledger row and each newly
failed job to its minute and hour in the billing transaction (replayed records add nothing), and a rebuild from
the ledger gives the same sums."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from sqlalchemy import func, select

from llmproxy.billing import rollup
from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import UsageEntry
from llmproxy.storage.rollups import HOUR, LATENCY_BUCKETS, MINUTE, ErrorRollup, UsageRollup
from tests.integration.jobs.test_writer import end, new_writer, streams  # noqa: F401 - fixtures and helpers


def sums(db) -> dict:
    """Per granularity: (requests, prompt, completion, cost, histogram total) of the rollup; and the ledger's."""
    with session_scope(db) as session:
        result = {}
        for granularity in (MINUTE, HOUR):
            row = session.execute(
                select(
                    func.sum(UsageRollup.requests),
                    func.sum(UsageRollup.prompt_tokens),
                    func.sum(UsageRollup.completion_tokens),
                    func.sum(UsageRollup.cost_usd),
                    sum(func.sum(getattr(UsageRollup, b)) for b in LATENCY_BUCKETS),
                ).where(UsageRollup.granularity == granularity)
            ).one()
            result[granularity] = tuple(row)
        ledger = session.execute(
            select(
                func.count(),
                func.sum(UsageEntry.prompt_tokens),
                func.sum(UsageEntry.completion_tokens),
                func.sum(UsageEntry.cost_usd),
                func.count(UsageEntry.latency_ms),
            )
        ).one()
        result["ledger"] = tuple(ledger)
        result["errors"] = Counter(
            {
                (g, code): n
                for g, code, n in session.execute(
                    select(ErrorRollup.granularity, ErrorRollup.code, func.sum(ErrorRollup.count)).group_by(
                        ErrorRollup.granularity, ErrorRollup.code
                    )
                )
            }
        )
    return result


def test_the_rollup_sums_the_ledger_once_and_a_rebuild_agrees(db, rds, streams, make_key, end):  # noqa: F811
    keys = [make_key()[1]["id"] for _ in range(2)]
    for i in range(6):
        end(keys[i % 2], 100 + i, 10 * i)
    for _ in range(2):
        end(keys[0], 0, 0, status="failed")
    copies = [fields for _id, fields in rds.xrange(streams[0])]
    for fields in copies:  # every record replayed: nothing more is billed, so nothing more is summed
        rds.xadd(streams[0], fields)
    new_writer(db, rds).drain()

    first = sums(db)
    requests, prompt, completion, cost, timed = first["ledger"]
    assert requests == 6 and prompt == sum(100 + i for i in range(6)) and timed == 6
    expected = (6, prompt, completion, Decimal(cost), 6)
    assert first[MINUTE] == first[HOUR] == expected
    assert first["errors"] == {(MINUTE, "error"): 2, (HOUR, "error"): 2}

    with session_scope(db) as session:
        assert rollup.rebuild(session) == 6
    assert sums(db) == first
    with session_scope(db) as session:
        assert rollup.fill_if_empty(session) == 0  # not empty: left alone
