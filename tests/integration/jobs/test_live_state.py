"""In-flight jobs in the app's Redis (llmproxy.jobs.live): claim, finish, cancel, leases, due, batch ending marks.

Records go to a stream of each test's own (the scripts take its name as a KEY): the session's writer
process, started by earlier modules, consumes the shared one and would race the counts."""

import json
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from llmproxy.billing.cost import Prices, Usage, compute_cost
from llmproxy.catalog import snapshots
from llmproxy.devtools.waiting import wait_for
from llmproxy.ids import new_id, new_job_id
from llmproxy.jobs import events, live
from llmproxy.jobs.events import Cancelled, Done
from llmproxy.jobs.lease import LeaseRenewer
from llmproxy.jobs.live_job import LiveJob
from llmproxy.jobs.outcome import Outcome
from llmproxy.limits import reservations
from llmproxy.storage.models import Job

SHORT = 0.05  # a lease that lapses at once
LONG = 30.0
USAGE, PRICES = Usage(30, 20), Prices(Decimal("0.5"), Decimal("1.5"))
COST = compute_cost(USAGE, PRICES)
REQUEST = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def stream(rds, monkeypatch):
    name = f"llmproxy:test:records:{secrets.token_hex(6)}"
    monkeypatch.setattr(live, "RECORDS_STREAM", name)
    yield name
    rds.delete(name)


@pytest.fixture
def job_ids(rds, stream):
    """Fresh job ids whose Redis state is removed after the test."""
    made: list[str] = []

    def make() -> str:
        made.append(new_job_id())
        return made[-1]

    yield make
    for job_id in made:
        live.discard(rds, job_id)
        rds.delete(events.events_key(job_id), events.cancel_key(job_id))


@pytest.fixture
def new_job(rds, job_ids):
    """Create a live, queued interactive job; returns its id."""

    def make(lease_seconds: float = LONG, key_id: str = "key_live_tests") -> str:
        job = LiveJob(job_ids(), key_id, "gpt-3.5-turbo", "interactive", REQUEST, created_at_ms=int(time.time() * 1000))
        live.create(rds, job, lease_seconds=lease_seconds)
        return job.id

    return make


def completed() -> Outcome:
    result = {"id": "chatcmpl-1", "choices": [{"message": {"role": "assistant", "content": "hello"}}]}
    return Outcome("completed", result, attempts=[{"provider": "openai", "status": 200}], usage=USAGE,
                   prices=PRICES, cost_usd=COST, served_model="gpt-3.5-turbo", served_provider="openai", latency_ms=12)  # fmt: skip


def records_of(rds, stream, job_id) -> list[dict[str, str]]:
    entries = [{k.decode(): v.decode() for k, v in fields.items()} for _id, fields in rds.xrange(stream)]
    return [entry for entry in entries if entry["id"] == job_id]


def redis_ms(rds) -> int:
    seconds, micros = rds.time()
    return seconds * 1000 + micros // 1000


def lease_of(rds, job_id) -> int:
    return int(rds.hget(live.live_key(job_id), "lease"))


def claimed_again(rds, job_id, lease_seconds=LONG) -> live.Claim:
    """Poll until the lapsed lease lets a new run claim the job."""

    def attempt():
        result = live.claim(rds, job_id, lease_seconds=lease_seconds)
        return result if isinstance(result, live.Claim) else None

    return wait_for(attempt, timeout=10, interval=0.01, message=f"a new run of {job_id}")


def race_to_claim(rds, job_id: str, threads: int = 8) -> list[live.Claim | str]:
    barrier = threading.Barrier(threads)

    def claim(_):
        barrier.wait()
        return live.claim(rds, job_id, lease_seconds=LONG)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(claim, range(threads)))


def stored_row(
    job_id: str, batch_id: str | None = None
) -> Job:  # a stored job's row, as a worker passes it to its first claim
    return Job(id=job_id, api_key_id="key_live_tests", model="gpt-3.5-turbo", queue="batch", request=REQUEST,
               stream=False, run_count=0, batch_id=batch_id, created_at=datetime.now(UTC))  # fmt: skip


def test_claimed_once(rds, new_job):
    """A queued job is claimed by one run; a second claim is refused while that run's lease holds."""
    job_id = new_job()
    first = live.claim(rds, job_id, lease_seconds=LONG)
    assert (first.run, first.job.id, first.job.status, first.job.request) == (1, job_id, "in_progress", REQUEST)
    assert live.claim(rds, job_id, lease_seconds=LONG) == "in_progress"
    assert live.claim(rds, new_job_id(), lease_seconds=LONG) == "missing"


