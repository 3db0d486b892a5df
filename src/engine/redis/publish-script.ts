// The publish script of the Redis engine (publish-batch.ts sends it): one call numbers, stores and fans out a
// batch of publishes atomically, so every node sees one order per topic. The other scripts are in scripts.ts.

/**
 * A batch of publishes (publish-batch.ts: the publishes of one event-loop turn whose keys share a slot), in order.
 * Per message: numbers it, checks its idempotency key; per topic, once: appends the batch's entries to its history
 * (a list, bounded by --history in messages and bytes) and writes its meta; then each channel gets one PUBLISH
 * carrying every entry for it, joined by the record separator (\x1e, which no JSON text and no bus prefix contains).
 * One total order and gapless seq per topic.
 *
 * What a topic's messages share is sent once per batch. KEYS: per topic meta, log; then the idempotency keys of the
 * keyed messages, in message order; then, on one Redis, the lineage key. ARGV: history size, history bytes per
 * topic, the idempotency window (ms), the number of topics; four per topic: epoch for a new sequence, frame head
 * (`{"op":"msg","topic":…,"seq":`), the topic's channel, its family channel (interest.ts); then three per message:
 * its topic's number (1-based; negative when the message has an idempotency key), frame tail (`,…}`), bus prefix
 * (node, sender transport and addr, no-echo id); last, the lineage mode: 'trust' (the lineage key, or INFO when it
 * is missing), 'load' (INFO, written to the lineage key) or '' (INFO: a Redis Cluster). Returns one flat array, two items per message: seq, epoch; or -seq, epoch when its key was held
 * (nothing published: the first publish's position); or 0, error when it failed (the others still ran). Flat,
 * because Redis converts each table of a script's reply by looking up a dozen type fields in it: a table per message
 * cost more than storing the message.
 *
 * The history (`log`, a list) holds each bus entry as published, oldest first: exactly the topic's seqs
 * seq-len+1 .. seq, no holes, so READ finds seq s at index s - (seq - len + 1) and a node filling a gap gets exactly
 * what the bus would have brought. A topic's meta (seq, epoch, bytes of the history's frames, replication id, trim record) is
 * read once per batch and written once at its end; its entries are appended by one RPUSH, whose reply is the list's
 * length (no LLEN). While every entry is at most cap bytes (budget / (keep + keep/8)), the history is cut back to keep
 * entries by one LTRIM once it holds an eighth more, reading nothing back (its byte count is then an upper bound);
 * while a bigger entry is in it, the oldest are dropped by LPOP, whose reply gives their frame bytes (an entry's frame
 * is what follows its bus prefix, from its first `{`: no prefix field holds one), so the count is exact and needs no
 * list of its own. docs/cluster.md "How the history is trimmed".
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
-- Trimming by count alone (store): while every kept entry is at most cap = budget / (keep + slack) bytes, a history of
-- up to keep + slack entries is within the budget, so it is cut back to keep entries only once it holds keep + slack,
-- without reading what goes.
local full = keep + math.floor((keep + 7) / 8)
local cap = keep > 0 and math.floor(budget / full) or 0
local caps = string.format('%d', cap)
local publish = 'PUBLISH'
-- The lineage (the replication id a topic's epoch was started under: see above) from INFO, or on one Redis from the
-- lineage key (mode 'trust', the usual call by SHA), which a call with the script's text (mode 'load': the first call
-- on a connection, and every retry after NOSCRIPT) writes from INFO. It is written without replication (no replica
-- or AOF has it) and rewritten by the first call after a restart or a failover: either empties the script cache, so
-- that call carries the text. A restart that loads it from an RDB file cannot pass off its old lineage.
local mode = ARGV[#ARGV]
local rid = mode == 'trust' and redis.call('GET', KEYS[#KEYS])
if not rid then
  local info = redis.call('INFO', 'replication')
  local at = string.find(info, 'master_replid:', 1, true)
  rid = at and string.sub(info, at + 14, at + 53) or ''
  if mode ~= '' then
    -- Not a write of the data's: no replica or AOF gets it. A refusal (out of memory) leaves it unwritten, which only
    -- costs the next call an INFO; nor does it count as the script's first write then.
    redis.set_repl(redis.REPL_NONE)
    redis.pcall('SET', KEYS[#KEYS], rid)
    redis.set_repl(redis.REPL_ALL)
  end
end
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
for a = 4 * ntopics + 5, #ARGV - 1, 3 do
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
      local m = redis.pcall('HMGET', KEYS[2 * n - 1], 'seq', 'epoch', 'rid', 'bytes', 'lost', 'trim')
      if m.err then t = {err = m.err}
      else
        t = {k = 2 * n - 1, p = 4 * n + 1, seq = tonumber(m[1]) or 0, epoch = m[2], bytes = tonumber(m[4]) or 0, pub = {}, from = 1, added = 0, clear = false, lost = m[5]}
        if t.seq == 0 or not t.epoch or m[3] ~= rid then
          -- a new sequence (never published, Redis lost the meta, or its lineage changed): nothing older kept. Over
          -- an older sequence it is marked for good (\`lost\`): messages of that one are gone, so a wildcard resume
          -- without a position on the topic cannot be told it missed nothing (READ).
          if t.seq > 0 and t.epoch then t.lost = '1' end
          t.seq, t.epoch, t.bytes, t.clear, t.fresh = 0, ARGV[t.p], 0, true, true
        end
        if not t.clear then
          -- The trim record this script left (seq, cap, big, ub: see store), trusted only at the meta's seq (anything
          -- else, an older node say, wrote the meta since): read as a whole in the usual case.
          local r = m[6]
          -- (t's fields are set only when they differ from the usual: cap, big 0, bytes exact; a table that grows
          -- past its 16 slots is rehashed, which costs more than storing a message.)
          if r == m[1] .. ' ' .. caps .. ' 0 1' then t.ub = true
          elseif r ~= m[1] .. ' ' .. caps .. ' 0 0' then
            local s, c, b, u = string.match(r or '', '^(%d+) (%d+) (%d+) ([01])$')
            if s == m[1] then t.cap, t.big, t.ub = tonumber(c), tonumber(b), u == '1'
            else t.unknown = true end
          end
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
      elseif size <= budget then
        t.added, t.last = t.added + size, size
        if size > (t.cap or cap) then t.bigAt = #pub end
      else
        -- bigger than the whole budget: what came before cannot be replayed without it, so nothing is kept
        t.from, t.added, t.clear, t.cap = #pub + 1, 0, true, nil
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
-- An entry's frame bytes: from its first { (after the bus prefix, which holds none) to its end (an entry without
-- one, which this script never writes, counts whole: an error here would leave the RPUSH unaccounted).
local function frameBytes(e)
  return #e - (string.find(e, '{', 1, true) or 1) + 1
end
-- The frame bytes of the first count entries of a history whose first has seq first, and the newest of them over cap.
local function recount(log, count, first, over)
  local bytes, big = 0, 0
  for j, e in ipairs(redis.call('LRANGE', log, 0, count - 1)) do
    local f = frameBytes(e)
    bytes = bytes + f
    if f > over then big = first + j - 1 end
  end
  return bytes, big
end
-- Per topic, once: the batch's kept entries appended, the oldest dropped past --history entries or the budget, the
-- meta written. What is known of the entries from before the batch is the meta's trim record: its seq (trusted only
-- when it is the meta's), cap (every entry after seq big is at most cap bytes), ub (1: bytes is only an upper bound).
local function store(t)
  local log, pub, from = KEYS[t.k + 1], t.pub, t.from
  local n = #pub - from + 1
  local len = n
  if n > 0 then len = redis.call('RPUSH', log, unpack(pub, from)) end
  if t.clear then
    -- a new sequence, or a frame over the budget: only this batch's entries after it are kept
    if n == 0 then redis.call('DEL', log)
    elseif len > n then redis.call('LTRIM', log, -n, -1) end
    len = n
  end
  local over, big, exact = t.cap or cap, t.big or 0, not t.ub
  if len == n then
    -- nothing from before (the history was empty or cleared; a count that drifted, say the list was evicted, starts over)
    big, exact, t.bytes = 0, true, 0
  elseif t.unknown then
    t.bytes, big = recount(log, len - n, t.seq - len + 1, over)
    exact = true
  end
  -- the newest kept entry over cap, this batch's or an older one
  if t.bigAt and t.bigAt >= from then big = t.seq - #pub + t.bigAt end
  local after = len > full and keep or len
  if over * full <= budget and big <= t.seq - after then
    -- Every entry left after the count trim is at most cap bytes: at most full * cap <= budget in all. Cut back to keep
    -- entries once it holds keep + slack (one LTRIM per slack messages), without reading what goes.
    if len > full then
      redis.call('LTRIM', log, -keep, -1)
      len, exact = keep, false
    end
    if exact then t.bytes = t.bytes + t.added else t.bytes = len * over end
  else
    -- An entry over cap is kept (or may be, with another node's cap): every frame counted exactly, the oldest dropped
    -- while over --history entries or the budget (the same end state as trimming after each message: each limit only
    -- ever drops from the oldest end).
    if not exact then t.bytes = recount(log, len - n, t.seq - len + 1, over) end
    exact = true
    t.bytes = t.bytes + t.added
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
  end
  local trim = t.s .. ' ' .. (over == cap and caps or string.format('%d', over)) .. ' ' .. (big == 0 and '0' or string.format('%d', big)) .. (exact and ' 0' or ' 1')
  -- epoch, rid and lost change only with a new sequence (else the meta holds them as read)
  if t.fresh then
    redis.call('HSET', KEYS[t.k], 'seq', t.s, 'epoch', t.epoch, 'bytes', string.format('%d', t.bytes), 'rid', rid, 'lost', t.lost or '0', 'trim', trim)
  else
    redis.call('HSET', KEYS[t.k], 'seq', t.s, 'bytes', string.format('%d', t.bytes), 'trim', trim)
  end
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
 * A publish script (PUBLISH_BATCH or SPUBLISH_BATCH) whose topics' histories expire `ms` after their last publish
 * (--history-ttl-ms): each call's store sets the history list's PEXPIRE; the meta stays (seq and epoch go on, so a
 * resume from before finds the history trimmed, never a new sequence it could not tell from the old). The time is
 * part of the text (its own SHA), so a node without it runs the script unchanged, not one that checks a setting on
 * every call. 0: the script as given.
 */
export function withHistoryTtl(script: string, ms: number): string {
  if (ms === 0) return script;
  if (!Number.isSafeInteger(ms) || ms < 0) throw new Error(`a history TTL is a whole number of ms, not ${ms}`);
  // Before the idempotency keys are written, at the end of store(t), where `len` is the list's length. (The script
  // without a TTL is not touched at all: not even a marker comment, so its cost and SHA stay as they were.)
  const at = '  if t.keys then\n';
  const out = script.replace(at, `  if len > 0 then redis.call('PEXPIRE', log, ${ms}) end\n${at}`);
  if (out === script) throw new Error('the publish script has no place for the history TTL');
  return out;
}
