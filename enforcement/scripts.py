"""The Lua scripts behind every cap decision. Each runs atomically inside Redis.

Budgets are stored as ``"<limit>|<mode>|<stage>:<threshold>,..."`` where each
threshold is the nano-USD amount at which that stage (a percentage of the
limit) is reached, computed exactly in Python when the budget is applied.
Lua numbers are doubles: amounts are exact below 2^53 nano-USD (about 9
million USD per budget period), which budgets are validated against.

Reservations expire lazily: every call first releases up to
``MAX_EXPIRE_PER_CALL`` reservations whose time is up, so no sweeper process
is needed and the work per call stays bounded.
"""

from __future__ import annotations

__all__ = ["MAX_EXPIRE_PER_CALL", "RELEASE", "RESERVE", "SETTLE"]

MAX_EXPIRE_PER_CALL = 64
MAX_EXPIRE_WHEN_DENYING = 10_000  # due reservations released before a denial (bounds the call to ~10 ms)

_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- a reservation record is "<expires_ms>|<amount>|<digest>|<scope>,<scope>,..."
local function drop_record(reserved, record)
  local amount, scopes = string.match(record, '^%d+|(%d+)|[^|]*|(.*)$')
  amount = tonumber(amount)
  for scope in string.gmatch(scopes, '[^,]+') do
    if redis.call('HINCRBY', reserved, scope, -amount) <= 0 then
      redis.call('HDEL', reserved, scope)
    end
  end
end

