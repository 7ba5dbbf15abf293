"""Per-key RPM / TPM / budget limits on a real Redis; time is moved by passing `now`."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
import redis as redis_lib

from llmproxy.limits import reservations
from llmproxy.limits.reservations import KeyLimits, limit_keys, peek, release, reserve, settle

KEY = "key_test"
T0 = 1_000_000.0  # an arbitrary clock origin in seconds


def admit(client, rid, lim, now, *, tokens=0, cost="0", spent="0", key=KEY, **kw):
    """reserve() with short argument names; money as strings."""
    return reserve(
        client,
        key_id=key,
        request_id=rid,
        limits=lim,
        tokens=tokens,
        max_cost_usd=Decimal(cost),
        spent_usd=Decimal(spent),
        now=now,
        **kw,
    )


def snapshot(client):
    """Every key with its full content, to prove that a call recorded nothing."""
    out = {}
    for key in sorted(client.keys("*")):
        kind = client.type(key)
        if kind == b"zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"hash":
            out[key] = client.hgetall(key)
        else:
            out[key] = client.dump(key)
    return out


def run_concurrently(redis_client, n, fn):
    """Call fn(client, i) for i in range(n) from n threads, each with its own client, released together."""
    # same server and database as the fixture's client, whatever conftest chose
    params = {k: redis_client.connection_pool.connection_kwargs.get(k) for k in ("host", "port", "db", "password")}
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def worker(i):
        client = redis_lib.Redis(**params)
        try:
            client.ping()
            barrier.wait()
            results[i] = fn(client, i)
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            results[i] = exc
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    return results


# --- RPM -------------------------------------------------------------------


def test_rpm_admits_exactly_limit(redis_client):
    lim = KeyLimits(rpm=5)
    results = [admit(redis_client, f"r{i}", lim, T0 + i * 0.5) for i in range(15)]
    assert [r.allowed for r in results] == [True] * 5 + [False] * 10
    assert [r.remaining_requests for r in results[:5]] == [4, 3, 2, 1, 0]
    sixth = results[5]
    assert sixth.reason == "requests" and not sixth.never
    # the oldest (admitted at T0) leaves the window at T0 + 60
    assert sixth.retry_after == pytest.approx(60 - 2.5)
    assert sixth.limit_requests == 5 and sixth.remaining_requests == 0
    assert sixth.reset_requests == pytest.approx(T0 + 2.0 + 60 - (T0 + 2.5))  # newest admission leaves
    assert redis_client.zcard(limit_keys(KEY).req) == 5


def test_rpm_window_is_rolling_not_fixed(redis_client):
    lim = KeyLimits(rpm=3)
    for rid, t in (("a", 50), ("b", 55), ("c", 59)):  # late in the minute [0, 60)
        assert admit(redis_client, rid, lim, T0 + t).allowed
    # a fixed per-minute window would start afresh at 60; a rolling one does not
    early = admit(redis_client, "d", lim, T0 + 61)
    assert not early.allowed and early.retry_after == pytest.approx(49)
    assert admit(redis_client, "e", lim, T0 + 110).allowed  # "a" left at 110
    late = admit(redis_client, "f", lim, T0 + 111)
    assert not late.allowed and late.retry_after == pytest.approx(4)  # "b" leaves at 115
    assert admit(redis_client, "g", lim, T0 + 115).allowed


def test_rpm_concurrent_reservations_admit_exactly_limit(redis_client):
    lim = KeyLimits(rpm=10)
    # now=None: the script reads the Redis server's clock
    results = run_concurrently(redis_client, 30, lambda c, i: admit(c, f"r{i}", lim, None))
    assert sum(r.allowed for r in results) == 10
    assert {r.reason for r in results if not r.allowed} == {"requests"}
    assert all(0 < r.retry_after <= 60 for r in results if not r.allowed)
    assert redis_client.zcard(limit_keys(KEY).req) == 10


def test_server_time_is_used_when_now_is_none(redis_client):
    before = redis_client.time()
    assert admit(redis_client, "r1", KeyLimits(rpm=1), None).allowed
    after = redis_client.time()
    score = redis_client.zscore(limit_keys(KEY).req, "r1")
    assert before[0] * 1000 + before[1] // 1000 <= score <= after[0] * 1000 + after[1] // 1000


def test_refused_reservation_records_nothing(redis_client):
    lim = KeyLimits(rpm=2, tpm=1000, budget_usd=Decimal("1"))
    admit(redis_client, "a", lim, T0, tokens=100, cost="0.1")
    admit(redis_client, "b", lim, T0 + 1, tokens=100, cost="0.1")
    before = snapshot(redis_client)
    assert before  # the admitted ones are there
    for refused in (
        admit(redis_client, "c", lim, T0 + 2, tokens=100, cost="0.1"),  # requests
        admit(redis_client, "d", lim, T0 + 2, tokens=5000),  # never fits
        admit(redis_client, "e", lim, T0 + 2, cost="0.9"),
    ):  # budget
        assert not refused.allowed
        assert snapshot(redis_client) == before


def test_same_request_id_is_admitted_once(redis_client):
    lim = KeyLimits(rpm=5, tpm=1000)
    assert admit(redis_client, "job_1", lim, T0, tokens=300).allowed
    again = admit(redis_client, "job_1", lim, T0 + 1, tokens=300)  # a redelivered task
    assert again.allowed and again.remaining_requests == 4 and again.remaining_tokens == 700


def test_rpm_zero_is_never(redis_client):
    r = admit(redis_client, "a", KeyLimits(rpm=0), T0)
    assert (r.allowed, r.reason, r.never, r.retry_after) == (False, "requests", True, None)


# --- TPM -------------------------------------------------------------------


def test_tpm_admits_what_fits_and_settle_frees_capacity(redis_client):
    lim = KeyLimits(tpm=1000)
    assert [admit(redis_client, f"r{i}", lim, T0 + i, tokens=300).allowed for i in range(4)] == [True] * 3 + [False]
    refused = admit(redis_client, "r4", lim, T0 + 5, tokens=300)
    assert refused.reason == "tokens" and refused.retry_after == pytest.approx(55)  # r0 leaves at T0+60
    assert refused.remaining_tokens == 100

    assert settle(
        redis_client, key_id=KEY, request_id="r0", actual_tokens=100, actual_cost_usd=Decimal("0.001"), now=T0 + 6
    )
    fits = admit(redis_client, "r5", lim, T0 + 6, tokens=300)  # 100 + 300 + 300 + 300
    assert fits.allowed and fits.remaining_tokens == 0

    # a second settle (the task ran twice) changes nothing
    assert not settle(
        redis_client, key_id=KEY, request_id="r0", actual_tokens=0, actual_cost_usd=Decimal("0"), now=T0 + 7
    )
    assert peek(redis_client, key_id=KEY, limits=lim, now=T0 + 7).remaining_tokens == 0
    # the settled entry kept its admission time: its 100 tokens leave at T0 + 60
    assert peek(redis_client, key_id=KEY, limits=lim, now=T0 + 60).remaining_tokens == 100


def test_tpm_retry_after_waits_for_enough_tokens(redis_client):
    lim = KeyLimits(tpm=1000)
    for i in range(3):
        assert admit(redis_client, f"r{i}", lim, T0 + 10 * i, tokens=300).allowed
    big = admit(redis_client, "big", lim, T0 + 30, tokens=500)
    # 900 used; 500 fits once 400 have left: r0 (300) is not enough, r1 is
    assert not big.allowed and big.retry_after == pytest.approx(10 + 60 - 30)
    assert admit(redis_client, "big", lim, T0 + 70, tokens=500).allowed


def test_request_bigger_than_tpm_is_never_admissible(redis_client):
    r = admit(redis_client, "huge", KeyLimits(tpm=1000), T0, tokens=1001)
    assert (r.allowed, r.reason, r.never, r.retry_after) == (False, "tokens", True, None)
    assert snapshot(redis_client) == {}
    assert admit(redis_client, "exact", KeyLimits(tpm=1000), T0, tokens=1000).allowed


# --- Budget ----------------------------------------------------------------


def test_budget_holds_under_concurrent_reservations(redis_client):
    lim = KeyLimits(budget_usd=Decimal("1.00"))
    results = run_concurrently(redis_client, 30, lambda c, i: admit(c, f"r{i}", lim, T0, cost="0.10", spent="0.25"))
    admitted = [r for r in results if r.allowed]
    assert len(admitted) == 7  # 0.25 + 7 x 0.10 = 0.95; an 8th would make 1.05
    assert all(r.reason == "budget" and r.retry_after is None and not r.never for r in results if not r.allowed)
    assert peek(redis_client, key_id=KEY, limits=lim, now=T0).reserved_cost_usd == Decimal("0.70")


def test_budget_reached_and_settle_releases_reservation(redis_client):
    lim = KeyLimits(budget_usd=Decimal("1"))
    assert admit(redis_client, "a", lim, T0, cost="0.6").allowed
    assert admit(redis_client, "b", lim, T0, cost="0.6").reason == "budget"
    # the caller records the real cost in the key's spend, then settles
    assert settle(
        redis_client, key_id=KEY, request_id="a", actual_tokens=10, actual_cost_usd=Decimal("0.2"), now=T0 + 1
    )
    assert admit(redis_client, "b", lim, T0 + 1, cost="0.6", spent="0.2").allowed
    # spend that reached the budget refuses even a request of unknown (zero) cost
    assert admit(redis_client, "c", KeyLimits(budget_usd=Decimal("1")), T0, spent="1", key="k2").reason == "budget"


def test_expired_cost_reservations_no_longer_count(redis_client):
    lim = KeyLimits(budget_usd=Decimal("1"))
    assert admit(redis_client, "dead", lim, T0, cost="0.9", reservation_ttl=600).allowed  # its worker dies
    assert admit(redis_client, "x", lim, T0 + 599, cost="0.5").reason == "budget"
    assert peek(redis_client, key_id=KEY, limits=lim, now=T0 + 600).reserved_cost_usd == 0
    assert admit(redis_client, "y", lim, T0 + 600, cost="0.5").allowed


def test_money_is_stored_as_integer_nano_dollars(redis_client):
    admit(redis_client, "a", KeyLimits(), T0, cost="0.0000000011")  # rounded up, never down
    assert redis_client.hget(limit_keys(KEY).cost, "a") == b"2"


# --- release, peek, housekeeping -------------------------------------------


def test_release_drops_reservations_but_keeps_the_admission(redis_client):
    lim = KeyLimits(rpm=5, tpm=1000, budget_usd=Decimal("1"))
    assert admit(redis_client, "a", lim, T0, tokens=600, cost="0.8").allowed
    assert release(redis_client, key_id=KEY, request_id="a", now=T0 + 1)
    state = peek(redis_client, key_id=KEY, limits=lim, now=T0 + 1)
    assert (state.remaining_tokens, state.reserved_cost_usd, state.remaining_requests) == (1000, 0, 4)
    assert not release(redis_client, key_id=KEY, request_id="a", now=T0 + 2)
    assert not settle(
        redis_client, key_id=KEY, request_id="a", actual_tokens=50, actual_cost_usd=Decimal("0.1"), now=T0 + 2
    )
    assert peek(redis_client, key_id=KEY, limits=lim, now=T0 + 2).remaining_tokens == 1000


def test_peek_reports_header_figures_without_recording(redis_client):
    lim = KeyLimits(rpm=5, tpm=1000)
    admit(redis_client, "a", lim, T0, tokens=200)
    admit(redis_client, "b", lim, T0 + 10, tokens=300)
    before = snapshot(redis_client)
    state = peek(redis_client, key_id=KEY, limits=lim, now=T0 + 20)
    assert snapshot(redis_client) == before
    assert (state.limit_requests, state.remaining_requests, state.reset_requests) == (5, 3, pytest.approx(50))
    assert (state.limit_tokens, state.remaining_tokens, state.reset_tokens) == (1000, 500, pytest.approx(50))
    empty = peek(redis_client, key_id="nobody", limits=KeyLimits(), now=T0)
    assert (empty.remaining_requests, empty.reset_requests, empty.remaining_tokens) == (None, 0, None)


def test_every_key_gets_a_ttl(redis_client):
    lim = KeyLimits(rpm=5, tpm=1000, budget_usd=Decimal("1"))
    admit(redis_client, "a", lim, T0, tokens=10, cost="0.1")
    settle(redis_client, key_id=KEY, request_id="a", actual_tokens=5, actual_cost_usd=Decimal("0.05"), now=T0)
    admit(redis_client, "b", lim, T0, tokens=10, cost="0.1")
    keys = redis_client.keys("*")
    assert len(keys) == 8
    assert all(redis_client.pttl(k) > 0 for k in keys)


def test_many_expired_entries_are_purged_and_script_reloads(redis_client):
    lim = KeyLimits(tpm=10**9)
    for i in range(1200):  # more than one unpack() chunk
        admit(redis_client, f"r{i}", lim, T0, tokens=1, cost="0.001", reservation_ttl=1)
    redis_client.script_flush()  # the server forgot the script: EVALSHA must reload it
    state = peek(redis_client, key_id=KEY, limits=lim, now=T0 + 60)
    assert state.remaining_tokens == 10**9 and state.reserved_cost_usd == 0
    k = limit_keys(KEY)
    assert redis_client.hlen(k.tokn) == 0 and redis_client.hlen(k.cost) == 0


def test_bad_arguments_are_rejected(redis_client):
    with pytest.raises(ValueError):
        admit(redis_client, "a", KeyLimits(), T0, tokens=-1)
    with pytest.raises(ValueError):
        admit(redis_client, "a", KeyLimits(), T0, cost="-0.01")
    with pytest.raises(ValueError):
        settle(redis_client, key_id=KEY, request_id="a", actual_tokens=-5, actual_cost_usd=Decimal(0))
    assert reservations.WINDOW_SECONDS == 60


def test_tpm_retry_after_walks_past_one_page_of_entries(redis_client):
    lim = KeyLimits(tpm=450)
    for i in range(450):
        assert admit(redis_client, f"r{i}", lim, T0 + i * 0.1, tokens=1).allowed
    r = admit(redis_client, "big", lim, T0 + 50, tokens=300)
    # 300 must leave: the 300th entry (admitted at T0 + 29.9) leaves at T0 + 89.9
    assert not r.allowed and r.retry_after == pytest.approx(39.9)


def test_running_totals_match_the_entries(redis_client):
    """After any mix of operations the cached sums equal the sums of the stored entries."""
    import random

    rng = random.Random(7)
    lim = KeyLimits(rpm=12, tpm=5000, budget_usd=Decimal("1"))
    k = limit_keys(KEY)
    now, live, reasons = T0, [], set()
    for step in range(400):
        now += rng.choice([0, 0.5, 3, 20])
        op = rng.random()
        if op < 0.5 or not live:
            rid = f"r{step}"
            result = admit(
                redis_client,
                rid,
                lim,
                now,
                tokens=rng.randint(0, 900),
                cost=str(rng.choice([0, "0.01", "0.37"])),
                reservation_ttl=rng.choice([5, 30, 600]),
            )
            reasons.add(result.reason)
            if result.allowed:
                live.append(rid)
        elif op < 0.8:
            settle(
                redis_client,
                key_id=KEY,
                request_id=live.pop(rng.randrange(len(live))),
                actual_tokens=rng.randint(0, 1200),
                actual_cost_usd=Decimal("0.01"),
                now=now,
            )
        else:
            release(redis_client, key_id=KEY, request_id=live.pop(rng.randrange(len(live))), now=now)
        sums = {f.decode(): int(v) for f, v in redis_client.hgetall(k.sums).items()}
        tokn = {m: int(v) for m, v in redis_client.hgetall(k.tokn).items()}
        cost = {m: int(v) for m, v in redis_client.hgetall(k.cost).items()}
        assert sums.get("tokens", 0) == sum(tokn.values())
        assert sums.get("cost", 0) == sum(cost.values())
        assert set(tokn) == set(redis_client.zrange(k.tok, 0, -1))
        assert set(cost) == set(redis_client.zrange(k.costdl, 0, -1))
        state = peek(redis_client, key_id=KEY, limits=lim, now=now)
        assert state.remaining_tokens == max(5000 - sum(tokn.values()), 0)
        assert state.remaining_requests == max(12 - redis_client.zcard(k.req), 0)
    assert reasons == {None, "requests", "tokens", "budget"}  # every path was exercised


def test_a_total_orphaned_by_key_expiry_is_reset(redis_client):
    k = limit_keys(KEY)
    redis_client.hset(k.sums, mapping={"tokens": 999, "cost": 5})  # entries gone, sums left behind
    state = peek(redis_client, key_id=KEY, limits=KeyLimits(tpm=1000), now=T0)
    assert state.remaining_tokens == 1000 and state.reserved_cost_usd == 0
    assert admit(redis_client, "a", KeyLimits(tpm=1000), T0, tokens=1000).allowed


def test_settled_spend_counts_even_when_the_caller_read_a_stale_spend(redis_client):
    """The web read spend before another request recorded and settled its cost: the budget still holds."""
    lim = KeyLimits(budget_usd=Decimal("1"))
    assert admit(redis_client, "a", lim, T0, cost="0.6").allowed
    settle(redis_client, key_id=KEY, request_id="a", actual_tokens=5, actual_cost_usd=Decimal("0.6"), now=T0 + 1)
    stale = reserve(
        redis_client,
        key_id=KEY,
        request_id="b",
        limits=lim,
        tokens=1,
        max_cost_usd=Decimal("0.5"),
        spent_usd=Decimal("0"),
        now=T0 + 2,
    )
    assert not stale.allowed and stale.reason == "budget"
