// Lua scripts of the Redis engine. Each runs atomically: reading a topic's history, id blocks, names, presence
// records; the reaper's claim makes one surviving node announce a dead one. The publish script is publish-script.ts.

export { PUBLISH_BATCH, SPUBLISH_BATCH } from './publish-script.js';

/**
 * KEYS: meta, log. ARGV: first seq wanted, most entries, and (optional) how far back from the newest entry to read at
 * most (a resume: the node's --history; another node's may have kept more). Returns {seq or false, epoch or false,
 * lost or false, id1, entry1, …} (id `0-<seq>`, as when the history was a stream; lost: '1' when the topic's sequence
 * restarted over an older one, whose messages are gone). Reads from the first seq wanted, or from the oldest held
 * (within the bound) when that is later. The history list holds seqs seq-len+1 .. seq, so seq s is at index
 * s - (seq - len + 1): one LRANGE.
 */
export const READ = `
local m = redis.call('HMGET', KEYS[1], 'seq', 'epoch', 'lost')
local out = {m[1], m[2], m[3]}
if m[1] and tonumber(ARGV[2]) > 0 and tonumber(ARGV[1]) <= tonumber(m[1]) then
  local seq = tonumber(m[1])
  local oldest = seq - redis.call('LLEN', KEYS[2]) + 1
  local from = math.max(tonumber(ARGV[1]), oldest)
  if ARGV[3] then from = math.max(from, seq - tonumber(ARGV[3]) + 1) end
  local entries = redis.call('LRANGE', KEYS[2], from - oldest, from - oldest + tonumber(ARGV[2]) - 1)
  for j, e in ipairs(entries) do
    out[#out + 1] = '0-' .. (from + j - 1)
    out[#out + 1] = e
  end
end
return out
`;

/**
 * A block of client ids, only under the life the node knows. KEYS: life, ids. ARGV: block size, the node's life.
 * Returns the block's last id, or -1 when the life is not the node's (Redis lost its data: the counter restarted,
 * and a block from it could repeat ids the cluster gave; the node reserves again once it re-initialised).
 */
export const RESERVE_IDS = `
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return -1 end
return redis.call('INCRBY', KEYS[2], ARGV[1])
`;

/** Ids skipped when a node starts a new life after Redis lost its data (INIT): 10^12, more than a life hands out. */
export const ID_GAP = 1_000_000_000_000;

/**
 * KEYS: life, ids. ARGV: a fresh life, the highest client id this node reserved, '1' when the node knew a life
 * before. Returns the life. The counter is put back at least past this node's ids. When this call starts a new life
 * and the node knew one (Redis lost its data), past them by ID_GAP more: other nodes of the lost life may hold ids
 * above this node's (blocks they reserved after its last one) and have not re-initialised yet; the gap is more than
 * a life's ids could reach, so no block reserved now repeats one of theirs.
 */
export const INIT = `
local created = redis.call('SET', KEYS[1], ARGV[1], 'NX')
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
local floor = tonumber(ARGV[2])
if created and ARGV[3] == '1' then floor = floor + ${ID_GAP} end
if cur < floor then redis.call('SET', KEYS[2], string.format('%d', floor)) end
return redis.call('GET', KEYS[1])
`;

/**
 * KEYS: names, clients, node's clients. ARGV: new name, client id, old name, record JSON. Returns 1, or 0 when the
 * name is taken. A record written here is in its node's client set at once (the reaper finds it, should the node die
 * before its next write).
 */
export const CLAIM_NAME = `
local holder = redis.call('HGET', KEYS[1], ARGV[1])
if holder and holder ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' and ARGV[3] ~= ARGV[1] and redis.call('HGET', KEYS[1], ARGV[3]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[3]) end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
  redis.call('SADD', KEYS[3], ARGV[2])
end
return 1
`;

/**
 * Lua: frees the name a client's earlier record `rec` (a Lua expression: its JSON, or nil) holds for client `id` in the
 * names hash `names`, unless that name is `keep` (when given). A record cjson cannot read frees nothing.
 */
const FREE_RECORD_NAME = (rec: string, id: string, names: string, keep?: string) => `
if ${rec} then
  local rok, r = pcall(cjson.decode, ${rec})
  if rok and type(r) == 'table' and type(r.name) == 'string'${keep === undefined ? '' : ` and r.name ~= ${keep}`} and redis.call('HGET', ${names}, r.name) == ${id} then redis.call('HDEL', ${names}, r.name) end
end`;