def test_the_claim_reads_the_cancel_flag_and_the_configuration_version(rds, new_job):
    """What the worker would otherwise read in two more round trips comes back with the claim."""
    asked, quiet = new_job(), new_job()
    events.request_cancel(rds, asked)  # the caller left before a worker took it
    version = rds.incr(snapshots.VERSION_KEY)
    first, second = live.claim(rds, asked, lease_seconds=LONG), live.claim(rds, quiet, lease_seconds=LONG)
    assert (first.cancel_asked, second.cancel_asked) == (True, False)
    assert first.config_version == second.config_version == str(version).encode()
    cache = snapshots.Snapshots(ttl=60)
    cache.observe(first.config_version)
    cache.get("entry", lambda: "old")
    cache.observe(str(version + 1).encode())  # another claim saw a newer version: the cache starts over
    assert cache.get("entry", lambda: "new") == "new"


def test_racing_claims_have_one_winner(rds, new_job):
    """Eight threads claiming the same job at once: exactly one run wins, the others see 'in_progress'."""
    for _ in range(10):
        results = race_to_claim(rds, new_job())
        winners = [r for r in results if isinstance(r, live.Claim)]
        assert len(winners) == 1 and winners[0].run == 1
        assert sorted(r for r in results if isinstance(r, str)) == ["in_progress"] * 7


def test_lapsed_run_is_taken_over_and_its_finish_changes_nothing(rds, stream, new_job):
    """After run 1's lease lapses run 2 claims the job; run 1's finish is refused and leaves no trace."""
    job_id = new_job()
    first = live.claim(rds, job_id, lease_seconds=SHORT)
    second = claimed_again(rds, job_id)
    assert (first.run, second.run) == (1, 2)
    assert live.finish(rds, first.job, first.run, completed(), settle=True) is False
    assert records_of(rds, stream, job_id) == [] and events.read(rds, job_id) == []
    state = live.read(rds, job_id)
    assert (state.status, state.run_count, state.result) == ("in_progress", 2, None)
    assert live.finish(rds, second.job, second.run, completed(), settle=True) is True
    assert [(r["status"], r["run"]) for r in records_of(rds, stream, job_id)] == [("completed", "2")]


def test_finish_appends_one_record_and_one_done_event(rds, stream, new_job):
    """finish() stores the outcome live, appends exactly one record and one Done event; a repeat is refused."""
    job_id = new_job()
    claim = live.claim(rds, job_id, lease_seconds=LONG)
    assert live.finish(rds, claim.job, claim.run, completed(), settle=True) is True
    assert live.finish(rds, claim.job, claim.run, completed(), settle=True) is False
    (record,) = records_of(rds, stream, job_id)
    job, final, charge = (json.loads(record[field]) for field in ("job", "final", "charge"))
    assert (record["status"], record["run"], job["api_key_id"]) == ("completed", "1", "key_live_tests")
    assert Decimal(final["cost_usd"]) == Decimal(charge["cost_usd"]) == COST
    ((run, done),) = [(received.run, received.event) for received in events.read(rds, job_id)]
    assert run == 1 and isinstance(done, Done) and done.result == completed().result
    assert (done.status, Decimal(done.cost_usd), done.served_model) == ("completed", COST, "gpt-3.5-turbo")
    state = live.read(rds, job_id)
    assert (state.status, state.cost_usd, state.served_provider) == ("completed", COST, "openai")
    assert live.claim(rds, job_id, lease_seconds=LONG) == "completed"
    assert rds.zscore(live.LEASES_KEY, job_id) is None


