"""Lua scripts of :class:`~kqueue.stores.redis.RedisStore`: each runs atomically in Redis.

A record is a hash at ``<prefix>r:<key>``; ``<prefix>idx`` is a sorted set of every key (all
scores 0, so ZRANGEBYLEX pages in key order) and ``<prefix>t:<job_type>`` the same per job type.
The scripts keep a hash and its two index entries in step. ``None`` travels as a ``'0'`` flag
followed by an empty value, so that an empty string stays distinct from a missing value.

Records are also indexed by the server their reference names, for recovery:
``<prefix>s:<server id>`` holds the keys of the records referencing that server (claims
included), ``<prefix>u`` those without a reference, and the set ``<prefix>servers`` every
server id with a non-empty index. Every script that changes a reference moves its key.
``<prefix>ut`` holds the keys of ``<prefix>u`` again, scored by the record's ``updated_at``:
recovery reads from it only the records never scheduled that are older than its grace.
"""

from __future__ import annotations

REF_INDEX = """
local function ref_index(prefix, server)
  if server then
    return prefix .. 's:' .. server
  end
  return prefix .. 'u'
end
local function unindex_ref(prefix, key, server)
  local index = ref_index(prefix, server)
  redis.call('ZREM', index, key)
  if not server then
    redis.call('ZREM', prefix .. 'ut', key)
  elseif redis.call('EXISTS', index) == 0 then
    redis.call('SREM', prefix .. 'servers', server)
  end
end
local function index_ref(prefix, key, server, at)
  redis.call('ZADD', ref_index(prefix, server), 0, key)
  if server then
    redis.call('SADD', prefix .. 'servers', server)
  else
    at = at or redis.call('HGET', prefix .. 'r:' .. key, 'updated_at')
    redis.call('ZADD', prefix .. 'ut', at, key)
  end
end
"""
# The by-server index helpers, prepended to the scripts that move references. A server is
# ``false`` (Lua's missing hash field) for a record without a reference; ``at`` is the
# record's new ``updated_at`` (read from its hash when not given).

PUT_MANY = (
    REF_INDEX
    + """
-- KEYS: index, then per record: hash key, type index key
-- ARGV: record count, key prefix, then per record: key, reference server ('' for none, else
-- '=' and the server id), field/value count, field, value, ...
local n = tonumber(ARGV[1])
local prefix = ARGV[2]
for i = 1, n do
  if redis.call('EXISTS', KEYS[2 * i]) == 1 then
    return i
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', prefix .. 'refidx', '1')  -- a new store: indexed by server from the start
  redis.call('SET', prefix .. 'utidx', '1')  -- and by time
end
local pos = 3
for i = 1, n do
  local key = ARGV[pos]
  local server = ARGV[pos + 1] ~= '' and string.sub(ARGV[pos + 1], 2)
  local nargs = tonumber(ARGV[pos + 2])
  redis.call('HSET', KEYS[2 * i], unpack(ARGV, pos + 3, pos + 2 + nargs))
  redis.call('ZADD', KEYS[1], 0, key)
  redis.call('ZADD', KEYS[2 * i + 1], 0, key)
  index_ref(prefix, key, server)
  pos = pos + 3 + nargs
end
return 0
"""
)

