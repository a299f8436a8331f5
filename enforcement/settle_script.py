"""The SETTLE script: every usage event's cost reaches Redis through it, exactly once (see its header)."""

from __future__ import annotations

from enforcement.lua_common import COMMON

__all__ = ["SEEN_GENERATIONS", "SETTLE"]

SEEN_GENERATIONS = 2  # generations per duplicate window: a fingerprint is kept 1 to 1.5 windows, looked up in 3

SETTLE = (
    """-- settle: record the actual cost of one or more requests of one org, each exactly once,
-- replacing their reservations. The stream applies every usage event through this script, a batch
-- of one org's events per call; a proxy's settle is a batch of one.
-- KEYS[1] budgets  KEYS[2] reserved  KEYS[3] resv  KEYS[4] resv:exp  KEYS[5] stats
-- KEYS[6] wm       hash  partition -> highest applied offset of this org
-- KEYS[7] org      hash  the org's settings, with "loaded" once its config and counters are in Redis
-- KEYS[8..] the batch's other keys, referred to by index from ARGV:
--   spent:d, spent:w, spent:m (consecutive)  hash <kind>/<id> -> committed nano-USD
--   seen    the name of a duplicate-window shard, without its generation (the script appends
--           ":<generation>", the half window of arrival by Redis's clock; the names share the org's
--           hash tag):
--           hash  fingerprint -> content digest (8 bytes) .. "<partition>:<offset>" of the first copy
--           applied, or .. "direct"
--   stages  hash  <field>/<period key>/<stage> -> "<partition>:<offset>" (or "direct") that crossed it
-- ARGV[1] number of events, ARGV[2] the duplicate window (s), ARGV[3] the events' fields, each followed
-- by a tab, ARGV[4] the events' fingerprints (16 bytes each, in event order), ARGV[5] the period groups,
-- ARGV[6] the subject groups (fields each followed by a tab, as in ARGV[3]), ARGV[7] the events' content
-- digests (8 bytes each, in event order; eight zero bytes: not known, never a conflict).
--   per event, in ARGV[3]: request_id ('' for none), cost (nano-USD), its period group, its subject
--   group (each counted from 1), partition ('' outside the stream), offset, index of its seen key in KEYS
--   per period group, in ARGV[5]: spent:d, spent:w, spent:m expire at (unix s), period keys
--   "<day>|<week>|<month>", index of spent:d in KEYS, index of stages
--   per subject group, in ARGV[6]: number of scopes, the scopes "<kind>/<id>"
-- Reply per event: outcome, released, sink, n, then n crossings of (field, stage, limit, spent after)
--   outcome 1 applied now; 0 duplicate of another event (the same content); -1 this offset was
--   applied before (a redelivery); -3 a copy of an event applied before whose content differs (a
--   conflict, never counted), and then one more element: where the first copy was applied
--   ("<partition>:<offset>" or "direct"). sink is 1 when this event is the one to store (so a
--   redelivery is stored if it was not yet). When the org's state is not loaded the reply is {-2} and
--   nothing is written: the worker restores the state first (it never counts on top of lost counters).
-- Duplicates are found by (org, event_id) alone, whatever time a copy carries. The window is measured
-- from arrival by Redis's clock: a fingerprint is kept in the generation of its arrival (half a window
-- long) and looked up in the current and the two before, so a copy is recognised for at least one
-- window and at most one and a half after the first copy arrived. An event whose fingerprint records
-- its own partition and offset, above the watermark, is this very event after a rebuild lowered the
-- watermark (Redis's counters were rebuilt without it): it is applied, not taken for a duplicate."""
    + COMMON
    + f"\nlocal GENERATIONS = {SEEN_GENERATIONS}\n"
    + """
local now = now_ms()
if redis.call('HEXISTS', KEYS[7], 'loaded') == 0 then
  return {-2}
end
local now_s = math.floor(now / 1000)
local window = tonumber(ARGV[2])
local span = window / GENERATIONS
local generation = math.floor(now_s / span)
local current_suffix = ':' .. generation
local older_suffixes = {}  -- the generations before, newest first
for back = 1, GENERATIONS do
  older_suffixes[back] = ':' .. (generation - back)
end
local NO_DIGEST = string.rep(string.char(0), 8)
expire_due(KEYS[2], KEYS[3], KEYS[4], KEYS[5], now, MAX_EXPIRE)
-- What the batch changes is gathered here and written once at the end (the script is atomic, so no
-- one sees the difference): a watermark per partition, one HINCRBY per counter and scope touched,
-- and each key's expiry after every write that could have created it.
local marks, moved = {}, {}         -- partition -> highest applied offset (-1: none); those this batch moved
local deltas = {}                   -- spent key -> scope -> nano-USD this batch adds
local bases = {}                    -- spent key -> scope -> counter before, read where a budget needs it
local budgets_of = {}               -- scope -> {daily, weekly, monthly} budget values (false: none)
local expiries = {}                 -- key -> unix s, the first asked for in the batch
local out = {}
local applied, duplicates, conflicts = 0, 0, 0
local EXACT = 9007199254740992      -- 2^53

local function mark_of(partition)
  local mark = marks[partition]
  if mark == nil then
    mark = tonumber(redis.call('HGET', KEYS[6], partition) or '-1')
    marks[partition] = mark
  end
  return mark
end

local function budgets(scope)
  local found = budgets_of[scope]
  if found == nil then
    found = redis.call('HMGET', KEYS[1], scope .. '/daily', scope .. '/weekly', scope .. '/monthly')
    budgets_of[scope] = found
  end
  return found
end

local function expire_once(key, at)
  if expiries[key] == nil then
    expiries[key] = at
  end
end

local function table_of(map, key)
  local found = map[key]
  if not found then
    found = {}
    map[key] = found
  end
  return found
end

-- The first copy of a fingerprint within the window (nil when there is none).
local function first_copy(seen, fingerprint)
  local found = redis.call('HGET', seen .. current_suffix, fingerprint)
  for _, suffix in ipairs(older_suffixes) do
    if found then
      break
    end
    found = redis.call('HGET', seen .. suffix, fingerprint)
  end
  return found
end

-- Keep this copy as the first one in the current generation, unless a first copy is kept already:
-- then that one is returned (and nothing is kept). A new event costs one HSETNX and a HGET per older
-- generation.
local function claim(seen, fingerprint, value)
  local key = seen .. current_suffix
  if redis.call('HSETNX', key, fingerprint, value) == 0 then
    return redis.call('HGET', key, fingerprint)
  end
  for _, suffix in ipairs(older_suffixes) do
    local found = redis.call('HGET', seen .. suffix, fingerprint)
    if found then
      redis.call('HDEL', key, fingerprint)
      return found
    end
  end
  expire_once(key, (generation + GENERATIONS + 1) * span)
  return nil
end

-- Two copies conflict when both contents are known and differ.
local function conflicting(first, digest)
  local kept = string.sub(first, 1, 8)
  return kept ~= digest and kept ~= NO_DIGEST and digest ~= NO_DIGEST
end

local function conflict(first, released, counted)
  if counted then
    conflicts = conflicts + 1
  end
  out[#out + 1] = -3; out[#out + 1] = released; out[#out + 1] = 0; out[#out + 1] = 0
  out[#out + 1] = string.sub(first, 9)
end

-- Each event's reply is appended to out. g is the event's period group: {spent:d, spent:w, spent:m
-- expiries, period keys, the spent keys {d, w, m}, the stages key, their deltas {d, w, m}, their bases
-- {d, w, m}, used: an event of it was applied}.
local function settle(request_id, cost, fingerprint, digest, g, scopes, partition, offset_text, seen)
  local origin = 'direct'
  if partition ~= '' then
    origin = partition .. ':' .. offset_text
    local offset = tonumber(offset_text)
    if offset <= mark_of(partition) then
      local first = first_copy(seen, fingerprint)
      if not first or string.sub(first, 9) ~= origin then
        if first and conflicting(first, digest) then
          conflict(first, 0, false)  -- said again, for a dead letter that may not have been sent
          return
        end
        out[#out + 1] = -1; out[#out + 1] = 0; out[#out + 1] = 0; out[#out + 1] = 0
        return
      end
      -- the crossings this event caused, for an alert that may not have been sent
      out[#out + 1] = -1; out[#out + 1] = 0; out[#out + 1] = 1; out[#out + 1] = 0
      local count_at = #out
      local marked = redis.call('HGETALL', g[6])
      for i = 1, #marked, 2 do
        if marked[i + 1] == origin then
          local field, stage = string.match(marked[i], '^(.*)/[^/]+/(%d+)$')
          out[#out + 1] = field
          out[#out + 1] = tonumber(stage)
          out[#out + 1] = 0
          out[#out + 1] = 0
          out[count_at] = out[count_at] + 1
        end
      end
      return
    end
    marks[partition] = offset
    moved[partition] = true
  end

  local released = 0
  if request_id ~= '' then
    local record = redis.call('HGET', KEYS[3], request_id)
    if record then
      drop_record(KEYS[2], record)
      redis.call('HDEL', KEYS[3], request_id)
      redis.call('ZREM', KEYS[4], request_id)
      released = 1
    end
  end

  local first = claim(seen, fingerprint, digest .. origin)
  if first and (origin == 'direct' or string.sub(first, 9) ~= origin) then
    if conflicting(first, digest) then
      conflict(first, released, true)
      return
    end
    duplicates = duplicates + 1
    out[#out + 1] = 0; out[#out + 1] = released; out[#out + 1] = 0; out[#out + 1] = 0
    return
  end

  out[#out + 1] = 1; out[#out + 1] = released; out[#out + 1] = 1; out[#out + 1] = 0
  local count_at = #out
  local spent_keys, added, based = g[5], g[7], g[8]
  local period_keys = nil
  for _, scope in ipairs(scopes) do
    local values = budgets(scope)
    for p = 1, 3 do
      local sums = added[p]
      local delta = sums[scope] or 0
      if delta + cost >= EXACT then  -- written out before a sum in Lua could round
        redis.call('HINCRBY', spent_keys[p], scope, string.format('%d', delta))
        local base = based[p][scope]
        if base then
          based[p][scope] = base + delta
        end
        delta = 0
      end
      sums[scope] = delta + cost
      local value = values[p]
      if value then
        local base = based[p][scope]
        if base == nil then
          base = tonumber(redis.call('HGET', spent_keys[p], scope) or '0')
          based[p][scope] = base
        end
        local spent_before = base + delta
        local spent_after = spent_before + cost
        local limit, stages = string.match(value, '^(%d+)|%a+|(.*)$')
        for stage, threshold in string.gmatch(stages, '(%d+):(%d+)') do
          threshold = tonumber(threshold)
          if spent_before < threshold and threshold <= spent_after then
            if not period_keys then
              period_keys = {}
              for key in string.gmatch(g[4], '[^|]+') do
                period_keys[#period_keys + 1] = key
              end
            end
            local field = scope .. '/' .. PERIODS[p]
            if redis.call('HSETNX', g[6], field .. '/' .. period_keys[p] .. '/' .. stage, origin) == 1 then
              out[#out + 1] = field
              out[#out + 1] = tonumber(stage)
              out[#out + 1] = tonumber(limit)
              out[#out + 1] = spent_after
              out[count_at] = out[count_at] + 1
            end
          end
        end
      end
    end
  end
  g.used = true
  applied = applied + 1
end

local function split(text)
  local fields, count = {}, 0
  for field in string.gmatch(text, '([^\\t]*)\\t') do
    count = count + 1
    fields[count] = field
  end
  return fields, count
end

local periods = {}
local P, groups = split(ARGV[5])
for i = 0, groups / 6 - 1 do
  local at = i * 6
  local first = tonumber(P[at + 5])
  local spent_keys = {KEYS[first], KEYS[first + 1], KEYS[first + 2]}
  periods[i + 1] = {
    P[at + 1], P[at + 2], P[at + 3], P[at + 4], spent_keys, KEYS[tonumber(P[at + 6])],
    {table_of(deltas, spent_keys[1]), table_of(deltas, spent_keys[2]), table_of(deltas, spent_keys[3])},
    {table_of(bases, spent_keys[1]), table_of(bases, spent_keys[2]), table_of(bases, spent_keys[3])},
  }
end
local subjects = {}
local S, fields = split(ARGV[6])
local at = 1
while at <= fields do
  local n = tonumber(S[at])
  local scopes = {}
  for i = 1, n do
    scopes[i] = S[at + i]
  end
  subjects[#subjects + 1] = scopes
  at = at + 1 + n
end

local F = split(ARGV[3])
local prints, digests = ARGV[4], ARGV[7]
for e = 1, tonumber(ARGV[1]) do
  local f = e * 7 - 7
  settle(
    F[f + 1], tonumber(F[f + 2]), string.sub(prints, e * 16 - 15, e * 16), string.sub(digests, e * 8 - 7, e * 8),
    periods[tonumber(F[f + 3])], subjects[tonumber(F[f + 4])], F[f + 5], F[f + 6], KEYS[tonumber(F[f + 7])]
  )
end
-- a period's counters and stage marks expire after it, once an event of it was applied
for _, g in ipairs(periods) do
  if g.used then
    for p = 1, 3 do
      expire_once(g[5][p], g[p])
    end
    expire_once(g[6], g[3])
  end
end
for key, added in pairs(deltas) do
  for scope, delta in pairs(added) do
    redis.call('HINCRBY', key, scope, string.format('%d', delta))
  end
end
for partition in pairs(moved) do
  redis.call('HSET', KEYS[6], partition, string.format('%d', marks[partition]))
end
for key, at in pairs(expiries) do
  redis.call('EXPIREAT', key, at)
end
if applied > 0 then
  redis.call('HINCRBY', KEYS[5], 'settled', applied)
end
if duplicates > 0 then
  redis.call('HINCRBY', KEYS[5], 'duplicate', duplicates)
end
if conflicts > 0 then
  redis.call('HINCRBY', KEYS[5], 'conflict', conflicts)
end
return out
"""
)