def test_finish_settles_the_reservation_once(rds, new_job):
    """finish() swaps the job's token and cost reservation for its real usage; settling again changes nothing."""
    key_id = new_id("key")
    limits = reservations.KeyLimits(tpm=1000)
    job_id = new_job(key_id=key_id)
    assert reservations.reserve(
        rds, key_id=key_id, request_id=job_id, limits=limits, tokens=500,
        max_cost_usd=Decimal("0.01"), spent_usd=Decimal(0),
    ).allowed  # fmt: skip
    before = reservations.peek(rds, key_id=key_id, limits=limits)
    assert (before.remaining_tokens, before.reserved_cost_usd) == (500, Decimal("0.01"))
    claim = live.claim(rds, job_id, lease_seconds=LONG)
    assert live.finish(rds, claim.job, claim.run, completed(), settle=True)
    after = reservations.peek(rds, key_id=key_id, limits=limits)
    assert (after.remaining_tokens, after.reserved_cost_usd) == (1000 - 50, Decimal(0))
    spent = rds.get(reservations.limit_keys(key_id).spent)
    assert int(spent) == int(COST * reservations.NANO_PER_USD)
    assert not reservations.settle(rds, key_id=key_id, request_id=job_id, actual_tokens=400, actual_cost_usd=COST)
    assert reservations.peek(rds, key_id=key_id, limits=limits).remaining_tokens == 950
    assert rds.get(reservations.limit_keys(key_id).spent) == spent


def test_cancel_of_a_queued_job(rds, stream, new_job):
    """Cancelling a queued job ends it at once: Cancelled event, one record, and no run can claim it later."""
    job_id = new_job()
    assert live.cancel(rds, job_id, stored=False) == "queued"
    ((run, event),) = [(received.run, received.event) for received in events.read(rds, job_id)]
    assert run == 0 and isinstance(event, Cancelled) and event.error["code"] == "cancelled"
    (record,) = records_of(rds, stream, job_id)
    assert (record["status"], record["charge"]) == ("cancelled", "")
    assert live.claim(rds, job_id, lease_seconds=LONG) == "cancelled"
    assert live.cancel(rds, job_id, stored=False) == "cancelled"
    assert len(records_of(rds, stream, job_id)) == 1
    state = live.read(rds, job_id)
    assert (state.status, state.error["code"]) == ("cancelled", "cancelled")


def test_cancel_of_a_running_job_asks_it_to_stop(rds, stream, new_job):
    """Cancelling a running job only sets its cancel flag: the run keeps the job and finishes it."""
    job_id = new_job()
    claim = live.claim(rds, job_id, lease_seconds=LONG)
    assert not events.cancel_requested(rds, job_id) and live.cancel(rds, job_id, stored=False) == "in_progress"
    assert events.cancel_requested(rds, job_id) is True
    assert records_of(rds, stream, job_id) == [] and events.read(rds, job_id) == []
    assert live.read(rds, job_id).status == "in_progress"
    assert live.finish(rds, claim.job, claim.run, completed(), settle=False) is True


def test_cancel_of_an_unclaimed_stored_job_leaves_a_tombstone(rds, stream, job_ids):
    """cancel(stored=True) of a job with no live state makes a later first claim from its row fail."""
    cancelled, plain, unstored = job_ids(), job_ids(), job_ids()
    assert live.cancel(rds, cancelled, stored=True) == "missing"
    assert live.claim(rds, cancelled, lease_seconds=LONG, stored=stored_row(cancelled)) == "cancelled"
    assert live.read(rds, cancelled) is None
    assert records_of(rds, stream, cancelled) == [] and events.read(rds, cancelled) == []
    # Without the tombstone the same claim wins; an unstored job's cancel leaves none.
    claim = live.claim(rds, plain, lease_seconds=LONG, stored=stored_row(plain))
    assert isinstance(claim, live.Claim) and (claim.run, claim.job.queue) == (1, "batch")
    assert live.cancel(rds, unstored, stored=False) == "missing"
    assert isinstance(live.claim(rds, unstored, lease_seconds=LONG, stored=stored_row(unstored)), live.Claim)


def test_a_batch_ending_mark_keeps_its_lines_from_starting(rds, job_ids):
    """Once a batch is being cancelled no line of it makes its first claim; lines already claimed go on."""
    batch_id = new_id("batch")
    running, waiting, elsewhere = job_ids(), job_ids(), job_ids()
    try:
        first = live.claim(rds, running, lease_seconds=SHORT, stored=stored_row(running, batch_id))
        assert isinstance(first, live.Claim)
        live.mark_batch_ending(rds, batch_id, seconds=30)
        assert live.claim(rds, waiting, lease_seconds=LONG, stored=stored_row(waiting, batch_id)) == "cancelled"
        assert isinstance(
            live.claim(rds, elsewhere, lease_seconds=LONG, stored=stored_row(elsewhere, "batch_x")), live.Claim
        )
        assert live.started(rds, [running, waiting, elsewhere]) == {running, elsewhere}
        # The line that had started is taken over by a new run when its lease lapses (a dead worker's).
        assert claimed_again(rds, running).run == first.run + 1
    finally:
        rds.delete(live.batch_ending_key(batch_id))