PUT_MANY_PACKED = """
-- The fast path of PUT_MANY for new records that share every field but key, payload and codec
-- (as add_jobs writes them), without a reference or an error.
-- KEYS: index, type index; ARGV: key prefix, then the shared job_type, priority, delay, ttr,
-- created_at, attempts, state, updated_at, then per record: key, payload, codec.
-- The existence check and both index updates take one command per 500 records, not one each.
local prefix = ARGV[1]
local first_record = 10
local n = (#ARGV - first_record + 1) / 3
local hashes, members, timed = {}, {}, {}
for i = 1, n do
  local key = ARGV[first_record + (i - 1) * 3]
  hashes[i] = prefix .. 'r:' .. key
  members[2 * i - 1] = '0'
  members[2 * i] = key
  timed[2 * i - 1] = ARGV[9]
  timed[2 * i] = key
end
for first = 1, n, 500 do
  local last = math.min(first + 499, n)
  if redis.call('EXISTS', unpack(hashes, first, last)) > 0 then
    for i = first, last do
      if redis.call('EXISTS', hashes[i]) == 1 then
        return i
      end
    end
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', prefix .. 'refidx', '1')  -- a new store: indexed by server from the start
  redis.call('SET', prefix .. 'utidx', '1')  -- and by time
end
for i = 1, n do
  local b = first_record + (i - 1) * 3
  redis.call('HSET', hashes[i], 'job_type', ARGV[2], 'payload', ARGV[b + 1],
    'codec', ARGV[b + 2], 'priority', ARGV[3], 'delay', ARGV[4], 'ttr', ARGV[5],
    'created_at', ARGV[6], 'attempts', ARGV[7], 'state', ARGV[8], 'updated_at', ARGV[9])
end
for first = 1, n, 500 do
  local last = math.min(first + 499, n)
  redis.call('ZADD', KEYS[1], unpack(members, 2 * first - 1, 2 * last))
  redis.call('ZADD', KEYS[2], unpack(members, 2 * first - 1, 2 * last))
  redis.call('ZADD', prefix .. 'u', unpack(members, 2 * first - 1, 2 * last))
  redis.call('ZADD', prefix .. 'ut', unpack(timed, 2 * first - 1, 2 * last))
end
return 0
"""

STATUS_MANY = """
-- KEYS: the hash keys. One string back, a line per key: '-' for a missing record, else
-- 'attempts state ref_server ref_job' (the reference empty when there is none).
local out = {}
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'attempts', 'state', 'ref_server', 'ref_job')
  if v[1] then
    out[i] = v[1] .. ' ' .. v[2] .. ' ' .. (v[3] or '') .. ' ' .. (v[4] or '')
  else
    out[i] = '-'
  end
end
return table.concat(out, '\\n')
"""

CHECKED_MANY = """
-- KEYS: the hash keys; ARGV: the reference each record should name, a server id and a job id
-- per key (ARGV[2i-1], ARGV[2i]). Per key: '-' for a missing record; its status line (as
-- STATUS_MANY) when it names that reference; else its whole hash (HGETALL), so that a worker
-- whose copy of the payload the record does not vouch for has the record's in the same reply.
local out = {}
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'attempts', 'state', 'ref_server', 'ref_job')
  if not v[1] then
    out[i] = '-'
  elseif v[3] == ARGV[2 * i - 1] and v[4] == ARGV[2 * i] then
    out[i] = v[1] .. ' ' .. v[2] .. ' ' .. v[3] .. ' ' .. v[4]
  else
    out[i] = redis.call('HGETALL', KEYS[i])
  end
end
return out
"""

GET_MANY = """
-- KEYS: the hash keys. One HGETALL reply per key (empty for a missing record), so that a
-- batch read runs on the caller's one connection instead of a pipeline taking another.
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('HGETALL', KEYS[i])
end
return out
"""

