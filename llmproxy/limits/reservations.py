"""Per-key RPM, TPM and budget limits kept in Redis and changed only by Lua scripts.

All state lives in Redis, so limits hold across any number of web and worker
processes; each call is one script, so check-and-record is atomic.

Units and conventions:
* Time: seconds (float) in the Python API; integer milliseconds inside Redis
  (sorted-set scores). ``now=None`` means the Redis server's ``TIME``, so the
  clocks of the calling hosts do not matter; tests pass ``now`` explicitly.
* Money: ``decimal.Decimal`` USD in the API; integer nano-dollars (1e-9 USD)
  inside Redis, never floats. Costs are rounded up and budgets down, so rounding
  never lets spend past a budget. Lua compares them as doubles: exact up to
  2**53 nano-dollars (about $9M), approximate to a fraction of a cent beyond.
* Windows: RPM and TPM are rolling 60 s windows. A request admitted at t counts
  during [t, t + 60 s).

Redis layout for one key (``limit_keys``), all sharing one hash tag:
  req    zset  request_id -> admitted at (ms)          RPM window
  tok    zset  request_id -> admitted at (ms)          TPM window ...
  tokn   hash  request_id -> tokens                    ... and its token counts
  cost   hash  request_id -> reserved nano-dollars     outstanding cost reservations
  costdl zset  request_id -> deadline (ms)             ... purged once past deadline; a running job's
                                                        is moved on with its lease (llmproxy.jobs.lease)
  done   zset  request_id -> settled/released at (ms)  makes settle/release idempotent
  sums   hash  tokens, cost                             running totals of tokn and cost
  spent  string  nano-dollars settled so far             see below
  par    zset  request_id -> deadline (ms)             requests in flight (llmproxy.limits.parallel)
  queued zset  job_id -> deadline (ms)                 async jobs and batch lines not yet ended (.queued)

Budget race: the web reads the key's recorded spend from the database, and a
worker records spend (database) and then settles (Redis). A reservation
admitted between another request's settle and a stale database read would
under-count that request's cost, so settle also adds the real cost to `spent`
and the check uses the larger of it and the caller's figure. The database
stays the source of truth: after a Redis flush the caller's figure is used."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal, NamedTuple

import redis as redis_lib

from llmproxy.limits.lua import FINISH_LUA, RESERVE_LUA
from llmproxy.luascript import LuaScript

WINDOW_SECONDS = 60

DEFAULT_RESERVATION_TTL = 600.0

# Finished markers outlive the 60 s window: after that a duplicate settle finds
# neither a TPM entry nor a cost reservation, so it has no effect anyway.
DONE_RETENTION_SECONDS = 120

NANO_PER_USD = 10**9

_RESERVE = LuaScript(RESERVE_LUA)
_FINISH = LuaScript(FINISH_LUA)

Reason = Literal["requests", "tokens", "budget", "parallel_requests"]

_REASONS: dict[int, Reason | None] = {0: None, 1: "requests", 2: "tokens", 3: "budget", 4: "parallel_requests"}


class LimitKeys(NamedTuple):
    """Redis key names of one key's limits, in the scripts' KEYS order; the module docstring describes each."""

    req: str
    tok: str
    tokn: str
    cost: str
    costdl: str
    done: str
    sums: str
    spent: str
    par: str
    queued: str


def limit_keys(key_id: str) -> LimitKeys:
    """Key names of `key_id`'s limits."""
    # The {hash tag} keeps all of a key's structures in one Redis Cluster slot,
    # as a multi-key script requires.
    base = f"llmproxy:limits:{{{key_id}}}"
    return LimitKeys(*(f"{base}:{part}" for part in LimitKeys._fields))


@dataclass(frozen=True)
class KeyLimits:
    """A key's limits; None means unlimited. `parallel` caps its requests in flight (web requests only)."""

    rpm: int | None = None
    tpm: int | None = None
    budget_usd: Decimal | None = None
    parallel: int | None = None


@dataclass(frozen=True)
class RateState:
    """Figures for OpenAI's x-ratelimit-* headers; resets in seconds until fully free again."""

    limit_requests: int | None
    remaining_requests: int | None
    reset_requests: float
    limit_tokens: int | None
    remaining_tokens: int | None
    reset_tokens: float
    reserved_cost_usd: Decimal  # outstanding cost reservations


@dataclass(frozen=True)
class Admission(RateState):
    """Outcome of `reserve`.

    `retry_after` is the real time in seconds until enough capacity returns.
    It is None when waiting cannot help: reason "budget" (spend only grows) or
    `never` (the request alone needs more tokens than the TPM limit, or the
    key's RPM limit is 0); answer those with a clear message, not "retry later".
    """

    allowed: bool = True
    reason: Reason | None = None
    retry_after: float | None = None
    never: bool = False


def _nano(amount: Decimal, rounding: str) -> int:
    if amount < 0:
        raise ValueError("money amounts must not be negative")
    return int((Decimal(amount) * NANO_PER_USD).to_integral_value(rounding=rounding))


def _now_ms(now: float | None) -> str:
    return "" if now is None else str(round(now * 1000))


