// Lua scripts of the Redis engine. Each runs atomically: one publish numbers, stores and fans out a message in one
// step, so every node sees one order per topic; the reaper's claim makes one surviving node announce a dead one.

/**
 * KEYS: meta, log, sizes. ARGV: epoch for a new sequence, frame head (`{"op":"msg","topic":…,"seq":`), frame tail
 * (`,…}`), history size, the topic's channel, bus prefix (node, sender transport and addr, no-echo id), history
 * bytes per topic, the topic's family channel (interest.ts: nodes hear a topic on either). The stream keeps the bus payload as it was published, so a node filling a gap gets exactly what the bus
 * would have brought. A new epoch starts when the meta is missing or was written under another replication id (a
 * failover). The history is bounded in entries and in frame bytes (meta `bytes`; the list KEYS[3] holds each
 * entry's frame bytes, oldest first, so trimming needs no read of the stream): the oldest entries go first; a frame
 * bigger than the whole budget empties it (what came before cannot be replayed without it), so it never has a
 * hole. With a 4th key (a publish idempotency key) and ARGV[9] (its window in ms): when the key is held, nothing
 * is published and its position comes back as {seq, epoch, 1}; else the key is set to the new position.
 * Returns {seq, epoch}.
 */
export const PUBLISH = `
if KEYS[4] then
  local first = redis.call('GET', KEYS[4])
  if first then
    local s, e = string.match(first, '^(%d+) (.*)$')
    return {tonumber(s), e, 1}
  end
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local m = redis.call('HMGET', KEYS[1], 'epoch', 'rid')
local epoch = m[1]
-- The data's lineage: a replica promoted after a failover has a new replication id, and may lack the last
-- messages this topic numbered (replication is asynchronous): their seqs must not be given again in this epoch.
local rid = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)') or ''
if seq == 1 or not epoch or m[2] ~= rid then
  -- a new sequence (never published, Redis lost the meta, or its lineage changed): new epoch, nothing older kept
  epoch = ARGV[1]
  seq = 1
  redis.call('HSET', KEYS[1], 'seq', 1, 'epoch', epoch, 'bytes', 0, 'rid', rid)
  redis.call('DEL', KEYS[2], KEYS[3])
end
local entry = ARGV[6] .. ARGV[2] .. seq .. ',"epoch":"' .. epoch .. '"' .. ARGV[3]
local keep = tonumber(ARGV[4])
local budget = tonumber(ARGV[7])
local size = #entry - #ARGV[6]
if keep > 0 and size <= budget then
  redis.call('XADD', KEYS[2], '0-' .. seq, 'm', entry)
  local len = redis.call('RPUSH', KEYS[3], size)
  local bytes = redis.call('HINCRBY', KEYS[1], 'bytes', size)
  local drop = 0
  while len > 1 and (len > keep or bytes > budget) do
    bytes = bytes - tonumber(redis.call('LPOP', KEYS[3]))
    len = len - 1
    drop = drop + 1
  end
  if len == 1 and bytes ~= size then
    -- the newest frame alone (it fits the budget); a count that drifted (say the list was evicted) starts over
    bytes = size
    drop = drop + 1
  end
  if drop > 0 then
    -- the history is seq-len+1 .. seq (no holes; READ starts there); the stream frees whole nodes below it
    redis.call('XTRIM', KEYS[2], 'MINID', '~', '0-' .. (seq - len + 1))
    redis.call('HSET', KEYS[1], 'bytes', bytes)
  end
elseif keep > 0 then
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'bytes', 0)
end
redis.call('PUBLISH', ARGV[5], entry)
redis.call('PUBLISH', ARGV[8], entry)
if KEYS[4] then redis.call('SET', KEYS[4], seq .. ' ' .. epoch, 'PX', ARGV[9]) end
return {seq, epoch}
`;

/**
 * PUBLISH on a Redis Cluster: the same with sharded PUB/SUB. Its channels carry the partition tag of the topic's keys
 * (interest.ts SHARDED), so they are in the script's slot and only the nodes subscribed on this shard hear it.
 */
export const SPUBLISH = PUBLISH.replaceAll("redis.call('PUBLISH',", "redis.call('SPUBLISH',");

/**
 * KEYS: meta, log, sizes. ARGV: first seq wanted, most entries. Returns {seq or false, epoch or false, id1, frame1, …}
 * from the history only: the stream may still hold a few entries older than it (trimmed by whole nodes).
 */
