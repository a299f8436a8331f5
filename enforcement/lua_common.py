"""What every cap script shares: the clock, dropping a reservation, releasing those whose time is up.

Reservations expire lazily: every call first releases up to ``MAX_EXPIRE_PER_CALL`` reservations whose
time is up, so no sweeper process is needed and the work per call stays bounded.
"""

from __future__ import annotations

__all__ = ["COMMON", "MAX_EXPIRE_PER_CALL", "MAX_EXPIRE_WHEN_DENYING"]

MAX_EXPIRE_PER_CALL = 64
MAX_EXPIRE_WHEN_DENYING = 10_000  # due reservations released before a denial (bounds the call to ~10 ms)

COMMON = """
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
