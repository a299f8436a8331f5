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

_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- a reservation record is "<expires_ms>|<amount>|<scope>,<scope>,..."
local function drop_record(reserved, record)
  local amount, scopes = string.match(record, '^%d+|(%d+)|(.*)$')
  amount = tonumber(amount)
  for scope in string.gmatch(scopes, '[^,]+') do
    if redis.call('HINCRBY', reserved, scope, -amount) <= 0 then
      redis.call('HDEL', reserved, scope)
    end
  end
end

local function expire_due(reserved, resv, resv_exp, stats, now)
  local due = redis.call('ZRANGEBYSCORE', resv_exp, '-inf', now, 'LIMIT', 0, MAX_EXPIRE)
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
""".replace("MAX_EXPIRE", str(MAX_EXPIRE_PER_CALL))

RESERVE = (
    """-- reserve: admit one request against every hard cap of its subject, holding its estimate.
-- KEYS[1] budgets   hash  <kind>/<id>/<period> -> "<limit>|<mode>|<stages>"
-- KEYS[2] reserved  hash  <kind>/<id> -> nano-USD held by open reservations
-- KEYS[3] resv      hash  request_id -> reservation record
-- KEYS[4] resv:exp  zset  request_id by expiry (ms)
-- KEYS[5] stats     hash  counters
-- KEYS[6] spent:d   KEYS[7] spent:w   KEYS[8] spent:m   hash <kind>/<id> -> committed nano-USD
-- ARGV[1] request_id   ARGV[2] estimate (nano-USD)   ARGV[3] ttl (ms)
-- ARGV[4..] the subject's scopes "<kind>/<id>", in chain order
-- Reply: {outcome, blocking, expired, now_ms, then per budget: field, limit, mode, spent, reserved}
--   outcome 1 admitted, 2 already admitted under this request_id, 0 denied;
--   blocking is the 1-based index of the first budget that denied (0 when none);
--   reserved is after the admission."""
    + _COMMON
    + """
local now = now_ms()
local expired = expire_due(KEYS[2], KEYS[3], KEYS[4], KEYS[5], now)
local request_id = ARGV[1]
local estimate = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local spent_keys = {KEYS[6], KEYS[7], KEYS[8]}

