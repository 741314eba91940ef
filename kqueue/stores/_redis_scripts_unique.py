"""Lua scripts of a Redis store's unique keys: writes that claim a key, releases, prunes.

A claim is the hash ``<prefix>q:<unique key>``, indexed in ``<prefix>qidx``; the record
layout and its indexes are described in :mod:`kqueue.stores._redis_scripts`.
"""

from __future__ import annotations

from kqueue.stores._redis_scripts import REF_INDEX

PUT_UNIQUE = (
    REF_INDEX
    + """
-- Write new records that claim unique keys, each only if its key is free (see Store.put_unique).
-- A claim is the hash <prefix>q:<unique key> with fields record, until, expires.
-- KEYS: index, then per record: hash key, type index key, claim key (the hash key again when
-- the record claims nothing)
-- ARGV: now, key prefix, record count, then per record: key, reference server ('' or '=' and
-- the server id), until ('' for no claim), expires ('' for none), time to live in ms ('' for
-- none), field/value count, field, value, ...
-- Returns {0, holder, ...}: a holder per record ('' when written); or {i} when the i-th
-- record's key exists already (nothing written).
local now, prefix, n = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local holders, starts = {}, {}
local pos = 4
for i = 1, n do
  starts[i] = pos
  if redis.call('EXISTS', KEYS[3 * i - 1]) == 1 then
    return {i}
  end
  holders[i] = ''
  if ARGV[pos + 2] ~= '' then
    local held = redis.call('HMGET', KEYS[3 * i + 1], 'record', 'until', 'expires')
    if held[1] then
      local holds
      if held[2] == 'expiry' then
        holds = tonumber(held[3]) > now
      else
        holds = redis.call('EXISTS', prefix .. 'r:' .. held[1]) == 1
      end
      if holds then
        holders[i] = held[1]
      end
    end
  end
  pos = pos + 6 + tonumber(ARGV[pos + 5])
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', prefix .. 'refidx', '1')  -- a new store: indexed by server from the start
  redis.call('SET', prefix .. 'utidx', '1')  -- and by time
end
for i = 1, n do
  pos = starts[i]
  if holders[i] == '' then
    local key = ARGV[pos]
    local server = ARGV[pos + 1] ~= '' and string.sub(ARGV[pos + 1], 2)
    local nargs = tonumber(ARGV[pos + 5])
    redis.call('HSET', KEYS[3 * i - 1], unpack(ARGV, pos + 6, pos + 5 + nargs))
    redis.call('ZADD', KEYS[1], 0, key)
    redis.call('ZADD', KEYS[3 * i], 0, key)
    index_ref(prefix, key, server)
    if ARGV[pos + 2] ~= '' then
      local claim = KEYS[3 * i + 1]
      redis.call('DEL', claim)
      redis.call('ZADD', prefix .. 'qidx', 0, string.sub(claim, #prefix + 3))
      redis.call('HSET', claim, 'record', key, 'until', ARGV[pos + 2])
      if ARGV[pos + 3] ~= '' then
        redis.call('HSET', claim, 'expires', ARGV[pos + 3])
        redis.call('PEXPIRE', claim, ARGV[pos + 4])
      end
    end
  end
end
return {0, unpack(holders)}
"""
)

RELEASE_UNIQUE = """
-- KEYS: claim keys; ARGV: key prefix, then the record key each must still name. Deletes those
-- that do (and their entries in the claim index <prefix>qidx).
local prefix = ARGV[1]
local released = 0
for i = 1, #KEYS do
  if redis.call('HGET', KEYS[i], 'record') == ARGV[i + 1] then
    redis.call('DEL', KEYS[i])
    redis.call('ZREM', prefix .. 'qidx', string.sub(KEYS[i], #prefix + 3))
    released = released + 1
  end
end
return released
"""

PRUNE_UNIQUE = """
-- Delete claims that no longer hold their key, a page of the claim index at a time.
-- KEYS: claim index; ARGV: key prefix, now, lexical lower bound, limit.
-- Returns {deleted, last unique key looked at ('' when the index ends in this page)}.
local prefix, now, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local page = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[3], '+', 'LIMIT', 0, limit)
local pruned = 0
for _, unique_key in ipairs(page) do
  local claim = prefix .. 'q:' .. unique_key
  local held = redis.call('HMGET', claim, 'record', 'until', 'expires')
  local holds = false
  if held[1] then
    if held[2] == 'expiry' then
      holds = tonumber(held[3]) > now
    else
      holds = redis.call('EXISTS', prefix .. 'r:' .. held[1]) == 1
    end
  end
  if not holds then
    redis.call('DEL', claim)
    redis.call('ZREM', KEYS[1], unique_key)
    pruned = pruned + 1
  end
end
if #page < limit then
  return {pruned, ''}
end
return {pruned, page[#page]}
"""

PUT_UNIQUE_PACKED = """
-- The fast path of PUT_UNIQUE for new records that share every field but key, payload and
-- codec (as add_jobs writes them), without a reference or an error.
-- KEYS: index, type index; ARGV: now, key prefix, then the shared job_type, priority, delay,
-- ttr, created_at, attempts, state, updated_at, then per record: key, payload, codec, unique
-- key, until, expires, time to live in ms ('' for each of the last four when no claim).
-- Returns as PUT_UNIQUE does.
local now, prefix = tonumber(ARGV[1]), ARGV[2]
local first_record = 11
local n = (#ARGV - first_record + 1) / 7
local holders = {}
for i = 1, n do
  local b = first_record + (i - 1) * 7
  if redis.call('EXISTS', prefix .. 'r:' .. ARGV[b]) == 1 then
    return {i}
  end
  holders[i] = ''
  if ARGV[b + 4] ~= '' then
    local held = redis.call('HMGET', prefix .. 'q:' .. ARGV[b + 3], 'record', 'until', 'expires')
    if held[1] then
      local holds
      if held[2] == 'expiry' then
        holds = tonumber(held[3]) > now
      else
        holds = redis.call('EXISTS', prefix .. 'r:' .. held[1]) == 1
      end
      if holds then
        holders[i] = held[1]
      end
    end
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', prefix .. 'refidx', '1')  -- a new store: indexed by server from the start
  redis.call('SET', prefix .. 'utidx', '1')  -- and by time
end
for i = 1, n do
  if holders[i] == '' then
    local b = first_record + (i - 1) * 7
    local key = ARGV[b]
    redis.call('HSET', prefix .. 'r:' .. key, 'job_type', ARGV[3], 'payload', ARGV[b + 1],
      'codec', ARGV[b + 2], 'priority', ARGV[4], 'delay', ARGV[5], 'ttr', ARGV[6],
      'created_at', ARGV[7], 'attempts', ARGV[8], 'state', ARGV[9], 'updated_at', ARGV[10])
    redis.call('ZADD', KEYS[1], 0, key)
    redis.call('ZADD', KEYS[2], 0, key)
    redis.call('ZADD', prefix .. 'u', 0, key)
    redis.call('ZADD', prefix .. 'ut', ARGV[10], key)
    if ARGV[b + 4] ~= '' then
      local claim = prefix .. 'q:' .. ARGV[b + 3]
      redis.call('DEL', claim)
      redis.call('ZADD', prefix .. 'qidx', 0, ARGV[b + 3])
      redis.call('HSET', claim, 'record', key, 'until', ARGV[b + 4])
      if ARGV[b + 5] ~= '' then
        redis.call('HSET', claim, 'expires', ARGV[b + 5])
        redis.call('PEXPIRE', claim, ARGV[b + 6])
      end
    end
  end
end
return {0, unpack(holders)}
"""