export const READ = `
local m = redis.call('HMGET', KEYS[1], 'seq', 'epoch')
local out = {m[1], m[2]}
if m[1] and tonumber(ARGV[2]) > 0 and tonumber(ARGV[1]) <= tonumber(m[1]) then
  local first = math.max(tonumber(ARGV[1]), tonumber(m[1]) - redis.call('LLEN', KEYS[3]) + 1)
  local entries = redis.call('XRANGE', KEYS[2], '0-' .. first, '+', 'COUNT', ARGV[2])
  for _, e in ipairs(entries) do
    table.insert(out, e[1])
    table.insert(out, e[2][2])
  end
end
return out
`;

/** KEYS: life, ids. ARGV: a fresh life, the highest client id this node handed out. Returns the life. */
export const INIT = `
redis.call('SET', KEYS[1], ARGV[1], 'NX')
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
if cur < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end
return redis.call('GET', KEYS[1])
`;

/** KEYS: names, clients. ARGV: new name, client id, old name, record JSON. Returns 1, or 0 when the name is taken. */
export const CLAIM_NAME = `
local holder = redis.call('HGET', KEYS[1], ARGV[1])
if holder and holder ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' and ARGV[3] ~= ARGV[1] and redis.call('HGET', KEYS[1], ARGV[3]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], ARGV[2], ARGV[4]) end
return 1
`;

/** KEYS: clients, names, node's clients. ARGV: client id, its name. Removes the client and frees its name. */
export const DROP_CLIENT = `
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
if redis.call('HGET', KEYS[2], ARGV[2]) == ARGV[1] then redis.call('HDEL', KEYS[2], ARGV[2]) end
return 1
`;

/**
 * The claim on a dead node, run by any survivor: only the first to find its heartbeat gone (and remove it from the
 * node set) gets to announce. Removes its clients, frees their names and publishes a timeout event for every filter
 * they held. KEYS: nodes, heartbeat, clients, names, node's clients. ARGV: node id, bus channel. Returns the count.
 */
export const REAP = `
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return -1 end
local ids = redis.call('SMEMBERS', KEYS[5])
local n = 0
for _, id in ipairs(ids) do
  local rec = redis.call('HGET', KEYS[3], id)
  if rec then
    redis.call('HDEL', KEYS[3], id)
    local c = cjson.decode(rec)
    if redis.call('HGET', KEYS[4], c.name) == id then redis.call('HDEL', KEYS[4], c.name) end
    for _, f in ipairs(c.subs) do
      redis.call('PUBLISH', ARGV[2], 'p' .. cjson.encode({e = 'timeout', c = {id = c.id, name = c.name, transport = c.transport, addr = c.addr, meta = c.meta}, f = f}))
    end
    n = n + 1
  end
end
redis.call('DEL', KEYS[5])
return n
`;

/**
 * A node (back after Redis was unreachable, or lost) re-asserts itself: its heartbeat, its clients and their names.
 * Clients it no longer holds are dropped. KEYS: nodes, heartbeat, clients, names, node's clients.
 * ARGV: node id, heartbeat ttl ms, then pairs (id, record JSON). Returns {1 when the node was not in the node set
 * (reaped by another, or Redis lost it: its clients' presence was ended), then the ids whose names another client holds}.
 */
export const REASSERT = `
local gone = redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
local keep = {}
for i = 3, #ARGV, 2 do keep[ARGV[i]] = ARGV[i + 1] end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  if not keep[id] then
    local rec = redis.call('HGET', KEYS[3], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('SREM', KEYS[5], id)
    if rec then
      local c = cjson.decode(rec)
      if redis.call('HGET', KEYS[4], c.name) == id then redis.call('HDEL', KEYS[4], c.name) end
    end
  end
end
local conflicts = {}
for id, rec in pairs(keep) do
  redis.call('HSET', KEYS[3], id, rec)
  redis.call('SADD', KEYS[5], id)
  local c = cjson.decode(rec)
  local holder = redis.call('HGET', KEYS[4], c.name)
  if not holder then redis.call('HSET', KEYS[4], c.name, id)
  elseif holder ~= id then table.insert(conflicts, id) end
end
table.insert(conflicts, 1, gone)
return conflicts
`;

/**
 * PUBLISH through the `{g}` shard of a Redis Cluster (a keyless PUBLISH goes to a random master, and two of them may
 * overtake each other). KEYS: a heartbeat (routes the script). ARGV: channel, payload, '1' = publish only while that
 * heartbeat exists (a direct to a live node). Returns 1 when published, 0 when the node is gone.
 */
export const RELAY = `
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
`;