DELETE_MANY = """
-- KEYS: index, then the hash keys; ARGV: key prefix, then the record keys (ARGV[i] belongs to
-- KEYS[i]). The type and server index keys are read from the hash, so they are built here. The
-- deletes and index removals go out one command per 500 records (per index), not one each.
local prefix = ARGV[1]
local hashes, members, by_type, by_index, servers = {}, {}, {}, {}, {}
local function add_to(groups, name, member)
  local group = groups[name]
  if not group then
    group = {}
    groups[name] = group
  end
  group[#group + 1] = member
end
for i = 2, #KEYS do
  local found = redis.call('HMGET', KEYS[i], 'job_type', 'ref_server')
  if found[1] then
    hashes[#hashes + 1] = KEYS[i]
    members[#members + 1] = ARGV[i]
    add_to(by_type, prefix .. 't:' .. found[1], ARGV[i])
    if found[2] then
      add_to(by_index, prefix .. 's:' .. found[2], ARGV[i])
      servers[prefix .. 's:' .. found[2]] = found[2]
    else
      add_to(by_index, prefix .. 'u', ARGV[i])
      add_to(by_index, prefix .. 'ut', ARGV[i])
    end
  end
end
local function chunked(command, key, list)
  for first = 1, #list, 500 do
    local last = math.min(first + 499, #list)
    if key then
      redis.call(command, key, unpack(list, first, last))
    else
      redis.call(command, unpack(list, first, last))
    end
  end
end
chunked('DEL', nil, hashes)
chunked('ZREM', KEYS[1], members)
for type_index, of_type in pairs(by_type) do
  chunked('ZREM', type_index, of_type)
end
for ref_index, of_index in pairs(by_index) do
  chunked('ZREM', ref_index, of_index)
  if servers[ref_index] and redis.call('EXISTS', ref_index) == 0 then
    redis.call('SREM', prefix .. 'servers', servers[ref_index])
  end
end
return #hashes
"""

SWAP_REFERENCE = (
    REF_INDEX
    + """
-- KEYS: hash key
-- ARGV: expected flag, expected server, expected job, new flag, new server, new job, now,
-- key prefix, record key
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local current = redis.call('HMGET', KEYS[1], 'ref_server', 'ref_job')
if ARGV[1] == '0' then
  if current[1] then
    return 0
  end
elseif current[1] ~= ARGV[2] or current[2] ~= ARGV[3] then
  return 0
end
if ARGV[4] == '0' then
  redis.call('HDEL', KEYS[1], 'ref_server', 'ref_job')
else
  redis.call('HSET', KEYS[1], 'ref_server', ARGV[5], 'ref_job', ARGV[6])
end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[7])
unindex_ref(ARGV[8], ARGV[9], current[1])
index_ref(ARGV[8], ARGV[9], ARGV[4] ~= '0' and ARGV[5], ARGV[7])
return 1
"""
)

SWAP_REFERENCES = (
    REF_INDEX
    + """
-- KEYS: the hash keys; ARGV: now, key prefix, then per key the same six values as
-- SWAP_REFERENCE
local prefix = ARGV[2]
local skip = #prefix + 3
local swapped = 0
for i = 1, #KEYS do
  local base = 2 + (i - 1) * 6
  local current = redis.call('HMGET', KEYS[i], 'job_type', 'ref_server', 'ref_job')
  local matches
  if not current[1] then
    matches = false
  elseif ARGV[base + 1] == '0' then
    matches = not current[2]
  else
    matches = current[2] == ARGV[base + 2] and current[3] == ARGV[base + 3]
  end
  if matches then
    if ARGV[base + 4] == '0' then
      redis.call('HDEL', KEYS[i], 'ref_server', 'ref_job')
      redis.call('HSET', KEYS[i], 'updated_at', ARGV[1])
    else
      redis.call('HSET', KEYS[i], 'ref_server', ARGV[base + 5], 'ref_job', ARGV[base + 6],
        'updated_at', ARGV[1])
    end
    local key = string.sub(KEYS[i], skip)
    unindex_ref(prefix, key, current[2])
    index_ref(prefix, key, ARGV[base + 4] ~= '0' and ARGV[base + 5], ARGV[1])
    swapped = swapped + 1
  end
end
return swapped
"""
)