-- release reservations whose time is up, at most limit of them (-1: all)
local function expire_due(reserved, resv, resv_exp, stats, now, limit)
  local due = redis.call('ZRANGEBYSCORE', resv_exp, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    local record = redis.call('HGET', resv, id)
    if record then
      drop_record(reserved, record)
      redis.call('HDEL', resv, id)
    end
    redis.call('ZREM', resv_exp, id)
  end
  if #due > 0 then
    redis.call('HINCRBY', stats, 'expired', #due)
  end
  return #due
end

local PERIODS = {'daily', 'weekly', 'monthly'}
local MAX_EXPIRE = MAX_EXPIRE_PER_CALL
local MAX_EXPIRE_BLOCKING = MAX_EXPIRE_WHEN_DENYING
""".replace("MAX_EXPIRE_PER_CALL", str(MAX_EXPIRE_PER_CALL)).replace(
    "MAX_EXPIRE_WHEN_DENYING", str(MAX_EXPIRE_WHEN_DENYING)
)

RESERVE = (
    """-- reserve: admit one request against every hard cap of its subject, holding its estimate.
-- KEYS[1] budgets   hash  <kind>/<id>/<period> -> "<limit>|<mode>|<stages>"
-- KEYS[2] reserved  hash  <kind>/<id> -> nano-USD held by open reservations
-- KEYS[3] resv      hash  request_id -> reservation record "<expires_ms>|<amount>|<digest>|<scopes>"
-- KEYS[4] resv:exp  zset  request_id by expiry (ms)
-- KEYS[5] stats     hash  counters
-- KEYS[6] spent:d   KEYS[7] spent:w   KEYS[8] spent:m   hash <kind>/<id> -> committed nano-USD
-- KEYS[9] org       hash  the org's settings; its field "loaded" is there once the org's config and
--                         counters are in Redis (gone after Redis lost its data)
-- ARGV[1] request_id   ARGV[2] estimate (nano-USD)   ARGV[3] ttl (ms)
-- ARGV[4] digest of the subject and estimate (a retry of the same request carries the same one)
-- ARGV[5] 1 when the model has no price and the org refuses such requests under a hard cap, else 0
-- ARGV[6..] the subject's scopes "<kind>/<id>", in chain order
-- Reply: {outcome, blocking, expired, now_ms, then per budget: field, limit, mode, spent, reserved}
--   outcome 1 admitted; 2 already admitted under this request_id (same subject and estimate);
--   0 denied by a hard cap; 3 denied: unpriced model under a hard cap; 4 refused: the request_id
--   holds a reservation of another subject or estimate; 5 the org's cap state is not loaded (the
--   caller answers by the org's policy: lost state never reads as "no budget applies");
--   blocking is the 1-based index of the budget that denied (0 when none);
--   reserved is after the admission.
-- Before denying, the reservations that are due are released (up to MAX_EXPIRE_BLOCKING, not only
-- MAX_EXPIRE of them) and the decision is taken again, so abandoned holds do not deny a request."""
    + _COMMON
    + """
local now = now_ms()
if redis.call('HEXISTS', KEYS[9], 'loaded') == 0 then
  return {5, 0, 0, now}
end
local expired = expire_due(KEYS[2], KEYS[3], KEYS[4], KEYS[5], now, MAX_EXPIRE)
local request_id = ARGV[1]
local estimate = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local digest = ARGV[4]
local unpriced = ARGV[5] == '1'
local spent_keys = {KEYS[6], KEYS[7], KEYS[8]}

local fields = {}
for i = 6, #ARGV do
  for p = 1, 3 do
    fields[#fields + 1] = ARGV[i] .. '/' .. PERIODS[p]
  end
end
local budgets = redis.call('HMGET', KEYS[1], unpack(fields))
local record = redis.call('HGET', KEYS[3], request_id)
if record then
  local held_digest = string.match(record, '^%d+|%d+|([^|]*)|')
  if held_digest ~= digest then
    redis.call('HINCRBY', KEYS[5], 'denied', 1)
    return {4, 0, expired, now}
  end
end
local already = record ~= false and record ~= nil

-- one pass over the subject's budgets: what each holds, and the first hard cap that denies
local function decide()
  local out, hard, held = {}, {}, {}
  local blocking, n = 0, 0
  for i = 1, #fields do
    local value = budgets[i]
    if value then
      local limit, mode = string.match(value, '^(%d+)|(%a+)')
      limit = tonumber(limit)
      local scope = ARGV[6 + math.floor((i - 1) / 3)]
      local spent = tonumber(redis.call('HGET', spent_keys[((i - 1) % 3) + 1], scope) or '0')
      local reserved = tonumber(redis.call('HGET', KEYS[2], scope) or '0')
      n = n + 1
      if mode == 'hard' then
        hard[n] = true
        if not held[scope] then
          held[scope] = true
          held[#held + 1] = scope
        end
        if blocking == 0 and not already and (unpriced or spent + reserved + estimate > limit) then
          blocking = n
        end
      end
      out[#out + 1] = fields[i]
      out[#out + 1] = limit
      out[#out + 1] = mode
      out[#out + 1] = spent
      out[#out + 1] = reserved
    end
  end
  return out, hard, held, blocking, n
end

local out, hard, held, blocking, n = decide()
if blocking > 0 and not unpriced and redis.call('ZCOUNT', KEYS[4], '-inf', now) > 0 then
  -- abandoned reservations still hold room: release all that are due, then decide again
  expired = expired + expire_due(KEYS[2], KEYS[3], KEYS[4], KEYS[5], now, MAX_EXPIRE_BLOCKING)
  out, hard, held, blocking, n = decide()
end

local outcome
if already then
  outcome = 2
elseif blocking > 0 then
  outcome = unpriced and 3 or 0
  redis.call('HINCRBY', KEYS[5], 'denied', 1)
else
  outcome = 1
  redis.call('HINCRBY', KEYS[5], 'admitted', 1)
  if #held > 0 and estimate > 0 then
    for _, scope in ipairs(held) do
      redis.call('HINCRBY', KEYS[2], scope, estimate)
    end
    local expires = now + ttl
    local record = expires .. '|' .. estimate .. '|' .. digest .. '|' .. table.concat(held, ',')
    redis.call('HSET', KEYS[3], request_id, record)
    redis.call('ZADD', KEYS[4], expires, request_id)
    for j = 1, n do
      if hard[j] then
        out[j * 5] = out[j * 5] + estimate
      end
    end
  end
end
return {outcome, blocking, expired, now, unpack(out)}
"""
)

SETTLE = (
    """-- settle: record the actual cost of one or more requests of one org, each exactly once,
-- replacing their reservations. The stream applies every usage event through this script, a batch
-- of one org's events per call; a proxy's settle is a batch of one.
-- KEYS[1] budgets  KEYS[2] reserved  KEYS[3] resv  KEYS[4] resv:exp  KEYS[5] stats
-- KEYS[6] wm       hash  partition -> highest applied offset of this org
-- KEYS[7] org      hash  the org's settings, with "loaded" once its config and counters are in Redis
-- KEYS[8..] the batch's other keys, referred to by index from ARGV:
--   spent:d, spent:w, spent:m (consecutive)  hash <kind>/<id> -> committed nano-USD
--   seen    hash  fingerprint -> "<partition>:<offset>" of its first application, or "direct"
--   stages  hash  <field>/<period key>/<stage> -> "<partition>:<offset>" (or "direct") that crossed it
-- ARGV[1] number of events, ARGV[2] the duplicate window (s), ARGV[3] the events' fields, each followed
-- by a tab, ARGV[4] the events' fingerprints (16 bytes each, in event order); per event, in ARGV[3]:
--   request_id ('' for none), cost (nano-USD), end of its UTC hour of occurrence (unix s),
--   spent:d, spent:w, spent:m expire at (unix s), period keys "<day>|<week>|<month>",
--   partition ('' outside the stream), offset, index of spent:d in KEYS, index of seen,
--   index of stages, number of scopes, the scopes "<kind>/<id>"
-- Reply per event: outcome, released, sink, n, then n crossings of (field, stage, limit, spent after)
--   outcome 1 applied now; 0 duplicate of another event; -1 this offset was applied before
--   (a redelivery). sink is 1 when this event is the one to store (so a redelivery is stored if it
--   was not yet). When the org's state is not loaded the reply is {-2} and nothing is written: the
--   worker restores the state first (it never counts on top of lost counters).
-- The duplicate window of an event runs from the later of its hour's end and its arrival, by
-- Redis's clock, never the caller's. An event whose fingerprint records its own partition and
-- offset, above the watermark, is this very event after a rebuild lowered the watermark (Redis's
-- counters were rebuilt without it): it is applied, not taken for a duplicate of itself."""
    + _COMMON
    + """
local now = now_ms()
if redis.call('HEXISTS', KEYS[7], 'loaded') == 0 then
  return {-2}
end
local now_s = math.floor(now / 1000)
local window = tonumber(ARGV[2])
expire_due(KEYS[2], KEYS[3], KEYS[4], KEYS[5], now, MAX_EXPIRE)
local budget_cache = {}
local expired_set = {}
local out = {}
local applied, duplicates = 0, 0

local function budget(field)
  local value = budget_cache[field]
  if value == nil then
    value = redis.call('HGET', KEYS[1], field) or false
    budget_cache[field] = value
  end
  return value
end

local function expire_once(key, at)
  if not expired_set[key] then
    expired_set[key] = true
    redis.call('EXPIREAT', key, at)
  end
end

local function settle(a, scopes)
  local partition, offset = a[9], tonumber(a[10])
  local seen = KEYS[tonumber(a[12])]
  local stages_key = KEYS[tonumber(a[13])]
  local origin = 'direct'
  if partition ~= '' then
    origin = partition .. ':' .. a[10]
    local mark = redis.call('HGET', KEYS[6], partition)
    if mark and offset <= tonumber(mark) then
      if redis.call('HGET', seen, a[3]) ~= origin then
        return {-1, 0, 0, 0}
      end
      -- the crossings this event caused, for an alert that may not have been sent
      local found = {-1, 0, 1, 0}
      local marks = redis.call('HGETALL', stages_key)
      for i = 1, #marks, 2 do
        if marks[i + 1] == origin then
          local field, stage = string.match(marks[i], '^(.*)/[^/]+/(%d+)$')
          found[#found + 1] = field
          found[#found + 1] = tonumber(stage)
          found[#found + 1] = 0
          found[#found + 1] = 0
          found[4] = found[4] + 1
        end
      end
      return found
    end
    redis.call('HSET', KEYS[6], partition, offset)
  end

  local released = 0
  if a[1] ~= '' then
    local record = redis.call('HGET', KEYS[3], a[1])
    if record then
      drop_record(KEYS[2], record)
      redis.call('HDEL', KEYS[3], a[1])
      redis.call('ZREM', KEYS[4], a[1])
      released = 1
    end
  end

  local fresh = redis.call('HSETNX', seen, a[3], origin) == 1
  expire_once(seen, math.max(tonumber(a[4]), now_s) + window)
  if not fresh and (origin == 'direct' or redis.call('HGET', seen, a[3]) ~= origin) then
    duplicates = duplicates + 1
    return {0, released, 0, 0}
  end

  local cost = tonumber(a[2])
  local first = tonumber(a[11])
  local spent_keys = {KEYS[first], KEYS[first + 1], KEYS[first + 2]}
  local period_keys = {}
  for key in string.gmatch(a[8], '[^|]+') do
    period_keys[#period_keys + 1] = key
  end
  local result = {1, released, 1, 0}
  for _, scope in ipairs(scopes) do
    for p = 1, 3 do
      local spent_after = redis.call('HINCRBY', spent_keys[p], scope, cost)
      local field = scope .. '/' .. PERIODS[p]
      local value = budget(field)
      if value then
        local limit, stages = string.match(value, '^(%d+)|%a+|(.*)$')
        local spent_before = spent_after - cost
        for stage, threshold in string.gmatch(stages, '(%d+):(%d+)') do
          threshold = tonumber(threshold)
          if spent_before < threshold and threshold <= spent_after then
            if redis.call('HSETNX', stages_key, field .. '/' .. period_keys[p] .. '/' .. stage, origin) == 1 then
              result[#result + 1] = field
              result[#result + 1] = tonumber(stage)
              result[#result + 1] = tonumber(limit)
              result[#result + 1] = spent_after
              result[4] = result[4] + 1
            end
          end
        end
      end
    end
  end
  for p = 1, 3 do
    expire_once(spent_keys[p], a[4 + p])
  end
  expire_once(stages_key, a[7])
  applied = applied + 1
  return result
end

local F, count = {}, 0
for field in string.gmatch(ARGV[3], '([^\\t]*)\\t') do
  count = count + 1
  F[count] = field
end
local at = 1
for e = 1, tonumber(ARGV[1]) do
  -- a: request_id, cost, fingerprint, then the fields after it, as one argument each used to be
  local a = {F[at], F[at + 1], string.sub(ARGV[4], e * 16 - 15, e * 16)}
  for i = 2, 12 do
    a[i + 2] = F[at + i]
  end
  local n = tonumber(a[14])
  local scopes = {}
  for i = 1, n do
    scopes[i] = F[at + 12 + i]
  end
  at = at + 13 + n
  for _, value in ipairs(settle(a, scopes)) do
    out[#out + 1] = value
  end
end
if applied > 0 then
  redis.call('HINCRBY', KEYS[5], 'settled', applied)
end
if duplicates > 0 then
  redis.call('HINCRBY', KEYS[5], 'duplicate', duplicates)
end
return out
"""
)

RELEASE = (
    """-- release: drop a reservation whose request will not run. Idempotent.
-- KEYS[1] reserved  KEYS[2] resv  KEYS[3] resv:exp  KEYS[4] stats
-- ARGV[1] request_id
-- Reply: 1 released, 0 no such open reservation."""
    + _COMMON
    + """
expire_due(KEYS[1], KEYS[2], KEYS[3], KEYS[4], now_ms(), MAX_EXPIRE)
local record = redis.call('HGET', KEYS[2], ARGV[1])
if not record then
  return 0
end
drop_record(KEYS[1], record)
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[4], 'released', 1)
return 1
"""
)
