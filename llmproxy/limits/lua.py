"""The Lua scripts behind llmproxy.limits.reservations, whose docstring describes the Redis layout and units.

Each call runs one script, so check-and-record is atomic across every web and worker process."""

from __future__ import annotations

_LUA_COMMON = """
local WINDOW = 60000
local now = tonumber(ARGV[1])
if not now then
  -- Redis < 5 needs effect replication before writing after TIME; newer ones ignore it.
  if redis.replicate_commands then pcall(redis.replicate_commands) end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function num(v) return tonumber(v) or 0 end
local function int(x) return string.format('%d', x) end  -- tostring() would print 1e+15
local function extend(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
local function total(zkey, field)
  -- Running sums keep each call O(log n); a sum outliving its entries is reset.
  if redis.call('ZCARD', zkey) == 0 then redis.call('HDEL', KEYS[7], field) return 0 end
  return math.max(0, num(redis.call('HGET', KEYS[7], field)))
end
local function drop(zkey, hkey, field, ids)
  local gone = 0
  for i = 1, #ids, 500 do  -- unpack() of a long list would overflow Lua's C stack
    local part = {unpack(ids, i, math.min(i + 499, #ids))}
    for _, v in ipairs(redis.call('HMGET', hkey, unpack(part))) do gone = gone + num(v) end
    redis.call('HDEL', hkey, unpack(part))
    redis.call('ZREM', zkey, unpack(part))
  end
  if gone ~= 0 and redis.call('EXISTS', KEYS[7]) == 1 then redis.call('HINCRBY', KEYS[7], field, int(-gone)) end
end
local function unexpired(zkey)
  -- Entries scored by their deadline (parallel slots, queued jobs): lapsed ones (a dead web process's) go here.
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now)
  return redis.call('ZCARD', zkey)
end
local function purge(done_retention)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - WINDOW)
  drop(KEYS[2], KEYS[3], 'tokens', redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - WINDOW))
  drop(KEYS[5], KEYS[4], 'cost', redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now))
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - done_retention)
end
"""

# ARGV: now_ms|'', request_id, rpm|'', tpm|'', budget|'', tokens, max_cost, spent,
#       reservation_ttl_ms, record (1 = reserve, 0 = peek), done_retention_ms, parallel|'', slot_ttl_ms
RESERVE_LUA = (
    _LUA_COMMON
    + """
local rid, rpm, tpm, budget = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local tokens, cost, spent, ttl = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local parallel, slot_ttl = tonumber(ARGV[12]), tonumber(ARGV[13])
spent = math.max(spent, num(redis.call('GET', KEYS[8])))
purge(tonumber(ARGV[11]))
local count, used, reserved = redis.call('ZCARD', KEYS[1]), total(KEYS[2], 'tokens'), total(KEYS[5], 'cost')
local reason, retry, never = 0, -1, 0
-- A request already admitted in this window (a redelivered task) is not counted twice.
if ARGV[10] == '1' and not redis.call('ZSCORE', KEYS[1], rid) then
  -- Permanent refusals first, so a caller is never told to wait in vain.
  if tpm and tokens > tpm then
    reason, never = 2, 1
  elseif budget and (spent + reserved >= budget or spent + reserved + cost > budget) then
    reason = 3
  elseif rpm == 0 then
    reason, never = 1, 1
  elseif parallel and unexpired(KEYS[9]) >= parallel then
    reason, retry = 4, 1000  -- a slot frees when one of the key's requests ends: no telling when
  elseif rpm and count >= rpm then
    -- capacity returns when the (count - rpm + 1)-th oldest admission leaves
    local e = redis.call('ZRANGE', KEYS[1], count - rpm, count - rpm, 'WITHSCORES')
    reason, retry = 1, math.max(0, tonumber(e[2]) + WINDOW - now)
  elseif tpm and used + tokens > tpm then
    reason = 2  -- walk the oldest entries until enough tokens would have left
    local freed, start = 0, 0
    while retry < 0 do
      local e = redis.call('ZRANGE', KEYS[2], start, start + 199, 'WITHSCORES')
      if #e == 0 then break end
      local ids = {} for i = 1, #e, 2 do ids[#ids + 1] = e[i] end
      local n = redis.call('HMGET', KEYS[3], unpack(ids))
      for i = 1, #ids do
        freed = freed + num(n[i])
        if used - freed + tokens <= tpm then retry = math.max(0, tonumber(e[2 * i]) + WINDOW - now) break end
      end
      start = start + 200
    end
  end
  if reason == 0 then
    redis.call('ZADD', KEYS[1], now, rid)
    redis.call('ZADD', KEYS[2], now, rid)
    redis.call('HSET', KEYS[3], rid, ARGV[6])
    redis.call('HINCRBY', KEYS[7], 'tokens', ARGV[6])
    redis.call('ZREM', KEYS[6], rid)  -- a new run of a long-finished request id
    for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], WINDOW + 1000) end
    count, used = count + 1, used + tokens
    if cost > 0 then
      redis.call('HSET', KEYS[4], rid, ARGV[7])
      redis.call('ZADD', KEYS[5], now + ttl, rid)
      redis.call('HINCRBY', KEYS[7], 'cost', ARGV[7])
      for i = 4, 5 do extend(KEYS[i], ttl + 1000) end
      reserved = reserved + cost
    end
    extend(KEYS[7], math.max(WINDOW, ttl) + 1000)
    if parallel then
      redis.call('ZADD', KEYS[9], now + slot_ttl, rid)
      extend(KEYS[9], slot_ttl + 1000)
    end
  end
end
local function reset(zkey)  -- until the newest entry leaves, i.e. the window is empty
  local e = redis.call('ZRANGE', zkey, -1, -1, 'WITHSCORES') return e[2] and math.max(0, e[2] + WINDOW - now) or 0
end
local reset_tok = used > 0 and reset(KEYS[2]) or 0
return {reason == 0 and 1 or 0, reason, retry, never, count, used, reset(KEYS[1]), reset_tok, reserved}
"""
)

