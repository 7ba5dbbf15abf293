"""The records writer (llmproxy.jobs.writer): ended jobs from the Redis stream into the database, once each.

Jobs are ended by the real live.finish/cancel scripts against the app's Redis and the test database.
Records and dead letters use streams of this test's own: the session's writer process, started by
earlier modules, consumes the shared ones and would take the entries these tests hand to their writers.
"""

import logging
import secrets
import time
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from llmproxy.billing.cost import Prices, Usage, compute_cost
from llmproxy.ids import new_id, new_job_id
from llmproxy.jobs import events, execution, live, writer
from llmproxy.jobs.execution import PrefetchedRows
from llmproxy.jobs.live_job import LiveJob
from llmproxy.jobs.outcome import Outcome
from llmproxy.jobs.store import create_job, read_jobs
from llmproxy.jobs.writer import RecordWriter
from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import ApiKey, UsageEntry
from tests.support import records as stored

PRICES = Prices(Decimal("0.37"), Decimal("1.13"))
REQUEST = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def streams(rds, monkeypatch):
    """(records stream, dead letters) of this test alone."""
    tag = secrets.token_hex(6)
    names = (f"llmproxy:test:records:{tag}", f"llmproxy:test:records:{tag}:dead")
    monkeypatch.setattr(live, "RECORDS_STREAM", names[0])
    monkeypatch.setattr(writer, "RECORDS_STREAM", names[0])
    monkeypatch.setattr(writer, "DEAD_LETTERS", names[1])
    yield names
    rds.delete(*names)


@pytest.fixture
def key_id(make_key):
    return make_key()[1]["id"]


@pytest.fixture
def end(rds, streams):
    """End a job the way a worker does (create, claim, finish); returns (job id, outcome)."""
    made: list[str] = []

    def make(key: str, prompt: int, completion: int, status: str = "completed") -> tuple[str, Outcome]:
        job = LiveJob(new_job_id(), key, "gpt-3.5-turbo", "interactive", REQUEST, created_at_ms=int(time.time() * 1000))
        made.append(job.id)
        live.create(rds, job, lease_seconds=30)
        claim = live.claim(rds, job.id, lease_seconds=30)
        outcome = _outcome(status, Usage(prompt, completion))
        assert live.finish(rds, claim.job, claim.run, outcome, settle=True)
        return job.id, outcome

    yield make
    for job_id in made:
        live.discard(rds, job_id)
        rds.delete(events.events_key(job_id))


def _outcome(status: str, usage: Usage) -> Outcome:
    if status != "completed":
        return Outcome(status=status, error={"message": "upstream failed"}, error_status=502, latency_ms=5)
    return Outcome(
        status=status,
        result={"id": "chatcmpl-1", "choices": [{"message": {"role": "assistant", "content": "hi"}}]},
        attempts=[{"provider": "openai", "status": 200}],
        usage=usage,
        prices=PRICES,
        cost_usd=compute_cost(usage, PRICES),
        served_model="gpt-3.5-turbo",
        served_provider="openai",
        latency_ms=7,
    )


def new_writer(db, rds, name: str = "w1") -> RecordWriter:
    return RecordWriter(db, rds, consumer=name, block_ms=10)


def ledger_counts(db, job_ids) -> dict[str, int]:
    with session_scope(db) as session:
        query = select(UsageEntry.job_id, func.count()).where(UsageEntry.job_id.in_(job_ids))
        return dict(session.execute(query.group_by(UsageEntry.job_id)).all())


def dead_letters(rds, streams) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in f.items()} for _id, f in rds.xrange(streams[1])]


def assert_stored_once(db, key, ended: list[tuple[str, Outcome]]) -> None:
    """Each job's row has its outcome, each billed job one ledger row, and the key's spend is their sum."""
    for job_id, outcome in ended:
        row = stored.job(db, job_id)
        assert (row.status, row.api_key_id, row.run_count, row.cost_usd) == (outcome.status, key, 1, outcome.cost_usd)
        assert row.result == outcome.result and row.request == REQUEST
    billed = {job_id: o.cost_usd for job_id, o in ended if o.cost_usd is not None}
    assert ledger_counts(db, [job_id for job_id, _ in ended]) == dict.fromkeys(billed, 1)
    for job_id, cost in billed.items():
        assert stored.ledger(db, job_id)[0].cost_usd == cost
    assert stored.key_spend(db, key) == sum(billed.values(), Decimal(0))


def assert_stream_done(rds, streams) -> None:
    assert rds.xlen(streams[0]) == 0
    assert rds.xpending(streams[0], writer.GROUP)["pending"] == 0


