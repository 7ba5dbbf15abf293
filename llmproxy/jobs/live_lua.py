"""The Lua scripts behind llmproxy.jobs.live, whose docstring describes the Redis layout.

Each transition of an in-flight job is one script, so two workers (or a worker and a
cancelling caller) can never both win it. Times are the Redis server's clock (TIME), in ms.
"""

from __future__ import annotations

from llmproxy.limits.lua import SETTLE_PRELUDE

_CLOCK = """
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# KEYS: live hash, leases. ARGV: job id, static job JSON, queue, lease_ms, ttl_ms
CREATE_LUA = (
    _CLOCK
    + """
local until_ = clock() + tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'job', ARGV[2], 'queue', ARGV[3], 'status', 'queued', 'run', 0, 'lease', until_)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], until_, ARGV[1])
return 1
"""
)

# KEYS: live hash, leases, its batch's cancel mark, the job's cancel flag, the configuration version. ARGV: job id,
# lease_ms, ttl_ms, stored job JSON|'' , queue, runs so far. Returns {'claimed', run, job JSON, cancel flag (0/1),
# config version (nil if unset)} or {status} (someone else's, finished, cancelled) or {'missing'}.
CLAIM_LUA = (
    _CLOCK
    + """
local now = clock()
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  if ARGV[4] == '' then return {'missing'} end
  -- A line of a batch being cancelled or expired never starts (its row is being cancelled).
  if redis.call('EXISTS', KEYS[3]) == 1 then return {'cancelled'} end
  -- A stored job is claimed the first time: its live state starts from its row.
  redis.call('HSET', KEYS[1], 'job', ARGV[4], 'queue', ARGV[5], 'status', 'queued', 'run', ARGV[6])
  status = 'queued'
elseif status == 'in_progress' then
  local lease = tonumber(redis.call('HGET', KEYS[1], 'lease'))
  if lease and lease > now then return {status} end
elseif status ~= 'queued' then
  return {status}