def _run_reserve(
    client: redis_lib.Redis, keys: LimitKeys, limits: KeyLimits, args: list[str | int], slot_ms: int = 0
) -> Admission:
    allowed, reason, retry, never, count, used, reset_req, reset_tok, reserved = _RESERVE(
        client,
        list(keys),
        [
            *args[:2],
            "" if limits.rpm is None else limits.rpm,
            "" if limits.tpm is None else limits.tpm,
            "" if limits.budget_usd is None else _nano(limits.budget_usd, ROUND_FLOOR),
            *args[2:],
            DONE_RETENTION_SECONDS * 1000,
            "" if limits.parallel is None else limits.parallel,
            slot_ms,
        ],
    )
    return Admission(
        limit_requests=limits.rpm,
        remaining_requests=None if limits.rpm is None else max(limits.rpm - count, 0),
        reset_requests=reset_req / 1000,
        limit_tokens=limits.tpm,
        remaining_tokens=None if limits.tpm is None else max(limits.tpm - used, 0),
        reset_tokens=reset_tok / 1000,
        reserved_cost_usd=Decimal(reserved) / NANO_PER_USD,
        allowed=bool(allowed),
        reason=_REASONS[reason],
        retry_after=None if retry < 0 else retry / 1000,
        never=bool(never),
    )


def reserve(
    client: redis_lib.Redis,
    *,
    key_id: str,
    request_id: str,
    limits: KeyLimits,
    tokens: int,
    max_cost_usd: Decimal,
    spent_usd: Decimal,
    now: float | None = None,
    reservation_ttl: float = DEFAULT_RESERVATION_TTL,
    slot_seconds: float = DEFAULT_RESERVATION_TTL,
) -> Admission:
    """Atomically check RPM, TPM, budget and requests in flight and, only if all pass, record the request.

    Budget: refused once `spent_usd` + outstanding reservations reaches the
    budget, or would pass it with `max_cost_usd`. The cost reservation lapses
    after `reservation_ttl` seconds unless its job's lease renews it, so a dead
    worker never locks a key out and a long stream never outlives it.
    Reserving an id already admitted in the window returns allowed and records
    nothing more (a redelivered task is not counted twice). With `limits.parallel`,
    the request also takes one of the key's slots until it ends (the job's finish or
    `release` frees it) or `slot_seconds` pass (a web process that died).
    """
    if tokens < 0 or reservation_ttl <= 0:
        raise ValueError("tokens must be >= 0 and reservation_ttl > 0")
    return _run_reserve(
        client,
        limit_keys(key_id),
        limits,
        [
            _now_ms(now),
            request_id,
            int(tokens),
            _nano(max_cost_usd, ROUND_CEILING),
            _nano(spent_usd, ROUND_CEILING),
            math.ceil(reservation_ttl * 1000),
            1,
        ],
        math.ceil(slot_seconds * 1000),
    )


def peek(client: redis_lib.Redis, *, key_id: str, limits: KeyLimits, now: float | None = None) -> RateState:
    """Current remaining requests/tokens and reset times, reserving nothing."""
    state = _run_reserve(client, limit_keys(key_id), limits, [_now_ms(now), "", 0, 0, 0, 1000, 0])
    return RateState(**{f: getattr(state, f) for f in RateState.__dataclass_fields__})


def _finish(
    client: redis_lib.Redis,
    key_id: str,
    request_id: str,
    mode: Literal["settle", "release"],
    actual_tokens: int,
    now: float | None,
    cost_nano: int = 0,
) -> bool:
    keys, args = _finish_call(key_id, request_id, mode, actual_tokens, now, cost_nano)
    return bool(_FINISH(client, keys, args))


def _finish_call(
    key_id: str, request_id: str, mode: str, actual_tokens: int, now: float | None, cost_nano: int
) -> tuple[list[str], list[str | int]]:
    return list(limit_keys(key_id)), [
        _now_ms(now),
        request_id,
        mode,
        int(actual_tokens),
        DONE_RETENTION_SECONDS * 1000,
        cost_nano,
    ]


def settle_call(
    *, key_id: str, request_id: str, actual_tokens: int, actual_cost_usd: Decimal
) -> tuple[list[str], list[str | int]]:
    """KEYS and ARGV that a script built on `lua.SETTLE_PRELUDE` passes on to settle, as `settle` would."""
    if actual_tokens < 0:
        raise ValueError("actual_tokens must be >= 0")
    return _finish_call(key_id, request_id, "settle", actual_tokens, None, _nano(actual_cost_usd, ROUND_CEILING))


def settle(
    client: redis_lib.Redis,
    *,
    key_id: str,
    request_id: str,
    actual_tokens: int,
    actual_cost_usd: Decimal,
    now: float | None = None,
) -> bool:
    """Replace the request's TPM reservation by its real usage and release its cost reservation.

    The entry keeps its admission time, so unused tokens are free at once. The
    real cost is added to the key's Redis `spent` counter in the same step, so
    spend + reservations never dips; record it in the database *before*
    settling. Returns False, changing nothing, if already settled or released.
    """
    if actual_tokens < 0:
        raise ValueError("actual_tokens must be >= 0")
    cost_nano = _nano(actual_cost_usd, ROUND_CEILING)  # rejects negative costs
    return _finish(client, key_id, request_id, "settle", actual_tokens, now, cost_nano)


def release(client: redis_lib.Redis, *, key_id: str, request_id: str, now: float | None = None) -> bool:
    """Drop the token and cost reservation of a request that never ran, and its parallel slot or queued entry.

    Its RPM entry stays: it was admitted, and "at most L admitted in any 60 s"
    must hold even when admitted requests are cancelled. Idempotent like settle.
    """
    return _finish(client, key_id, request_id, "release", 0, now)