def test_batch_is_stored_with_ledger_and_spend(db, rds, streams, key_id, end):
    """Ended jobs become rows with their outcome, one ledger row per billed job, and the exact summed spend."""
    ended = [end(key_id, 1000, 500), end(key_id, 123, 4567), end(key_id, 7, 1), end(key_id, 0, 0, "failed")]
    assert stored.key_spend(db, key_id) == Decimal(0)
    assert new_writer(db, rds).drain() == 4
    assert_stored_once(db, key_id, ended)
    assert stored.key_spend(db, key_id) == sum(
        (stored.cost(p, c, "0.37", "1.13") for p, c in ((1000, 500), (123, 4567), (7, 1))), Decimal(0)
    )
    assert stored.job(db, ended[3][0]).error_status == 502
    assert_stream_done(rds, streams)
    assert dead_letters(rds, streams) == []


def test_replayed_entries_store_nothing_twice(db, rds, streams, key_id, end):
    """Copies of the entries, in the same batch and in a later one, add no row, ledger entry or spend."""
    ended = [end(key_id, 100, 200), end(key_id, 300, 400), end(key_id, 5, 6)]
    copies = [fields for _id, fields in rds.xrange(streams[0])]
    assert len(copies) == 3
    for fields in copies:  # beside their originals
        rds.xadd(streams[0], fields)
    w = new_writer(db, rds)
    w.drain()
    assert_stored_once(db, key_id, ended)
    for fields in copies:  # after they were stored
        rds.xadd(streams[0], fields)
    assert w.drain() == 3
    assert_stored_once(db, key_id, ended)
    assert len(stored.jobs(db)) == 3
    assert dead_letters(rds, streams) == []
    assert_stream_done(rds, streams)


def test_entries_of_a_killed_writer_are_taken_over(db, rds, streams, key_id, end, monkeypatch):
    """Entries read but never acknowledged by a dead writer are claimed by another one and stored once."""
    ended = [end(key_id, 10, 20), end(key_id, 30, 40), end(key_id, 50, 60)]
    writer.ensure_group(rds)
    taken = rds.xreadgroup(writer.GROUP, "dead", {streams[0]: ">"}, count=100)  # then the writer dies
    assert len(taken[0][1]) == 3
    assert rds.xpending(streams[0], writer.GROUP)["consumers"] == [{"name": b"dead", "pending": 3}]
    # Not yet idle long enough: another writer leaves them alone.
    assert new_writer(db, rds, "patient").drain() == 0
    assert stored.jobs(db) == []
    monkeypatch.setattr(writer, "CLAIM_IDLE_MS", 0)
    assert new_writer(db, rds, "survivor").drain() == 3
    assert_stored_once(db, key_id, ended)
    assert_stream_done(rds, streams)


def test_malformed_entry_is_dead_lettered_without_blocking_the_batch(db, rds, streams, key_id, end):
    """A record that cannot be decoded goes to the dead letters; the good ones of its batch are stored."""
    first = end(key_id, 10, 10)
    bad_id = rds.xadd(streams[0], {"id": "job_malformed", "job": "{not json", "status": "completed"}).decode()
    second = end(key_id, 20, 20)
    round_ = new_writer(db, rds).step()
    assert (round_.read, round_.stored, round_.dead) == (3, 2, 1)
    assert_stored_once(db, key_id, [first, second])
    (dead,) = dead_letters(rds, streams)
    assert (dead["id"], dead["job"], dead["reason"], dead["entry"]) == (
        "job_malformed",
        "{not json",
        "malformed record",
        bad_id,
    )
    assert_stream_done(rds, streams)


def test_record_of_an_unknown_key_is_dead_lettered(db, rds, streams, key_id, end):
    """A record the database refuses (its key does not exist) is dead-lettered; the others are stored."""
    good = [end(key_id, 10, 10), end(key_id, 20, 20)]
    orphan, _ = end(new_id("key"), 30, 30)
    good.append(end(key_id, 40, 40))
    assert new_writer(db, rds).drain() == 3
    assert_stored_once(db, key_id, good)
    assert stored.job(db, orphan) is None and ledger_counts(db, [orphan]) == {}
    (dead,) = dead_letters(rds, streams)
    assert (dead["id"], dead["reason"]) == (orphan, "store failed")
    assert live.read(rds, orphan) is not None  # kept live: only stored jobs are forgotten
    assert_stream_done(rds, streams)