end
local job = redis.call('HGET', KEYS[1], 'job')
if not job then return {'missing'} end
local run = redis.call('HINCRBY', KEYS[1], 'run', 1)
redis.call('HSET', KEYS[1], 'status', 'in_progress', 'started_at', now, 'lease', now + tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
return {'claimed', run, job, redis.call('EXISTS', KEYS[4]), redis.call('GET', KEYS[5])}
"""
)

# KEYS: leases, then for each job its live hash and, if it holds a cost reservation, its key's `costdl`, `cost`
# and `sums` (llmproxy.limits.reservations). ARGV: lease_ms, ttl_ms, reservation_ms, then each job's id, run
# and 1|0 (reservation keys given). Returns 1 per job still ours (its lease moved on, and its reservation
# with it), 0 per job that is not. A reservation already settled, released or purged stays gone.
RENEW_LUA = (
    _CLOCK
    + """
local now = clock()
local until_, held = now + tonumber(ARGV[1]), now + tonumber(ARGV[3])
local function extend(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
local out, k = {}, 2
for i = 4, #ARGV, 3 do
  local id, run, reserved = ARGV[i], ARGV[i + 1], ARGV[i + 2] == '1'
  local st = redis.call('HMGET', KEYS[k], 'status', 'run')
  if st[1] == 'in_progress' and st[2] == run then
    redis.call('HSET', KEYS[k], 'lease', until_)
    redis.call('ZADD', KEYS[1], until_, id)
    redis.call('PEXPIRE', KEYS[k], ARGV[2])
    local deadline = reserved and redis.call('ZSCORE', KEYS[k + 1], id)
    if deadline and tonumber(deadline) < held then
      redis.call('ZADD', KEYS[k + 1], held, id)
      for j = 1, 3 do extend(KEYS[k + j], tonumber(ARGV[3]) + 1000) end
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
  k = k + (reserved and 4 or 1)
end
return out
"""
)

# The record of a job that ended, appended for the writer: its static part as stored, its state and outcome.
_APPEND_RECORD = """
local function append_record(hash, records, id, status, final, charge, at)
  local st = redis.call('HMGET', hash, 'job', 'run', 'started_at')
  redis.call('XADD', records, '*', 'id', id, 'job', st[1], 'status', status, 'run', st[2],
    'started_at', st[3] or '', 'final', final, 'charge', charge, 'at', at)
end
"""

# KEYS[1..10]: the key's limit structures (settle), then live hash, leases, records stream, events stream.
# ARGV[1..6]: settle's (now|'', request id, mode|'none', tokens, retention, cost); then job id, run, status,
# final JSON, charge JSON|'', events TTL (s), live TTL after the end (ms), then the final event's fields.
FINISH_LUA = (
    SETTLE_PRELUDE
    + _APPEND_RECORD
    + """
local hash, leases, records, events = KEYS[11], KEYS[12], KEYS[13], KEYS[14]
local id, run = ARGV[7], ARGV[8]
local st = redis.call('HMGET', hash, 'status', 'run')
if st[1] ~= 'in_progress' or st[2] ~= run then return 0 end
if ARGV[3] ~= 'none' then finish_reservation(ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6])
else end_request(ARGV[2]) end
redis.call('HSET', hash, 'status', ARGV[9], 'final', ARGV[10])
redis.call('PEXPIRE', hash, ARGV[13])
redis.call('ZREM', leases, id)
append_record(hash, records, id, ARGV[9], ARGV[10], ARGV[11], now)
redis.call('XADD', events, '*', unpack(ARGV, 14))
redis.call('EXPIRE', events, ARGV[12])
return 1
"""
)

# KEYS: live hash, leases, records stream, events stream, cancel flag.
# ARGV: job id, final JSON of a cancelled job, events TTL (s), live TTL (ms), 1 if the job is stored, event fields...
# Returns the status the job had: 'queued' (now cancelled and recorded), 'in_progress' (asked to stop),
# 'missing' (a stored job nobody claimed: marked cancelled so no claim can win) or a final status.
CANCEL_LUA = (
    _CLOCK
    + _APPEND_RECORD
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  if ARGV[5] ~= '1' then return 'missing' end
  redis.call('HSET', KEYS[1], 'status', 'cancelled')
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 'missing'
end
if status == 'in_progress' then
  redis.call('SET', KEYS[5], 1, 'EX', ARGV[3])
  return status
end
if status ~= 'queued' then return status end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'final', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('HEXISTS', KEYS[1], 'job') == 1 then
  append_record(KEYS[1], KEYS[3], ARGV[1], 'cancelled', ARGV[2], '', clock())
end
redis.call('XADD', KEYS[4], '*', unpack(ARGV, 6))
redis.call('EXPIRE', KEYS[4], ARGV[3])
return 'queued'
"""
)

# KEYS: leases. ARGV: key prefix, key suffix, lease_ms, limit.
# Jobs whose lease lapsed (a dead worker's, or a queued job whose message was lost), with their queue.
# The set's score is when to look at a job next: it moves a lease on, so a job is re-sent once per
# lease; the lease itself (the hash's `lease`) stays lapsed, so the re-sent task can claim it.
# Gone jobs leave the set.
DUE_LUA = (
    _CLOCK
    + """
local now = clock()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for _, id in ipairs(ids) do
  local st = redis.call('HMGET', ARGV[1] .. id .. ARGV[2], 'status', 'queue', 'lease')
  local lease = tonumber(st[3]) or 0
  if (st[1] == 'queued' or st[1] == 'in_progress') and st[2] and lease > now then
    redis.call('ZADD', KEYS[1], lease, id)  -- renewed meanwhile: look again when it ends
  elseif (st[1] == 'queued' or st[1] == 'in_progress') and st[2] then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), id)
    out[#out + 1] = id
    out[#out + 1] = st[2]
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""
)
