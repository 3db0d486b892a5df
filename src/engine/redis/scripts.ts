// Lua scripts of the Redis engine. Each runs atomically: one publish numbers, stores and fans out a message in one
// step, so every node sees one order per topic; the reaper's claim makes one surviving node announce a dead one.

/**
 * A batch of publishes (publish-batch.ts: the publishes of one event-loop turn whose keys share a slot), in order.
 * Per message: numbers it, checks its idempotency key; per topic, once: appends the batch's entries to its history
 * (a list, bounded by --history in messages and bytes) and writes its meta; then each channel gets one PUBLISH
 * carrying every entry for it, joined by the record separator (\x1e, which no JSON text and no bus prefix contains).
 * One total order and gapless seq per topic.
 *
 * What a topic's messages share is sent once per batch. KEYS: per topic meta, log; then the idempotency keys of the
 * keyed messages, in message order. ARGV: history size, history bytes per topic, the idempotency window (ms), the
 * number of topics; four per topic: epoch for a new sequence, frame head (`{"op":"msg","topic":…,"seq":`), the
 * topic's channel, its family channel (interest.ts); then three per message: its topic's number (1-based; negative
 * when the message has an idempotency key), frame tail (`,…}`), bus prefix (node, sender transport and addr,
 * no-echo id). Returns one flat array, two items per message: seq, epoch; or -seq, epoch when its key was held
 * (nothing published: the first publish's position); or 0, error when it failed (the others still ran). Flat,
 * because Redis converts each table of a script's reply by looking up a dozen type fields in it: a table per message
 * cost more than storing the message.
 *
 * The history (`log`, a list) holds each bus entry as published, oldest first: exactly the topic's seqs
 * seq-len+1 .. seq, no holes, so READ finds seq s at index s - (seq - len + 1) and a node filling a gap gets exactly
 * what the bus would have brought. A topic's meta (seq, epoch, bytes of the history's frames, replication id) is read
 * once per batch and written once at its end; its entries are appended by one RPUSH, whose reply is the list's
 * length (no LLEN), and the oldest are dropped by LPOP, whose reply gives their frame bytes (an entry's frame is what
 * follows its bus prefix, from its first `{`: no prefix field holds one), so the byte count needs no list of its own.
 * Every command a script runs costs Redis ~5–10k instructions of its own (argument and reply conversion, the
 * command's bookkeeping), so the script runs as few as keep the history exact (docs/benchmarks.md). A new
 * epoch starts when the meta is missing or was written under another replication id (a failover: a promoted replica
 * may lack the last messages numbered, whose seqs must not be given again); the id is read from INFO on every call,
 * which is what makes that check atomic. The history is bounded in entries and in frame bytes: the oldest go first;
 * a frame bigger than the whole budget empties it (what came before cannot be replayed without it), so it never has
 * a hole.
 *
 * Nothing is written before a topic's entries are appended (its RPUSH is the call's first write for it), so a write
 * that Redis refuses (out of memory: Redis refuses only a script's first write) fails that topic's messages alone,
 * with nothing of them stored, numbered or published.
 */