/**
 * KEYS: clients, names, node's clients. ARGV: client id, record JSON, its name. Writes a client's record; the name
 * its previous record had is freed when it is not `name` (a rename whose outcome was unknown may have claimed it), and
 * `name` is claimed when nobody holds it.
 */
export const MIRROR_CLIENT = `
local prev = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
${FREE_RECORD_NAME('prev', 'ARGV[1]', 'KEYS[2]', 'ARGV[3]')}
if not redis.call('HGET', KEYS[2], ARGV[3]) then redis.call('HSET', KEYS[2], ARGV[3], ARGV[1]) end
return 1
`;

/**
 * KEYS: clients, names, node's clients. ARGV: client id, its name. Removes the client and frees its name (and the one
 * its record had, when that differs).
 */
export const DROP_CLIENT = `
local prev = redis.call('HGET', KEYS[1], ARGV[1])
${FREE_RECORD_NAME('prev', 'ARGV[1]', 'KEYS[2]')}
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
if redis.call('HGET', KEYS[2], ARGV[2]) == ARGV[1] then redis.call('HDEL', KEYS[2], ARGV[2]) end
return 1
`;

/**
 * The claim on a dead node, run by any survivor: only the first to find its heartbeat gone (and remove it from the
 * node set) gets to announce. Removes its clients, frees their names and publishes a timeout event for every filter
 * they held. KEYS: nodes, heartbeat, clients, names, node's clients. ARGV: node id, bus channel, and 'leave' when the
 * node withdraws itself as it stops: its heartbeat goes too, and the clients whose leave has not run yet (each waited
 * behind a request of its own) end with a `leave` (nobody reaps a node that withdrew). Returns the count.
 */
export const REAP = `
local event = ARGV[3] == 'leave' and 'leave' or 'timeout'
if event == 'leave' then
  redis.call('DEL', KEYS[2])
  redis.call('SREM', KEYS[1], ARGV[1])
else
  if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
  if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return -1 end
end
local ids = redis.call('SMEMBERS', KEYS[5])
local n = 0
for _, id in ipairs(ids) do
  local rec = redis.call('HGET', KEYS[3], id)
  if rec then
    redis.call('HDEL', KEYS[3], id)
    -- A record cjson cannot read (the broker validates what goes in; a record from elsewhere) is dropped unannounced
    -- rather than failing the claim halfway (the node already left the node set: nobody would reap it again).
    local ok, c = pcall(cjson.decode, rec)
    if ok and type(c) == 'table' and type(c.name) == 'string' then
      if redis.call('HGET', KEYS[4], c.name) == id then redis.call('HDEL', KEYS[4], c.name) end
      for _, f in ipairs(type(c.subs) == 'table' and c.subs or {}) do
        redis.call('PUBLISH', ARGV[2], 'p' .. cjson.encode({e = event, c = {id = c.id, name = c.name, transport = c.transport, addr = c.addr, meta = c.meta}, f = f}))
      end
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
      local ok, c = pcall(cjson.decode, rec)
      if ok and type(c) == 'table' and type(c.name) == 'string' and redis.call('HGET', KEYS[4], c.name) == id then redis.call('HDEL', KEYS[4], c.name) end
    end
  end
end
local conflicts = {}
for id, rec in pairs(keep) do
  local prev = redis.call('HGET', KEYS[3], id)
  redis.call('HSET', KEYS[3], id, rec)
  redis.call('SADD', KEYS[5], id)
  -- (a record cjson cannot read keeps no name here, and never fails the re-assertion of the node's other clients)
  local ok, c = pcall(cjson.decode, rec)
  if ok and type(c) == 'table' and type(c.name) == 'string' then
    -- the name its record had here, if another (a rename whose outcome was unknown), is not held for it any more
    ${FREE_RECORD_NAME('prev', 'id', 'KEYS[4]', 'c.name')}
    local holder = redis.call('HGET', KEYS[4], c.name)
    if not holder then redis.call('HSET', KEYS[4], c.name, id)
    elseif holder ~= id then table.insert(conflicts, id) end
  end
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

/**
 * A presence event of this node's clients onto the bus, only while the node is a member of the cluster (in the node
 * set): once a survivor reaped it (and announced its clients' `timeout`), its events until it re-asserts are not
 * published (its relay holds them, and the re-assert announces its clients afresh). On the `{g}` shard, like the
 * reaper's timeouts. KEYS: nodes. ARGV: node id, channel, payload. Returns 1 when published, 0 when not a member.
 */
export const PRESENCE = `
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
`;
