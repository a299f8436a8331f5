"""The Lua scripts behind every cap decision. Each runs atomically inside Redis.

Budgets are stored as ``"<limit>|<mode>|<stage>:<threshold>,..."`` where each
threshold is the nano-USD amount at which that stage (a percentage of the
limit) is reached, computed exactly in Python when the budget is applied.
Lua numbers are doubles: amounts are exact below 2^53 nano-USD (about 9
million USD per budget period), which budgets are validated against.

What the scripts share is in :mod:`enforcement.lua_common`; SETTLE, the longest,
lives in :mod:`enforcement.settle_script` and is exported here with the others.
"""

from __future__ import annotations

from enforcement.lua_common import COMMON as _COMMON
from enforcement.lua_common import MAX_EXPIRE_PER_CALL, MAX_EXPIRE_WHEN_DENYING
from enforcement.settle_script import SETTLE

__all__ = ["MAX_EXPIRE_PER_CALL", "MAX_EXPIRE_WHEN_DENYING", "RELEASE", "RESERVE", "SETTLE"]

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