SET_NEW_REFERENCES = """
-- The fast path of SWAP_REFERENCES for new jobs: every expected reference is none and every
-- new one is on the same server. KEYS: the hash keys; ARGV: server, now, key prefix, then per
-- key the job id. A record that is gone, or already has a reference, is left alone. The moved
-- keys change index one command per 500 records.
local prefix = ARGV[3]
local skip = #prefix + 3
local moved, scored = {}, {}
for i = 1, #KEYS do
  local current = redis.call('HMGET', KEYS[i], 'job_type', 'ref_server')
  if current[1] and not current[2] then
    redis.call('HSET', KEYS[i], 'ref_server', ARGV[1], 'ref_job', ARGV[i + 3],
      'updated_at', ARGV[2])
    local key = string.sub(KEYS[i], skip)
    moved[#moved + 1] = key
    scored[#scored + 1] = '0'
    scored[#scored + 1] = key
  end
end
for first = 1, #moved, 500 do
  local last = math.min(first + 499, #moved)
  redis.call('ZREM', prefix .. 'u', unpack(moved, first, last))
  redis.call('ZREM', prefix .. 'ut', unpack(moved, first, last))
  redis.call('ZADD', prefix .. 's:' .. ARGV[1], unpack(scored, 2 * first - 1, 2 * last))
end
if #moved > 0 then
  redis.call('SADD', prefix .. 'servers', ARGV[1])
end
return #moved
"""

SWAP_BETWEEN_SERVERS = """
-- The fast path of SWAP_REFERENCES for references that all go from one server to one server
-- (recovery's claims, renames and new references). KEYS: the hash keys; ARGV: now, key
-- prefix, expected server, new server, then per key the expected job and the new job. The
-- moved keys change index one command per 500 records.
local prefix, old_server, new_server = ARGV[2], ARGV[3], ARGV[4]
local skip = #prefix + 3
local moved, scored = {}, {}
for i = 1, #KEYS do
  local current = redis.call('HMGET', KEYS[i], 'ref_server', 'ref_job')
  if current[1] == old_server and current[2] == ARGV[3 + 2 * i] then
    redis.call('HSET', KEYS[i], 'ref_server', new_server, 'ref_job', ARGV[4 + 2 * i],
      'updated_at', ARGV[1])
    local key = string.sub(KEYS[i], skip)
    moved[#moved + 1] = key
    scored[#scored + 1] = '0'
    scored[#scored + 1] = key
  end
end
if #moved > 0 and old_server ~= new_server then
  for first = 1, #moved, 500 do
    local last = math.min(first + 499, #moved)
    redis.call('ZREM', prefix .. 's:' .. old_server, unpack(moved, first, last))
    redis.call('ZADD', prefix .. 's:' .. new_server, unpack(scored, 2 * first - 1, 2 * last))
  end
  if redis.call('EXISTS', prefix .. 's:' .. old_server) == 0 then
    redis.call('SREM', prefix .. 'servers', old_server)
  end
  redis.call('SADD', prefix .. 'servers', new_server)
end
return #moved
"""

RECORD_ATTEMPT = """
-- KEYS: hash key; ARGV: attempts, error flag, last error, state, now
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if ARGV[2] == '0' then
  redis.call('HDEL', KEYS[1], 'last_error')
else
  redis.call('HSET', KEYS[1], 'last_error', ARGV[3])
end
redis.call('HSET', KEYS[1], 'attempts', ARGV[1], 'state', ARGV[4], 'updated_at', ARGV[5])
return 1
"""

RECORD_FAILURE = """
-- RECORD_ATTEMPT, and one failed attempt appended to the record's history: the hash field
-- 'failure:<n>' for the n-th failure ('failure_seq' counts them), the one 'keep' places
-- older removed. The history goes with the hash when the record is deleted.
-- KEYS: hash key; ARGV: attempts, error flag, last error, state, now, failure JSON, keep
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if ARGV[2] == '0' then
  redis.call('HDEL', KEYS[1], 'last_error')
else
  redis.call('HSET', KEYS[1], 'last_error', ARGV[3])
end
redis.call('HSET', KEYS[1], 'attempts', ARGV[1], 'state', ARGV[4], 'updated_at', ARGV[5])
local n = redis.call('HINCRBY', KEYS[1], 'failure_seq', 1)
redis.call('HSET', KEYS[1], 'failure:' .. n, ARGV[6])
redis.call('HDEL', KEYS[1], 'failure:' .. (n - tonumber(ARGV[7])))
return 1
"""