local fields = {}
for i = 4, #ARGV do
  for p = 1, 3 do
    fields[#fields + 1] = ARGV[i] .. '/' .. PERIODS[p]
  end
end
local budgets = redis.call('HMGET', KEYS[1], unpack(fields))
local already = redis.call('HEXISTS', KEYS[3], request_id) == 1

local out = {}
local hard = {}
local held = {}
local blocking = 0
local n = 0
for i = 1, #fields do
  local value = budgets[i]
  if value then
    local limit, mode = string.match(value, '^(%d+)|(%a+)')
    limit = tonumber(limit)
    local scope = ARGV[4 + math.floor((i - 1) / 3)]
    local spent = tonumber(redis.call('HGET', spent_keys[((i - 1) % 3) + 1], scope) or '0')
    local reserved = tonumber(redis.call('HGET', KEYS[2], scope) or '0')
    n = n + 1
    if mode == 'hard' then
      hard[n] = true
      if not held[scope] then
        held[scope] = true
        held[#held + 1] = scope
      end
      if blocking == 0 and not already and spent + reserved + estimate > limit then
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

local outcome
if already then
  outcome = 2
elseif blocking > 0 then
  outcome = 0
  redis.call('HINCRBY', KEYS[5], 'denied', 1)
else
  outcome = 1
  redis.call('HINCRBY', KEYS[5], 'admitted', 1)
  if #held > 0 and estimate > 0 then
    for _, scope in ipairs(held) do
      redis.call('HINCRBY', KEYS[2], scope, estimate)
    end
    local expires = now + ttl
    redis.call('HSET', KEYS[3], request_id, expires .. '|' .. estimate .. '|' .. table.concat(held, ','))
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
    """-- settle: record one request's actual cost exactly once, replacing its reservation.
-- The stream applies every usage event through this script too.
-- KEYS[1] budgets  KEYS[2] reserved  KEYS[3] resv  KEYS[4] resv:exp  KEYS[5] stats
-- KEYS[6] spent:d  KEYS[7] spent:w  KEYS[8] spent:m   (periods of the event's time)
-- KEYS[9] seen     hash  fingerprint -> "<partition>:<offset>" of its first application, or "api"
-- KEYS[10] stages  hash  <field>/<period key>/<stage> -> "<partition>:<offset>" (or "api") that crossed it
-- KEYS[11] wm      hash  partition -> highest applied offset of this org
-- ARGV[1] request_id ('' for none)   ARGV[2] cost (nano-USD)   ARGV[3] event fingerprint
-- ARGV[4] seen bucket expires at (unix s)
-- ARGV[5] spent:d, ARGV[6] spent:w, ARGV[7] spent:m expire at (unix s)
-- ARGV[8] period keys "<day>|<week>|<month>"
-- ARGV[9] partition ('' outside the stream)   ARGV[10] offset
-- ARGV[11..] the event's scopes "<kind>/<id>"
-- Reply: {outcome, released, sink, then per crossed stage: field, stage, limit, spent after}
--   outcome 1 applied now; 0 duplicate of another event; -1 this offset was applied before
--   (a redelivery); 2 counted earlier through the API, first seen by the stream now.
--   sink is 1 when this event is the one to store (so a redelivery is stored if it was not yet)."""
    + _COMMON
    + """
local now = now_ms()
expire_due(KEYS[2], KEYS[3], KEYS[4], KEYS[5], now)
local partition = ARGV[9]
local offset = tonumber(ARGV[10])
local origin = 'api'
if partition ~= '' then
  origin = partition .. ':' .. ARGV[10]
  local mark = redis.call('HGET', KEYS[11], partition)
  if mark and offset <= tonumber(mark) then
    local out = {-1, 0, 0}
    if redis.call('HGET', KEYS[9], ARGV[3]) == origin then
      out[3] = 1
      -- the crossings this event caused, for an alert that may not have been sent
      local marks = redis.call('HGETALL', KEYS[10])
      for i = 1, #marks, 2 do
        if marks[i + 1] == origin then
          local field, stage = string.match(marks[i], '^(.*)/[^/]+/(%d+)$')
          out[#out + 1] = field
          out[#out + 1] = tonumber(stage)
          out[#out + 1] = 0
          out[#out + 1] = 0
        end
      end
    end
    return out
  end
  redis.call('HSET', KEYS[11], partition, offset)
end

local released = 0
local request_id = ARGV[1]
if request_id ~= '' then
  local record = redis.call('HGET', KEYS[3], request_id)
  if record then
    drop_record(KEYS[2], record)
    redis.call('HDEL', KEYS[3], request_id)
    redis.call('ZREM', KEYS[4], request_id)
    released = 1
  end
end

local fresh = redis.call('HSETNX', KEYS[9], ARGV[3], origin) == 1
redis.call('EXPIREAT', KEYS[9], ARGV[4])
if not fresh then
  if origin ~= 'api' and redis.call('HGET', KEYS[9], ARGV[3]) == 'api' then
    redis.call('HSET', KEYS[9], ARGV[3], origin)
    return {2, released, 1}
  end
  redis.call('HINCRBY', KEYS[5], 'duplicate', 1)
  return {0, released, 0}
end

local cost = tonumber(ARGV[2])
local spent_keys = {KEYS[6], KEYS[7], KEYS[8]}
local period_keys = {}
for key in string.gmatch(ARGV[8], '[^|]+') do
  period_keys[#period_keys + 1] = key
end
local fields = {}
local after = {}
for i = 11, #ARGV do
  for p = 1, 3 do
    local total = redis.call('HINCRBY', spent_keys[p], ARGV[i], cost)
    fields[#fields + 1] = ARGV[i] .. '/' .. PERIODS[p]
    after[#after + 1] = total
  end
end
for p = 1, 3 do
  redis.call('EXPIREAT', spent_keys[p], ARGV[4 + p])
end

local out = {1, released, 1}
local budgets = redis.call('HMGET', KEYS[1], unpack(fields))
for i = 1, #fields do
  local value = budgets[i]
  if value then
    local limit, stages = string.match(value, '^(%d+)|%a+|(.*)$')
    local spent_after = tonumber(after[i])
    local spent_before = spent_after - cost
    for stage, threshold in string.gmatch(stages, '(%d+):(%d+)') do
      threshold = tonumber(threshold)
      if spent_before < threshold and threshold <= spent_after then
        local mark = fields[i] .. '/' .. period_keys[((i - 1) % 3) + 1] .. '/' .. stage
        if redis.call('HSETNX', KEYS[10], mark, origin) == 1 then
          out[#out + 1] = fields[i]
          out[#out + 1] = tonumber(stage)
          out[#out + 1] = tonumber(limit)
          out[#out + 1] = spent_after
        end
      end
    end
  end
end
redis.call('EXPIREAT', KEYS[10], ARGV[7])
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
expire_due(KEYS[1], KEYS[2], KEYS[3], KEYS[4], now_ms())
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