def test_read_many_reads_live_jobs_in_one_round_trip(rds, new_job, job_ids):
    """read_many() returns the jobs that have a live state, as read() does, and leaves out the others."""
    queued, running, unknown = new_job(), new_job(), job_ids()
    live.claim(rds, running, lease_seconds=LONG)
    found = live.read_many(rds, [queued, running, unknown])
    assert set(found) == {queued, running}
    assert (found[queued].status, found[running].status, found[running].run_count) == ("queued", "in_progress", 1)


def test_read_shows_status_owner_and_run(rds, new_job):
    """read() returns the job as its live state has it, before and after a claim; None for an unknown job."""
    job_id = new_job(key_id="key_owner")
    q = live.read(rds, job_id)
    assert (q.id, q.api_key_id, q.status, q.run_count, q.started_at) == (job_id, "key_owner", "queued", 0, None)
    assert (q.model, q.queue, q.request) == ("gpt-3.5-turbo", "interactive", REQUEST)
    live.claim(rds, job_id, lease_seconds=LONG)
    r = live.read(rds, job_id)
    assert (r.status, r.run_count, r.api_key_id, r.started_at is not None) == ("in_progress", 1, "key_owner", True)
    assert live.read(rds, new_job_id()) is None


def test_due_returns_lapsed_jobs_once_per_lease(rds, new_job):
    """due() lists jobs whose lease lapsed (queued or running) with their queue, and re-leases them."""
    queued, alive, running = new_job(lease_seconds=SHORT), new_job(lease_seconds=LONG), new_job()
    live.claim(rds, running, lease_seconds=SHORT)
    seen: dict[str, str] = {}

    def both_due():
        seen.update(live.due(rds, lease_seconds=LONG))
        return {queued, running} <= seen.keys()

    wait_for(both_due, timeout=10, interval=0.01, message="both lapsed jobs to be due")
    assert (seen[queued], seen[running], alive in seen) == ("interactive", "interactive", False)
    again = dict(live.due(rds, lease_seconds=LONG))
    assert not {queued, running, alive} & again.keys()
    assert rds.zscore(live.LEASES_KEY, running) > redis_ms(rds) + (LONG - 5) * 1000
    # The lease itself stays lapsed, so the re-sent task can claim the job.
    assert live.claim(rds, running, lease_seconds=LONG).run == 2


def test_lease_renewer_keeps_a_run_alive(rds, new_job):
    """renew_now() extends a held run's lease, so it outlives its first lease; an unheld run's lapses."""
    held, unheld = new_job(), new_job()
    live.claim(rds, held, lease_seconds=SHORT), live.claim(rds, unheld, lease_seconds=SHORT)
    first_lease = lease_of(rds, unheld)
    renewer = LeaseRenewer(rds, lease_seconds=LONG)
    with renewer.holding(held, 1):
        renewer.renew_now()
        renewed = lease_of(rds, held)
        assert renewed > redis_ms(rds) + (LONG - 5) * 1000
        assert rds.zscore(live.LEASES_KEY, held) == renewed
        wait_for(lambda: redis_ms(rds) > first_lease, timeout=5, interval=0.01, message="the first lease to end")
        assert live.claim(rds, held, lease_seconds=LONG) == "in_progress"
        assert live.claim(rds, unheld, lease_seconds=LONG).run == 2


def test_lease_renewer_drops_a_run_that_lost_the_job(rds, new_job):
    """A run taken over by another is not renewed (the new run's lease is untouched) and is dropped."""
    job_id = new_job()
    live.claim(rds, job_id, lease_seconds=SHORT)
    renewer = LeaseRenewer(rds, lease_seconds=LONG)
    renewer.hold(job_id, 1)
    try:
        assert claimed_again(rds, job_id, lease_seconds=SHORT).run == 2
        second_lease = lease_of(rds, job_id)
        renewer.renew_now()
        assert lease_of(rds, job_id) == second_lease
        assert job_id not in renewer._runs  # dropped: later rounds leave the job alone
        renewer.hold(job_id, 2)
        renewer.renew_now()
        assert lease_of(rds, job_id) > second_lease + (LONG - 5) * 1000
    finally:
        renewer.release(job_id)