export const PUBLISH_BATCH = `
local keep = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])
local ntopics = tonumber(ARGV[4])
local publish = 'PUBLISH'
local info = redis.call('INFO', 'replication')
local at = string.find(info, 'master_replid:', 1, true)
local rid = at and string.sub(info, at + 14, at + 53) or ''
-- topic n: KEYS[2n - 1], KEYS[2n] (meta, log), ARGV[4n + 1] .. ARGV[4n + 4] (fresh epoch, head, channels). Its
-- state t: seq (the last numbered) and s (as text), bytes (of the history before this batch), pub (the entries
-- numbered, in order), from (the first of them kept: after a frame over the budget, or none when keep is 0), added
-- (the kept ones' bytes), last (the newest kept one's), clear (only this batch's kept entries remain), keys (the
-- idempotency keys to hold).
local topics, touched = {}, {}
local held, heldBy = nil, nil
local out, sent, numbers = {}, {}, {}
local nextKey = 2 * ntopics + 1
local i = 0
for a = 4 * ntopics + 5, #ARGV, 3 do
  local n = numbers[ARGV[a]]
  if not n then
    n = tonumber(ARGV[a])
    numbers[ARGV[a]] = n
  end
  local key, first = nil, nil
  i = i + 1
  if n < 0 then
    n, key = -n, KEYS[nextKey]
    nextKey = nextKey + 1
    if not held then held, heldBy = {}, {} end
    first = held[key]
    if first then
      -- held by an earlier message of this call: answered as a duplicate of it, once it is stored
      sent[i] = heldBy[key]
    else
      first = redis.pcall('GET', key)
      if type(first) == 'table' then
        out[2 * i - 1], out[2 * i] = 0, first.err
        first = true
      end
    end
  end
  if type(first) == 'string' then
    local s, e = string.match(first, '^(%d+) (.*)$')
    out[2 * i - 1], out[2 * i] = -tonumber(s), e
  elseif not first then
    local t = topics[n]
    if not t then
      -- A topic whose meta cannot be read fails its messages alone.
      local m = redis.pcall('HMGET', KEYS[2 * n - 1], 'seq', 'epoch', 'rid', 'bytes', 'lost')
      if m.err then t = {err = m.err}
      else
        t = {k = 2 * n - 1, p = 4 * n + 1, seq = tonumber(m[1]) or 0, epoch = m[2], bytes = tonumber(m[4]) or 0, pub = {}, from = 1, added = 0, clear = false, lost = m[5]}
        if t.seq == 0 or not t.epoch or m[3] ~= rid then
          -- a new sequence (never published, Redis lost the meta, or its lineage changed): nothing older kept. Over
          -- an older sequence it is marked for good (\`lost\`): messages of that one are gone, so a wildcard resume
          -- without a position on the topic cannot be told it missed nothing (READ).
          if t.seq > 0 and t.epoch then t.lost = '1' end
          t.seq, t.epoch, t.bytes, t.clear = 0, ARGV[t.p], 0, true
        end
        t.mid = ',"epoch":"' .. t.epoch .. '"'
        touched[#touched + 1] = t
      end
      topics[n] = t
    end
    if t.err then out[2 * i - 1], out[2 * i] = 0, t.err
    else
      local seq = t.seq + 1
      local s = string.format('%d', seq)
      local prefix = ARGV[a + 2]
      local entry = prefix .. ARGV[t.p + 1] .. s .. t.mid .. ARGV[a + 1]
      local size = #entry - #prefix
      local pub = t.pub
      pub[#pub + 1] = entry
      if keep == 0 then t.from = #pub + 1
      elseif size <= budget then t.added, t.last = t.added + size, size
      else
        -- bigger than the whole budget: what came before cannot be replayed without it, so nothing is kept
        t.from, t.added, t.clear = #pub + 1, 0, true
      end
      t.seq, t.s = seq, s
      if key then
        held[key], heldBy[key] = s .. ' ' .. t.epoch, t
        t.keys = t.keys or {}
        t.keys[#t.keys + 1] = key
      end
      out[2 * i - 1], out[2 * i] = seq, t.epoch
      sent[i] = t
    end
  end
end
-- Per topic, once: the batch's kept entries appended, the oldest dropped while over --history entries or bytes (the
-- same end state as trimming after each message: each limit only ever drops from the oldest end), the meta written.
-- An entry's frame bytes: from its first { (after the bus prefix, which holds none) to its end (an entry without
-- one, which this script never writes, counts whole: an error here would leave the RPUSH unaccounted).
local function frameBytes(e)
  return #e - (string.find(e, '{', 1, true) or 1) + 1
end
local function store(t)
  local log = KEYS[t.k + 1]
  local n = #t.pub - t.from + 1
  local len = n
  if n > 0 then len = redis.call('RPUSH', log, unpack(t.pub, t.from)) end
  if t.clear then
    -- a new sequence, or a frame over the budget: only this batch's entries after it are kept
    if n == 0 then redis.call('DEL', log)
    elseif len > n then redis.call('LTRIM', log, -n, -1) end
    len, t.bytes = n, t.added
  elseif len == n then
    -- the history was empty: it held no bytes (a count that drifted, say the list was evicted, starts over)
    t.bytes = t.added
  else
    t.bytes = t.bytes + t.added
  end
  if keep > 0 and len > keep then
    for _, e in ipairs(redis.call('LPOP', log, len - keep)) do t.bytes = t.bytes - frameBytes(e) end
    len = keep
  end
  while len > 1 and t.bytes > budget do
    local e = redis.call('LPOP', log)
    if not e then len = 0 break end
    t.bytes = t.bytes - frameBytes(e)
    len = len - 1
  end
  -- the newest frame alone (it fits the budget), or none: a count that drifted (say the list was evicted) starts over
  if len == 1 and n > 0 then t.bytes = t.last end
  if len == 0 then t.bytes = 0 end
  redis.call('HSET', KEYS[t.k], 'seq', t.s, 'epoch', t.epoch, 'bytes', string.format('%d', t.bytes), 'rid', rid, 'lost', t.lost or '0')
  if t.keys then
    for _, key in ipairs(t.keys) do redis.call('SET', key, held[key], 'PX', ARGV[3]) end
  end
end
for _, t in ipairs(touched) do
  local ok, err = pcall(store, t)
  if not ok then t.err = type(err) == 'table' and err.err or tostring(err) end
end
-- A topic that could not be stored fails its messages (and the duplicates of them) alone; nothing of it is published.
local failed = false
for _, t in ipairs(touched) do failed = failed or t.err ~= nil end
if failed then
  for j = 1, i do
    local t = sent[j]
    if t and t.err then out[2 * j - 1], out[2 * j] = 0, t.err end
  end
end
-- The bus: each published message on its topic's channel and its family's, in order; one PUBLISH per channel. One
-- topic (the usual batch): both channels carry its entries, one payload.
if #touched == 1 then
  local t = touched[1]
  if not t.err and #t.pub > 0 then
    local payload = table.concat(t.pub, '\\30')
    redis.call(publish, ARGV[t.p + 2], payload)
    redis.call(publish, ARGV[t.p + 3], payload)
  end
else
  local bus, channels = {}, {}
  local function post(channel, entry)
    local l = bus[channel]
    if not l then
      l = {}
      bus[channel] = l
      channels[#channels + 1] = channel
    end
    l[#l + 1] = entry
  end
  for _, t in ipairs(touched) do t.next = 1 end
  for j = 1, i do
    local t = sent[j]
    -- a message that took a number (a duplicate points at its first's topic but took none)
    if t and not t.err and out[2 * j - 1] > 0 then
      local entry = t.pub[t.next]
      t.next = t.next + 1
      post(ARGV[t.p + 2], entry)
      post(ARGV[t.p + 3], entry)
    end
  end
  for _, channel in ipairs(channels) do redis.call(publish, channel, table.concat(bus[channel], '\\30')) end
end
return out
`;

/**
 * PUBLISH_BATCH on a Redis Cluster: the same with sharded PUB/SUB (SPUBLISH). Its channels carry the partition tag of
 * the topics' keys (interest.ts SHARDED), so they are in the script's slot, and only the nodes subscribed on this
 * shard hear them: nothing crosses the cluster bus.
 */
export const SPUBLISH_BATCH = PUBLISH_BATCH.replace("local publish = 'PUBLISH'", "local publish = 'SPUBLISH'");
if (SPUBLISH_BATCH === PUBLISH_BATCH || /'PUBLISH'/.test(SPUBLISH_BATCH)) throw new Error('SPUBLISH_BATCH would publish classic messages');


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
