"""Lua scripts of a Redis store's scans: pages of records read through an index, and the
by-server and by-time indexes built for records an older kqueue wrote.

The record layout and its indexes are described in :mod:`kqueue.stores._redis_scripts`.
"""

from __future__ import annotations

from kqueue.stores._redis_scripts import REF_INDEX

SCAN = """
-- KEYS: index to page through; ARGV: lexical lower bound, limit, record hash key prefix
-- Returns key, HGETALL reply, key, HGETALL reply, ...
local keys = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, key in ipairs(keys) do
  out[#out + 1] = key
  out[#out + 1] = redis.call('HGETALL', ARGV[3] .. key)
end
return out
"""

SCAN_FIELDS = """
-- Like SCAN, but each record's fields in a fixed order (HMGET), without their names: a
-- smaller reply, read by position. KEYS: index to page through; ARGV: lexical lower bound,
-- limit, record hash key prefix, then the field names. Returns key, then a value per field
-- (nil when missing), for each record.
local keys = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, key in ipairs(keys) do
  out[#out + 1] = key
  out[#out + 1] = redis.call('HMGET', ARGV[3] .. key, unpack(ARGV, 4))
end
return out
"""

BUILD_REF_INDEX = (
    REF_INDEX
    + """
-- Index by server the records written before the by-server index existed, a page at a time.
-- KEYS: index; ARGV: key prefix, lexical lower bound, limit. Returns the last key looked at
-- ('' when done). Idempotent: an entry already in place is added again, a no-op.
local prefix = ARGV[1]
local keys = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], '+', 'LIMIT', 0, tonumber(ARGV[3]))
for _, key in ipairs(keys) do
  local found = redis.call('HMGET', prefix .. 'r:' .. key, 'job_type', 'ref_server')
  if found[1] then
    index_ref(prefix, key, found[2])
  end
end
if #keys < tonumber(ARGV[3]) then
  return ''
end
return keys[#keys]
"""
)

BUILD_TIME_INDEX = """
-- Index by time the records without a reference of a store written before that index
-- existed, a page of <prefix>u at a time. KEYS: <prefix>u; ARGV: key prefix, lexical lower
-- bound, limit. Returns the last key looked at ('' when done). Idempotent.
local prefix = ARGV[1]
local keys = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], '+', 'LIMIT', 0, tonumber(ARGV[3]))
for _, key in ipairs(keys) do
  local found = redis.call('HMGET', prefix .. 'r:' .. key, 'job_type', 'ref_server', 'updated_at')
  if found[1] and not found[2] then
    redis.call('ZADD', prefix .. 'ut', found[3], key)
  end
end
if #keys < tonumber(ARGV[3]) then
  return ''
end
return keys[#keys]
"""

SCAN_UNSCHEDULED = """
-- The records without a reference written before a time, in (updated_at, key) order, from
-- <prefix>ut. KEYS: <prefix>ut; ARGV: before (exclusive), the cursor's time ('' for none),
-- the cursor's key, limit, record hash key prefix, then the field names (ref_server 10th).
-- Returns key, then a value per field, for each record. An entry whose record is gone or has
-- a reference (written by an older kqueue) is skipped. Members of one score come in byte
-- order; those up to the cursor's key are skipped (compared byte by byte: Lua's string
-- comparison follows the server's locale).
local limit = tonumber(ARGV[4])
local has_cursor = ARGV[2] ~= ''
local cursor_at = has_cursor and tonumber(ARGV[2])
local function beyond(key)
  local cursor = ARGV[3]
  for i = 1, math.min(#key, #cursor) do
    local a, b = string.byte(key, i), string.byte(cursor, i)
    if a ~= b then
      return a > b
    end
  end
  return #key > #cursor
end
local out, found, offset = {}, 0, 0
local lower = has_cursor and ARGV[2] or '-inf'
while found < limit do
  local batch = redis.call('ZRANGEBYSCORE', KEYS[1], lower, '(' .. ARGV[1], 'WITHSCORES',
    'LIMIT', offset, limit)
  for i = 1, #batch, 2 do
    local key = batch[i]
    if not has_cursor or tonumber(batch[i + 1]) > cursor_at or beyond(key) then
      local values = redis.call('HMGET', ARGV[5] .. key, unpack(ARGV, 6))
      if values[1] and not values[10] and found < limit then
        out[#out + 1] = key
        out[#out + 1] = values
        found = found + 1
      end
    end
  end
  if #batch < 2 * limit then
    break
  end
  offset = offset + limit
end
return out
"""