def test_stored_jobs_are_forgotten_live_and_read_from_the_database(db, rds, streams, key_id, end):
    """Once stored, a job's live copy is dropped (only its status stays a while) and the row has it."""
    job_id, outcome = end(key_id, 11, 22)
    before = live.read(rds, job_id)
    assert (before.status, before.cost_usd) == ("completed", outcome.cost_usd)
    new_writer(db, rds).drain()
    assert live.read(rds, job_id) is None
    assert rds.hget(live.live_key(job_id), "status") == b"completed"
    assert 0 < rds.ttl(live.live_key(job_id)) <= live.RECORDED_TTL_SECONDS
    assert live.claim(rds, job_id, lease_seconds=30) == "completed"
    row = stored.job(db, job_id)
    assert (row.status, row.cost_usd, row.served_provider, row.usage) == (
        "completed",
        outcome.cost_usd,
        "openai",
        {"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 33},
    )
    assert row.completed_at is not None and row.started_at is not None


def test_stored_rows_get_their_outcome_in_one_round(db, rds, streams, key_id, caplog):
    """Async jobs and batch lines have rows already: one round updates them all (no one-by-one fallback)."""
    ended: list[tuple[str, Outcome]] = []
    try:
        for prompt, completion in ((10, 20), (30, 40), (50, 60)):
            with session_scope(db) as session:
                row = create_job(session, api_key=session.get(ApiKey, key_id), body=REQUEST, queue="batch")
            claim = live.claim(rds, row.id, lease_seconds=30, stored=row)
            outcome = _outcome("completed", Usage(prompt, completion))
            assert live.finish(rds, claim.job, claim.run, outcome, settle=True)
            ended.append((row.id, outcome))
        assert {stored.job(db, job_id).status for job_id, _ in ended} == {"queued"}  # until the writer stores them
        with caplog.at_level(logging.WARNING, logger=writer.__name__):
            round_ = new_writer(db, rds).step()
        assert (round_.read, round_.stored, round_.billed, round_.dead) == (3, 3, 3, 0)
        assert [r.getMessage() for r in caplog.records] == []
        assert_stored_once(db, key_id, ended)
        assert_stream_done(rds, streams)
    finally:
        for job_id, _ in ended:
            live.discard(rds, job_id)
            rds.delete(events.events_key(job_id))


def test_a_stale_row_never_starts_a_recorded_job_again(db, rds, streams, key_id):
    """A batch message's rows are read once, before its lines run (PrefetchedRows): a line recorded since
    (by another run) still reads "queued" there, and its claim must see the recorded status in Redis."""
    with session_scope(db) as session:
        row = create_job(session, api_key=session.get(ApiKey, key_id), body=REQUEST, queue="batch")
    stale = PrefetchedRows(db, [row.id]).take(row.id)
    assert stale is not None and stale.status == "queued"
    try:
        claim = live.claim(rds, row.id, lease_seconds=30, stored=row)
        outcome = _outcome("completed", Usage(3, 4))
        assert live.finish(rds, claim.job, claim.run, outcome, settle=True)
        new_writer(db, rds).drain()
        assert stored.job(db, row.id).status == "completed"
        # The live copy is gone but its status outlives any prefetched row (ROW_FRESH_SECONDS).
        assert execution.ROW_FRESH_SECONDS < live.RECORDED_TTL_SECONDS
        assert live.claim(rds, row.id, lease_seconds=30, stored=stale) == "completed"
        assert_stored_once(db, key_id, [(row.id, outcome)])
    finally:
        live.discard(rds, row.id)
        rds.delete(events.events_key(row.id))


def test_prefetched_rows_are_handed_out_once_and_only_while_fresh(db, key_id):
    with session_scope(db) as session:
        rows = [create_job(session, api_key=session.get(ApiKey, key_id), body=REQUEST, queue="batch") for _ in "ab"]
    ids = [r.id for r in rows]
    now = [100.0]
    prefetched = PrefetchedRows(db, [*ids, "job_missing"], clock=lambda: now[0])
    first = prefetched.take(ids[0])
    assert first is not None and (first.id, first.request, first.queue) == (ids[0], REQUEST, "batch")
    assert prefetched.take(ids[0]) is None  # once
    assert prefetched.take("job_missing") is None
    now[0] += execution.ROW_FRESH_SECONDS
    assert prefetched.take(ids[1]) is None  # too old: execute_job reads it again
    with session_scope(db) as session:
        assert sorted(read_jobs(session, [*ids, "job_missing"])) == sorted(ids)
        assert read_jobs(session, []) == {}