# The settle/release step as a Lua function, so a larger script (a job's finish) can settle in the same call.
# KEYS[1..10] are the key's limit structures; `now` comes from _LUA_COMMON.
_FINISH_FUNCTION = """
local function end_request(rid)
  -- An ended request holds no parallel slot and no longer counts as queued.
  redis.call('ZREM', KEYS[9], rid)
  redis.call('ZREM', KEYS[10], rid)
end
local function finish_reservation(rid, mode, tokens, retention, cost)
  end_request(rid)
  purge(retention)
  if redis.call('ZSCORE', KEYS[6], rid) then return 0 end
  local old = redis.call('HGET', KEYS[3], rid)
  if old and mode == 'settle' then
    redis.call('HSET', KEYS[3], rid, tokens)  -- its admission time in KEYS[2] stays
    redis.call('HINCRBY', KEYS[7], 'tokens', int(tonumber(tokens) - tonumber(old)))
    extend(KEYS[7], WINDOW + 1000)
  elseif old then
    drop(KEYS[2], KEYS[3], 'tokens', {rid})
  end
  drop(KEYS[5], KEYS[4], 'cost', {rid})
  if mode == 'settle' and tonumber(cost) > 0 then
    redis.call('INCRBY', KEYS[8], cost)
    redis.call('PEXPIRE', KEYS[8], 86400000)
  end
  redis.call('ZADD', KEYS[6], now, rid)
  extend(KEYS[6], retention + 1000)
  return 1
end
"""

# What a script that settles as one of its steps starts with: ARGV[1] is now_ms|'' and KEYS[1..10] the limit keys.
SETTLE_PRELUDE = _LUA_COMMON + _FINISH_FUNCTION

# ARGV: now_ms|'', request_id, mode ('settle' | 'release'), actual_tokens, done_retention_ms, actual_cost
FINISH_LUA = SETTLE_PRELUDE + "return finish_reservation(ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6])\n"

# KEYS: the key's parallel slots. ARGV: now_ms|'', request_id, parallel, slot_ttl_ms. Returns 1 if the slot was taken.
TAKE_SLOT_LUA = (
    _LUA_COMMON
    + """
if unexpired(KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[2])
extend(KEYS[1], tonumber(ARGV[4]) + 1000)
return 1
"""
)

# A submission of stored work (async jobs, batch lines): budget left and room among the key's queued jobs.
# KEYS: the key's queued set, its settled spend. ARGV: now_ms|'', budget|'', spent (database), queued cap|'',
# entry_ttl_ms, then the new jobs' ids. Returns {reason (0 admitted, 3 budget, 5 queued jobs), queued count}.
SUBMIT_LUA = (
    _LUA_COMMON
    + """
local budget, cap, ttl = tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5])
local spent = math.max(tonumber(ARGV[3]), num(redis.call('GET', KEYS[2])))
if budget and spent >= budget then return {3, 0} end
local count = unexpired(KEYS[1])
if cap and count + #ARGV - 5 > cap then return {5, count} end
for i = 6, #ARGV, 500 do  -- unpack() of a long list would overflow Lua's C stack
  local pairs_ = {}
  for j = i, math.min(i + 499, #ARGV) do pairs_[#pairs_ + 1] = now + ttl pairs_[#pairs_ + 1] = ARGV[j] end
  redis.call('ZADD', KEYS[1], unpack(pairs_))
end
if #ARGV > 5 then extend(KEYS[1], ttl + 1000) end
return {0, count + #ARGV - 5}
"""
)

# KEYS: the key's parallel slots. ARGV: now_ms|'', request_id, slot_ttl_ms. A freed slot stays free (XX).
RENEW_SLOT_LUA = _LUA_COMMON + "return redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[3]), ARGV[2])\n"
